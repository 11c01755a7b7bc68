import hashlib
import shutil
import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, CallerDep, authenticate, check_storage
from api.deps import Limit, Offset, SessionDep, dataset_or_404, unprocessable, visible
from api.idempotency import Claim, IdempotencyKey, begin, fingerprint
from api.schemas import DatasetOut, Page
from api.uploads import UploadTooLarge, receive_upload
from core.io import FORMATS, DataError, format_of, read_dataset
from persistence.db import session_scope
from persistence.models import Dataset, Job
from persistence.repository import create_dataset, delete_dataset, page
from persistence.settings import get_settings

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[Depends(authenticate)])
Name = Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f]*$",
                                   description="a name; its suffix gives the format when no file name is sent")]
Column = Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f]*$")]


@router.post("", status_code=201, response_model=DatasetOut)
async def upload_dataset(request: Request, response: Response, caller: CallerDep, name: Name = None,
                         format: Annotated[str | None, Query(description=f"one of {', '.join(FORMATS)}")] = None,
                         label_column: Column = None, id_column: Column = None,
                         idempotency_key: IdempotencyKey = None):
    """Upload .npy, .npz (X, optional y and ids), .csv or .parquet, as a multipart file
    (`curl -F file=@data.npz`) or a raw body (`curl --data-binary @data.npz '...?name=data.npz'`)."""
    limit = caller.limits.max_upload_bytes if caller.limits else get_settings().max_upload_bytes
    folder = tempfile.mkdtemp(prefix="deepclust-upload-")
    try:
        try:
            path, filename, size = await receive_upload(request, limit, folder)
        except UploadTooLarge:
            if limit == get_settings().max_upload_bytes:
                raise
            detail = f"upload is larger than this key's upload limit of {limit} bytes"
            raise HTTPException(413, detail) from None
        name = name or filename
        if format is None and name is None:
            raise unprocessable(["query", "format"], "say the file type: send a file name or ?format=npz")
        asked = fingerprint("POST /datasets", name, format, label_column, id_column,
                            await run_in_threadpool(_file_digest, path))
        claim = await run_in_threadpool(begin, caller, idempotency_key, asked)
        if isinstance(claim, JSONResponse):
            return claim  # a retry: the first response again, nothing stored twice
        async with claim:  # on failure nothing was stored: a retry may try again
            try:
                fmt = format.lower() if format else format_of(name)
                if fmt not in FORMATS:
                    raise DataError(f"unsupported format {fmt!r}; use one of {', '.join(FORMATS)}")
                return await run_in_threadpool(_store, path, fmt, name or f"upload.{fmt}", size,
                                               label_column, id_column, response, caller, claim)
            except DataError as exc:
                raise HTTPException(422, str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _store(path, fmt, name, size, label_column, id_column, response: Response, caller: Caller,
           claim: Claim) -> DatasetOut:
    data = read_dataset(path, fmt, label_column=label_column, id_column=id_column)
    npy_header = 128  # np.save's header for these arrays
    arrays = [a for a in (data.X, data.y, data.ids) if a is not None]
    with session_scope() as session:  # arrays, row and idempotency record in one transaction
        check_storage(session, caller, sum(a.nbytes + npy_header for a in arrays))
        row = create_dataset(session, name, fmt, data, size, owner_id=caller.key_id)
        out = DatasetOut.model_validate(row)
        location = f"/datasets/{out.id}"
        claim.record(session, 201, jsonable_encoder(out), location)
    response.headers["Location"] = location
    return out


@router.get("", response_model=Page[DatasetOut])
def list_datasets(session: SessionDep, caller: CallerDep, limit: Limit = 50, offset: Offset = 0):
    query = visible(select(Dataset).order_by(Dataset.created_at.desc()), Dataset, caller)
    items, total = page(session, query, limit, offset)
    return Page(items=[DatasetOut.model_validate(d) for d in items], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, caller: CallerDep):
    return dataset_or_404(session, dataset_id, caller)


@router.delete("/{dataset_id}", status_code=204)
def remove_dataset(dataset_id: str, session: SessionDep, caller: CallerDep) -> None:
    """Delete a dataset with its jobs and their results (their storage is free at once);
    refused while a job on it is active."""
    row = dataset_or_404(session, dataset_id, caller)
    active = session.scalar(select(Job.id).where(Job.dataset_id == dataset_id,
                                                  Job.status.in_(("queued", "running"))).limit(1))
    if active:
        raise HTTPException(409, f"job {active} on this dataset is still queued or running; cancel it first")
    delete_dataset(session, row)
    session.commit()
