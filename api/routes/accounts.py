"""API keys (admins) and the caller's own limits and usage (GET /me)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.auth import AdminDep, CallerDep
from api.deps import SessionDep, errors
from persistence import accounts
from persistence.models import ApiKey

router = APIRouter(tags=["accounts"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]*$")
    admin: StrictBool = False  # JSON true/false only: 0 or "yes" are refused
    max_active_jobs: int | None = Field(
        None, ge=1, le=1_000_000, description="default: DEEPCLUST_DEFAULT_MAX_ACTIVE_JOBS"
    )
    max_storage_mb: int | None = Field(
        None, ge=1, le=2**40, description="default: DEEPCLUST_DEFAULT_MAX_STORAGE_MB"
    )
    max_upload_mb: int | None = Field(
        None, ge=1, le=2**40, description="default: DEEPCLUST_MAX_UPLOAD_BYTES"
    )
    requests_per_minute: int | None = Field(
        None, ge=1, le=10**9, description="default: DEEPCLUST_DEFAULT_REQUESTS_PER_MINUTE"
    )


@router.post("/keys", status_code=201, responses=errors(400, 401, 403, 422, 429))
def create_key(body: KeyCreate, session: SessionDep, _admin: AdminDep) -> dict:
    """A new key. Its `token` is in this response only: the server keeps just its hash."""
    key, token = accounts.create_key(session, **body.model_dump())
    session.commit()
    return {**accounts.key_as_dict(key), "token": token}


@router.get("/keys", responses=errors(401, 403, 429))
def list_keys(session: SessionDep, _admin: AdminDep) -> list[dict]:
    """Every key (revoked ones too), never a token."""
    return [accounts.key_as_dict(key) for key in accounts.list_keys(session)]


@router.delete("/keys/{key_id}", status_code=204, responses=errors(401, 403, 404, 429))
def revoke_key(key_id: str, session: SessionDep, _admin: AdminDep) -> None:
    """Revoke a key: its token stops working at once; what it owns stays."""
    if not accounts.revoke_key(session, key_id):
        raise HTTPException(404, f"no live key {key_id}")
    session.commit()


@router.get("/me", responses=errors(401, 429))
def me(session: SessionDep, caller: CallerDep) -> dict:
    """This key: its name, its limits and what it uses now."""
    key = session.get(ApiKey, caller.key_id)
    return {
        "id": caller.key_id,
        "name": caller.name,
        "admin": caller.is_admin,
        "limits": caller.limits.__dict__ if caller.limits else None,
        "usage": {
            "active_jobs": accounts.active_jobs(session, caller.key_id),
            "stored_bytes": accounts.stored_bytes(session, caller.key_id),
            "requests_this_minute": accounts.requests_this_minute(session, caller.key_id),
        },
        "created_at": key.created_at.isoformat() if key is not None and key.created_at else None,
    }
