"""Idempotency-Key records: the first request with a key claims it by inserting its row;
its response is written into that row in the same transaction as what it created, and
retries read it back. Kept per API key for 24 hours."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from persistence.accounts import _insert
from persistence.models import IdempotencyRecord, utcnow

KEEP = timedelta(hours=24)
# A claim with no response after this long belongs to a request that died between its claim
# and its commit (process killed); a retry may take it over.
ABANDONED_AFTER = timedelta(minutes=10)


def claim(session: Session, key_id: str, idempotency_key: str, fingerprint: str) -> bool:
    """True if this request is the first with this key (it must then complete or release it)."""
    now = utcnow()
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.key_id == key_id,
            IdempotencyRecord.idempotency_key == idempotency_key,
            or_(
                IdempotencyRecord.created_at < now - KEEP,
                IdempotencyRecord.status_code.is_(None)
                & (IdempotencyRecord.created_at < now - ABANDONED_AFTER),
            ),
        )
    )
    inserted = session.execute(
        _insert(session, IdempotencyRecord)
        .values(
            key_id=key_id, idempotency_key=idempotency_key, fingerprint=fingerprint, created_at=now
        )
        .on_conflict_do_nothing(
            index_elements=[IdempotencyRecord.key_id, IdempotencyRecord.idempotency_key]
        )
        .returning(IdempotencyRecord.key_id)
    )
    return inserted.first() is not None


def read(session: Session, key_id: str, idempotency_key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.key_id == key_id, IdempotencyRecord.idempotency_key == idempotency_key
        )
    )


def complete(
    session: Session,
    key_id: str,
    idempotency_key: str,
    status_code: int,
    response: dict,
    location: str | None,
) -> None:
    """Store the response; call it in the transaction that creates what the response names."""
    session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.key_id == key_id, IdempotencyRecord.idempotency_key == idempotency_key
        )
        .values(status_code=status_code, response=response, location=location)
    )


def release(session: Session, key_id: str, idempotency_key: str) -> None:
    """The request failed: let a retry run it again."""
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.key_id == key_id, IdempotencyRecord.idempotency_key == idempotency_key
        )
    )


def forget_expired(session: Session) -> int:
    return session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP)
    ).rowcount
