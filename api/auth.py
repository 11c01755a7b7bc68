"""Who is calling, and what they may still do: API keys, request rates and quotas.

Every data route depends on `authenticate`: with DEEPCLUST_AUTH=keys it needs
`Authorization: Bearer dck_...` (401 otherwise) and counts the request against the key's
per-minute limit (429 beyond it). With `none` (the embedded default on 127.0.0.1) every
request acts as the built-in owner, as an admin with no limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from persistence import accounts
from persistence.accounts import Limits
from persistence.db import session_scope
from persistence.models import BUILTIN_OWNER
from persistence.settings import get_settings

ACTIVE_JOBS_RETRY_S = 30  # a job rarely ends sooner; GET /me shows the active count meanwhile

bearer = HTTPBearer(
    auto_error=False, description="an API key: `deepclust keys create NAME` or POST /keys"
)


@dataclass(frozen=True)
class Caller:
    key_id: str
    name: str
    is_admin: bool
    limits: Limits | None  # None: no limits (DEEPCLUST_AUTH=none)

    def may_see(self, row) -> bool:
        """Admins see every dataset and job; a key sees its own."""
        return self.is_admin or row.owner_id == self.key_id


NOBODY = Caller(
    key_id=BUILTIN_OWNER, name="built-in (DEEPCLUST_AUTH=none)", is_admin=True, limits=None
)


def unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if get_settings().auth_mode == "none":
        return NOBODY
    if credentials is None:
        raise unauthorized("an API key is required: send Authorization: Bearer <token>")
    with session_scope() as session:
        key = accounts.key_for_token(session, credentials.credentials)
        if key is None:
            raise unauthorized("the API key is invalid or revoked")
        caller = Caller(
            key_id=key.id, name=key.name, is_admin=key.is_admin, limits=accounts.limits_of(key)
        )
        count, retry_after = accounts.count_request(session, key.id)
    if count > caller.limits.requests_per_minute:
        raise HTTPException(
            429,
            f"request rate limit of {caller.limits.requests_per_minute} per minute reached "
            f"({count} requests this minute)",
            headers={"Retry-After": str(retry_after)},
        )
    return caller


CallerDep = Annotated[Caller, Depends(authenticate)]


def admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise HTTPException(403, "this needs an admin key")
    return caller


AdminDep = Annotated[Caller, Depends(admin)]


def check_active_jobs(session: Session, caller: Caller) -> None:
    """Before inserting a job, in the same transaction: lock the key, then count, so twenty
    concurrent submissions can never pass the limit together."""
    if caller.limits is None:
        return
    accounts.lock_key(session, caller.key_id)
    active = accounts.active_jobs(session, caller.key_id)
    if active >= caller.limits.max_active_jobs:
        raise HTTPException(
            429,
            f"active job limit reached: {active} of {caller.limits.max_active_jobs} jobs are "
            "queued or running; wait for one to finish or cancel one",
            headers={"Retry-After": str(ACTIVE_JOBS_RETRY_S)},
        )


def check_storage(session: Session, caller: Caller, adding: int) -> None:
    """Before storing `adding` more bytes, in the same transaction (the key's row locked)."""
    if caller.limits is None:
        return
    accounts.lock_key(session, caller.key_id)
    used = accounts.stored_bytes(session, caller.key_id)
    if used + adding > caller.limits.max_storage_bytes:
        raise HTTPException(
            413,
            f"storage limit of {caller.limits.max_storage_bytes} bytes reached: {used} bytes "
            f"stored, {adding} more asked for; delete datasets to free space",
        )
