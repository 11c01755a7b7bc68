"""Shared route dependencies and error helpers."""
from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Query
from sqlalchemy.orm import Session

from persistence.db import new_session
from persistence.models import Dataset, Job


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


def dataset_or_404(session: Session, dataset_id: str) -> Dataset:
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise HTTPException(404, f"dataset {dataset_id} not found")
    return row


def job_or_404(session: Session, job_id: str) -> Job:
    row = session.get(Job, job_id)
    if row is None:
        raise HTTPException(404, f"job {job_id} not found")
    return row
