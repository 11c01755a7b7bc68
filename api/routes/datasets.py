from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import Limit, Offset, SessionDep, dataset_or_404, errors, unprocessable
from api.schemas import DatasetOut, Page
from api.uploads import clean_filename, receive_upload, upload_folder
from core.io import FORMATS, DataError, DataTooLarge, format_of, open_dataset
from persistence.db import session_scope
from persistence.models import Dataset, Job
from persistence.repository import create_dataset, delete_dataset, page
from persistence.settings import get_settings

router = APIRouter(prefix="/datasets", tags=["datasets"])
Name = Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f]*$",
                                   description="a name; its suffix gives the format when no file name is sent")]
Column = Annotated[str | None, Query(max_length=255, pattern=r"^[^\x00-\x1f]*$")]
Format = Literal[FORMATS]  # type: ignore[valid-type]  (the readers' formats, an enum in the schema)
# The body is the file itself or a multipart form with a `file` part (streamed by
# api.uploads, so not a FastAPI body parameter): described here for clients and fuzzers.
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}


@router.post("", status_code=201, response_model=DatasetOut, responses=errors(400, 413, 422),
             openapi_extra=UPLOAD_BODY)
async def upload_dataset(request: Request, response: Response, name: Name = None,
                         format: Annotated[Format | None, Query(description="the file type; default: "
                                                                "the file name's suffix")] = None,
                         label_column: Column = None, id_column: Column = None):
    """Upload .npy, .npz (X, optional y and ids), .csv or .parquet, as a multipart file
    (`curl -F file=@data.npz`) or a raw body (`curl --data-binary @data.npz '...?name=data.npz'`).
    The limit (413) is on the stored float32 array and on the upload itself."""
    settings = get_settings()
    with upload_folder() as folder:
        path, filename, size = await receive_upload(request, settings.max_upload_bytes, folder)
        name = name or clean_filename(filename)
        try:
            if format is None and name is None:
                raise unprocessable(["query", "format"],
                                    "say the file type: send a file name or ?format=npz")
            fmt = format or format_of(name)
            return await run_in_threadpool(_store, path, fmt, name or f"upload.{fmt}", size,
                                           label_column, id_column, folder,
                                           settings.max_upload_bytes, response)
        except DataTooLarge as exc:
            raise HTTPException(413, str(exc)) from None
        except DataError as exc:
            raise unprocessable(["body", "file"], str(exc)) from None


def _store(path, fmt, name, size, label_column, id_column, folder, limit,
           response: Response) -> DatasetOut:
    with open_dataset(path, fmt, label_column=label_column, id_column=id_column,
                      max_stored_bytes=limit, spool_dir=folder) as data:
        with session_scope() as session:  # arrays and row in one transaction: nothing half-made
            row = create_dataset(session, name, fmt, data, size)
            out = DatasetOut.model_validate(row)
    response.headers["Location"] = f"/datasets/{out.id}"
    return out


@router.get("", response_model=Page[DatasetOut], responses=errors(422))
def list_datasets(session: SessionDep, limit: Limit = 50, offset: Offset = 0):
    items, total = page(session, select(Dataset).order_by(Dataset.created_at.desc()), limit, offset)
    return Page(items=[DatasetOut.model_validate(d) for d in items], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=errors(404))
def get_dataset(dataset_id: str, session: SessionDep):
    return dataset_or_404(session, dataset_id)


@router.delete("/{dataset_id}", status_code=204, responses=errors(404, 409))
def remove_dataset(dataset_id: str, session: SessionDep) -> None:
    """Delete a dataset with its jobs and their results; refused while a job on it is active."""
    # Locked until the commit: a concurrent POST /jobs on it waits, then finds it gone.
    row = dataset_or_404(session, dataset_id, lock=True)
    active = session.scalar(select(Job.id).where(Job.dataset_id == dataset_id,
                                                  Job.status.in_(("queued", "running"))).limit(1))
    if active:
        raise HTTPException(409, f"job {active} on this dataset is still queued or running; cancel it first")
    delete_dataset(session, row)
    session.commit()
