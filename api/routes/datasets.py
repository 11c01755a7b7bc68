import hashlib
import threading
from collections import OrderedDict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.auth import Caller, CallerDep, authenticate, check_storage
from api.deps import Limit, Offset, SessionDep, dataset_or_404, errors, unprocessable, visible
from api.idempotency import Claim, IdempotencyKey, begin, fingerprint
from api.schemas import DatasetOut, Page, SamplesOut
from api.uploads import UploadTooLarge, clean_filename, receive_upload, upload_folder
from core.io import FORMATS, DataError, DataTooLarge, format_of, open_dataset
from deepclust_client.status import ACTIVE_STATES
from persistence import blobs
from persistence.db import session_scope
from persistence.models import Dataset, Job
from persistence.repository import create_dataset, dataset_folder, delete_dataset, page
from persistence.settings import get_settings

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    dependencies=[Depends(authenticate)],
    responses=errors(401, 429),
)
Name = Annotated[
    str | None,
    Query(
        max_length=255,
        pattern=r"^[^\x00-\x1f]*$",
        description="a name; its suffix gives the format when no file name is sent",
    ),
]
Column = Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f]*$")]
Format = Literal[FORMATS]  # type: ignore[valid-type]  (the readers' formats, an enum in the schema)
# The body is the file itself or a multipart form with a `file` part (streamed by
# api.uploads, so not a FastAPI body parameter): described here for clients and fuzzers.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    responses=errors(400, 413, 422),
    openapi_extra=UPLOAD_BODY,
)
async def upload_dataset(
    request: Request,
    response: Response,
    caller: CallerDep,
    name: Name = None,
    format: Annotated[
        Format | None, Query(description="the file type; default: the file name's suffix")
    ] = None,
    label_column: Column = None,
    id_column: Column = None,
    idempotency_key: IdempotencyKey = None,
):
    """Upload .npy, .npz (X, optional y and ids), .csv or .parquet, as a multipart file
    (`curl -F file=@data.npz`) or a raw body (`curl --data-binary @data.npz '...?name=data.npz'`).
    The limit (413) is on the stored float32 array and on the upload itself."""
    limit = caller.limits.max_upload_bytes if caller.limits else get_settings().max_upload_bytes
    with upload_folder() as folder:
        try:
            path, filename, size = await receive_upload(request, limit, folder)
        except UploadTooLarge:
            if limit == get_settings().max_upload_bytes:
                raise
            raise HTTPException(
                413, f"upload is larger than this key's upload limit of {limit} bytes"
            ) from None
        name = name or clean_filename(filename)
        if format is None and name is None:
            raise unprocessable(
                ["query", "format"], "say the file type: send a file name or ?format=npz"
            )
        asked = fingerprint(
            "POST /datasets",
            name,
            format,
            label_column,
            id_column,
            await run_in_threadpool(_file_digest, path),
        )
        claim = await run_in_threadpool(begin, caller, idempotency_key, asked)
        if isinstance(claim, JSONResponse):
            return claim  # a retry: the first response again, nothing stored twice
        async with claim:  # on failure nothing was stored: a retry may try again
            try:
                fmt = format or format_of(name)
                return await run_in_threadpool(
                    _store,
                    path,
                    fmt,
                    name or f"upload.{fmt}",
                    size,
                    label_column,
                    id_column,
                    folder,
                    limit,
                    response,
                    caller,
                    claim,
                )
            except DataTooLarge as exc:
                raise HTTPException(413, str(exc)) from None
            except DataError as exc:
                raise unprocessable(["body", "file"], str(exc)) from None


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _store(
    path,
    fmt,
    name,
    size,
    label_column,
    id_column,
    folder,
    limit,
    response: Response,
    caller: Caller,
    claim: Claim,
) -> DatasetOut:
    with open_dataset(
        path,
        fmt,
        label_column=label_column,
        id_column=id_column,
        max_stored_bytes=limit,
        spool_dir=folder,
    ) as data:
        npy_header = 128  # np.save's header for each array
        extra = sum(a.nbytes + npy_header for a in (data.y, data.ids) if a is not None)
        # arrays, row and idempotency record in one transaction: nothing half-made
        with session_scope() as session:
            check_storage(session, caller, data.stored_bytes + npy_header + extra)
            row = create_dataset(session, name, fmt, data, size, owner_id=caller.key_id)
            out = DatasetOut.model_validate(row)
            location = f"/datasets/{out.id}"
            claim.record(session, 201, jsonable_encoder(out), location)
    response.headers["Location"] = location
    return out


@router.get("", response_model=Page[DatasetOut], responses=errors(422))
def list_datasets(session: SessionDep, caller: CallerDep, limit: Limit = 50, offset: Offset = 0):
    query = visible(select(Dataset).order_by(Dataset.created_at.desc()), Dataset, caller)
    items, total = page(session, query, limit, offset)
    return Page(
        items=[DatasetOut.model_validate(d) for d in items], total=total, limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetOut, responses=errors(404))
def get_dataset(dataset_id: str, session: SessionDep, caller: CallerDep):
    return dataset_or_404(session, dataset_id, caller)


MAX_SAMPLES = 200  # rows per request: a page of thumbnails, never the whole array
SampleIndex = Annotated[
    list[Annotated[int, Query(ge=0, le=2**31 - 1)]] | None,
    Query(max_length=MAX_SAMPLES, description="rows to return (repeat it)"),
]


@router.get("/{dataset_id}/samples", response_model=SamplesOut, responses=errors(404, 422))
def dataset_samples(
    dataset_id: str,
    session: SessionDep,
    caller: CallerDep,
    index: SampleIndex = None,
    start: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    count: Annotated[int, Query(ge=1, le=MAX_SAMPLES)] = 16,
):
    """Some rows of the stored float32 array, images in their shape (H, W[, C]): the rows
    named by `index` (at most 200), or else `count` rows from `start`; with their labels."""
    row = dataset_or_404(session, dataset_id, caller)
    rows = list(index) if index else list(range(start, min(start + count, row.n)))
    outside = [i for i in rows if i >= row.n]
    if outside or not rows:
        raise unprocessable(
            ["query", "index" if index else "start"],
            f"rows {outside[:5] or [start]} are outside 0..{row.n - 1}",
        )
    X, y = _sample_arrays(session, row)
    return SamplesOut(
        index=rows,
        shape=list(X.shape[1:]),
        rows=X[rows].tolist(),
        labels=y[rows].tolist() if y is not None else None,
    )


# The page asks for a thumbnail per hovered point: keep the last few small datasets in memory
# (a stored dataset never changes; a deleted one is refused by dataset_or_404 before this).
SAMPLE_CACHE_BYTES = 256 << 20
_sample_cache: OrderedDict[str, tuple] = OrderedDict()
_sample_cache_lock = threading.Lock()


def _sample_arrays(session, row: Dataset) -> tuple:
    with _sample_cache_lock:
        if row.id in _sample_cache:
            _sample_cache.move_to_end(row.id)
            return _sample_cache[row.id]
    folder = dataset_folder(row.id)
    arrays = (
        blobs.load_array(session, f"{folder}/X.npy"),
        blobs.load_array(session, f"{folder}/y.npy") if row.has_labels else None,
    )
    if arrays[0].nbytes <= SAMPLE_CACHE_BYTES // 4:
        with _sample_cache_lock:
            _sample_cache[row.id] = arrays
            while sum(a[0].nbytes for a in _sample_cache.values()) > SAMPLE_CACHE_BYTES:
                _sample_cache.popitem(last=False)
    return arrays


@router.delete("/{dataset_id}", status_code=204, responses=errors(404, 409))
def remove_dataset(dataset_id: str, session: SessionDep, caller: CallerDep) -> None:
    """Delete a dataset with its jobs and their results (their storage is free at once);
    refused while a job on it is active."""
    # Locked until the commit: a concurrent POST /jobs on it waits, then finds it gone.
    row = dataset_or_404(session, dataset_id, caller, lock=True)
    active = session.scalar(
        select(Job.id).where(Job.dataset_id == dataset_id, Job.status.in_(ACTIVE_STATES)).limit(1)
    )
    if active:
        raise HTTPException(
            409, f"job {active} on this dataset is still queued or running; cancel it first"
        )
    delete_dataset(session, row)
    session.commit()
