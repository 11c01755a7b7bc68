from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import Limit, Offset, SessionDep, dataset_or_404, unprocessable
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


@router.post("", status_code=201, response_model=DatasetOut)
async def upload_dataset(request: Request, response: Response, name: Name = None,
                         format: Annotated[str | None, Query(description=f"one of {', '.join(FORMATS)}")] = None,
                         label_column: Column = None, id_column: Column = None):
    """Upload .npy, .npz (X, optional y and ids), .csv or .parquet, as a multipart file
    (`curl -F file=@data.npz`) or a raw body (`curl --data-binary @data.npz '...?name=data.npz'`).
    The limit (413) is on the stored float32 array and on the upload itself."""
    if format is not None and format.lower() not in FORMATS:
        raise unprocessable(["query", "format"],
                            f"unsupported format {format[:20]!r}; use one of {', '.join(FORMATS)}")
    settings = get_settings()
    with upload_folder() as folder:
        path, filename, size = await receive_upload(request, settings.max_upload_bytes, folder)
        name = name or clean_filename(filename)
        try:
            if format is None and name is None:
                raise unprocessable(["query", "format"],
                                    "say the file type: send a file name or ?format=npz")
            fmt = format.lower() if format else format_of(name)
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


@router.get("", response_model=Page[DatasetOut])
def list_datasets(session: SessionDep, limit: Limit = 50, offset: Offset = 0):
    items, total = page(session, select(Dataset).order_by(Dataset.created_at.desc()), limit, offset)
    return Page(items=[DatasetOut.model_validate(d) for d in items], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep):
    return dataset_or_404(session, dataset_id)


@router.delete("/{dataset_id}", status_code=204)
def remove_dataset(dataset_id: str, session: SessionDep) -> None:
    """Delete a dataset with its jobs and their results; refused while a job on it is active."""
    row = dataset_or_404(session, dataset_id)
    active = session.scalar(select(Job.id).where(Job.dataset_id == dataset_id,
                                                  Job.status.in_(("queued", "running"))).limit(1))
    if active:
        raise HTTPException(409, f"job {active} on this dataset is still queued or running; cancel it first")
    delete_dataset(session, row)
    session.commit()
