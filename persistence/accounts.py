"""API keys, what each key owns and uses, and its limits: every query about accounts.

A token is `dck_` + 32 random bytes (urlsafe base64). Only its sha256 is stored, and a
request's key is found by that hash, so no token can be read back from the database.
Usage is counted from the rows themselves (active jobs, stored bytes) and request rates
from a counter row per key and minute, so every API process sees the same figures.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from deepclust_client.status import ACTIVE_STATES
from persistence.models import (
    BUILTIN_OWNER,
    ApiKey,
    Dataset,
    Job,
    RateWindow,
    new_id,
    utcnow,
)
from persistence.settings import get_settings

TOKEN_PREFIX = "dck_"
MB = 2**20


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Limits:
    max_active_jobs: int
    max_storage_bytes: int
    max_upload_bytes: int
    requests_per_minute: int


def limits_of(key: ApiKey) -> Limits:
    """The key's own limits, the settings' defaults where it has none."""
    settings = get_settings()
    default_upload = (
        settings.default_max_upload_mb * MB
        if settings.default_max_upload_mb
        else settings.max_upload_bytes
    )
    return Limits(
        max_active_jobs=key.max_active_jobs or settings.default_max_active_jobs,
        max_storage_bytes=key.max_storage_bytes or settings.default_max_storage_mb * MB,
        # never above the server-wide upload limit
        max_upload_bytes=min(key.max_upload_bytes or default_upload, settings.max_upload_bytes),
        requests_per_minute=key.requests_per_minute or settings.default_requests_per_minute,
    )


# ---- keys ----------------------------------------------------------------------------------------
def create_key(
    session: Session,
    name: str,
    *,
    admin: bool = False,
    max_active_jobs: int | None = None,
    max_storage_mb: int | None = None,
    max_upload_mb: int | None = None,
    requests_per_minute: int | None = None,
    token: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its token (the only time the token exists outside the caller)."""
    token = token or new_token()
    key = ApiKey(
        id=new_id(),
        name=name,
        token_hash=token_hash(token),
        token_prefix=token[:8],
        is_admin=admin,
        max_active_jobs=max_active_jobs,
        max_storage_bytes=max_storage_mb * MB if max_storage_mb else None,
        max_upload_bytes=max_upload_mb * MB if max_upload_mb else None,
        requests_per_minute=requests_per_minute,
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    return key, token


def ensure_admin_token(session: Session, token: str) -> bool:
    """An admin key for this token (DEEPCLUST_BOOTSTRAP_ADMIN_TOKEN); True if it was created now.
    Safe when several API processes start at once: the token's hash is unique."""
    if not token.startswith(TOKEN_PREFIX) or len(token) < len(TOKEN_PREFIX) + 32:
        raise ValueError(
            f"the bootstrap admin token must start with {TOKEN_PREFIX} and have at least 32 "
            "characters after it, e.g. dck_$(openssl rand -hex 32)"
        )
    hashed = token_hash(token)
    values = dict(
        id=new_id(),
        name="bootstrap-admin",
        token_hash=hashed,
        token_prefix=token[:8],
        is_admin=True,
        created_at=utcnow(),
    )
    inserted = session.execute(
        _insert(session, ApiKey)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[ApiKey.token_hash])
        .returning(ApiKey.id)
    )
    return inserted.first() is not None


def key_for_token(session: Session, token: str) -> ApiKey | None:
    """The live (not revoked) key with this token."""
    return session.scalar(
        select(ApiKey).where(ApiKey.token_hash == token_hash(token), ApiKey.revoked_at.is_(None))
    )


def list_keys(session: Session) -> list[ApiKey]:
    return list(
        session.scalars(
            select(ApiKey).where(ApiKey.id != BUILTIN_OWNER).order_by(ApiKey.created_at)
        )
    )


def revoke_key(session: Session, key_id: str) -> bool:
    """False if there is no such live key. Its datasets and jobs stay (admins still see them)."""
    return (
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.id != BUILTIN_OWNER, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        == 1
    )


def key_as_dict(key: ApiKey) -> dict:
    """What may be shown of a key: everything but its hash (and the token, which is not stored)."""
    return {
        "id": key.id,
        "name": key.name,
        "admin": key.is_admin,
        "token_prefix": key.token_prefix,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
        "limits": limits_of(key).__dict__,
    }


def _iso(value: datetime | None) -> str | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


# ---- usage and limits ----------------------------------------------------------------------------
def lock_key(session: Session, key_id: str) -> None:
    """Hold the key's row until the transaction ends, so concurrent submissions of one key
    count and insert one after the other (SQLite serialises writers by itself)."""
    session.execute(select(ApiKey.id).where(ApiKey.id == key_id).with_for_update())


def active_jobs(session: Session, owner_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.owner_id == owner_id, Job.status.in_(ACTIVE_STATES))
        )
        or 0
    )


def stored_bytes(session: Session, owner_id: str) -> int:
    datasets = session.scalar(
        select(func.sum(Dataset.stored_bytes)).where(Dataset.owner_id == owner_id)
    )
    results = session.scalar(select(func.sum(Job.stored_bytes)).where(Job.owner_id == owner_id))
    return int(datasets or 0) + int(results or 0)


def count_request(session: Session, key_id: str, now: float | None = None) -> tuple[int, int]:
    """Count one request in the key's current minute: (requests in it so far, seconds left in it).
    One upsert, so concurrent API processes never lose a count."""
    now = time.time() if now is None else now
    window = int(now // 60)
    statement = (
        _insert(session, RateWindow)
        .values(key_id=key_id, window=window, count=1)
        .on_conflict_do_update(
            index_elements=[RateWindow.key_id, RateWindow.window],
            set_={"count": RateWindow.count + 1},
        )
        .returning(RateWindow.count)
    )
    count = session.execute(statement).scalar_one()
    return int(count), max(1, int((window + 1) * 60 - now + 0.999))


def requests_this_minute(session: Session, key_id: str) -> int:
    window = int(time.time() // 60)
    return int(
        session.scalar(
            select(RateWindow.count).where(RateWindow.key_id == key_id, RateWindow.window == window)
        )
        or 0
    )


def _insert(session: Session, table):
    return (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )(table)
