"""Shared route dependencies and error helpers."""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Query
from sqlalchemy import Select
from sqlalchemy.orm import Session

from api.auth import Caller
from persistence.db import new_session
from persistence.models import Dataset, Job
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
Offset = Annotated[int, Query(ge=0, description="items to skip")]


def unprocessable(loc: list, msg: str, kind: str = "value_error") -> HTTPException:
    """A 422 in FastAPI's own validation-error shape, so clients parse one format."""
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": kind}])


def dataset_or_404(session: Session, dataset_id: str, caller: Caller) -> Dataset:
    """Another key's dataset is answered exactly as a missing one: 404, nothing about it."""
    row = session.get(Dataset, dataset_id)
    if row is None or not caller.may_see(row):
        raise HTTPException(404, f"dataset {dataset_id} not found")
    return row


def job_or_404(session: Session, job_id: str, caller: Caller) -> Job:
    row = session.get(Job, job_id)
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
    return free_memory_bytes(device), f"this machine's free {'GPU ' if device == 'cuda' else ''}memory"
