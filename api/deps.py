"""Shared route dependencies and error helpers."""

from __future__ import annotations

import re
from typing import Annotated, Any, Iterator

from fastapi import Depends, HTTPException, Query
from sqlalchemy import Select
from sqlalchemy.orm import Session

from api.auth import Caller
from api.schemas import ErrorOut, ValidationErrorOut
from persistence.db import new_session
from persistence.models import Dataset, Job
from persistence.repository import lock_dataset
from persistence.settings import get_settings


def get_session() -> Iterator[Session]:
    """A session per request; handlers that write call session.commit() themselves."""
    session = new_session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]
Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
# Bounded so the database never sees an integer past its 64-bit range (a 500 before).
MAX_OFFSET = 2**31 - 1
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="items to skip")]
ID_PATTERN = re.compile(r"[0-9a-f]{32}")

ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a body that cannot be parsed (JSON, multipart)"},
    401: {"model": ErrorOut, "description": "no API key, or an invalid or revoked one"},
    403: {"model": ErrorOut, "description": "this needs an admin key"},
    404: {"model": ErrorOut, "description": "no such resource"},
    409: {"model": ErrorOut, "description": "the resource is in a state that refuses this"},
    413: {"model": ErrorOut, "description": "upload larger than DEEPCLUST_MAX_UPLOAD_BYTES"},
    422: {"model": ValidationErrorOut, "description": "invalid input; `detail` lists each problem"},
    429: {
        "model": ErrorOut,
        "description": "the key's request rate or active-job limit; see Retry-After",
    },
    503: {"model": ErrorOut, "description": "the database or the job queue is unreachable"},
}


def errors(*codes: int) -> dict[int, dict[str, Any]]:
    """The documented error responses of a route (its `responses=`)."""
    return {code: ERROR_RESPONSES[code] for code in codes}


def unprocessable(loc: list, msg: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's own validation-error shape, so clients parse one format."""
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": kind}])


def dataset_or_404(
    session: Session, dataset_id: str, caller: Caller, *, lock: bool = False
) -> Dataset:
    """The dataset, or a 404; another key's dataset is answered exactly as a missing one.
    `lock`: held until the commit (persistence.repository.lock_dataset)."""
    row = None
    if ID_PATTERN.fullmatch(
        dataset_id
    ):  # a malformed id names nothing (and PostgreSQL refuses NUL)
        row = lock_dataset(session, dataset_id) if lock else session.get(Dataset, dataset_id)
    if row is None or not caller.may_see(row):
        raise HTTPException(404, f"dataset {dataset_id} not found")
    return row


def job_or_404(session: Session, job_id: str, caller: Caller) -> Job:
    row = session.get(Job, job_id) if ID_PATTERN.fullmatch(job_id) else None
    if row is None or not caller.may_see(row):
        raise HTTPException(404, f"job {job_id} not found")
    return row


def visible(query: Select, model, caller: Caller) -> Select:
    """A list query narrowed to the caller's own rows (admins: every row)."""
    return query if caller.is_admin else query.where(model.owner_id == caller.key_id)


def memory_budget() -> tuple[int, str]:
    """Bytes a worker can give one job, and where that figure comes from (for error messages)."""
    configured = get_settings().memory_budget_mb
    if configured:
        return configured * 2**20, "the worker's memory budget (DEEPCLUST_MEMORY_BUDGET_MB)"
    import torch

    from core.resources import free_memory_bytes

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return free_memory_bytes(
        device
    ), f"this machine's free {'GPU ' if device == 'cuda' else ''}memory"
