import asyncio
import json
import time
from typing import Annotated, AsyncIterator, Literal

import numpy as np
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, authenticate, check_active_jobs, check_storage
from api.deps import Limit, Offset, SessionDep, errors, job_or_404, memory_budget, visible
from api.idempotency import Claim, IdempotencyKey, begin, fingerprint
from api.schemas import ConfusionOut, JobCreate, JobOut, Page, ProjectionOut
from core.io import artifact_csv_chunks, assignment_csv_chunks
from core.jobs import JobRejected, check_data, job_spec
from core.metrics import hungarian_map
from deepclust_client.status import FINAL_STATES, JobStatus
from persistence import blobs
from persistence.db import session_scope
from persistence.models import Dataset, Job, JobResult
from persistence.repository import (
    artifact_key,
    create_job,
    dataset_folder,
    end_job,
    job_events_after,
    job_folder,
    lock_dataset,
    page,
    request_cancel,
)
from persistence.settings import get_settings
from worker.celery_app import enqueue

router = APIRouter(
    prefix="/jobs", tags=["jobs"], dependencies=[Depends(authenticate)], responses=errors(401, 429)
)


@router.post("", status_code=202, response_model=JobOut, responses=errors(400, 404, 422, 503))
def submit_job(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    caller: CallerDep,
    idempotency_key: IdempotencyKey = None,
):
    """Validate the method, its parameters and the data against each other, store the job
    as queued and enqueue it. Poll GET /jobs/{id} (the Location header) for its progress.
    With an Idempotency-Key, a retry of the same request returns this response again."""
    claim = begin(caller, idempotency_key, fingerprint("POST /jobs", body.model_dump(mode="json")))
    if isinstance(claim, JSONResponse):
        return claim  # a retry: the first response, no second job
    with claim:  # on failure no job was made (or it could not be queued): a retry may try again
        return _submit(body, response, session, caller, claim)


def _submit(body: JobCreate, response: Response, session, caller, claim: Claim) -> JobOut:
    try:
        spec = job_spec(body.method, body.params, body.n_clusters, body.seed)
        # Locked until the commit: a concurrent DELETE /datasets/{id} waits, then sees this job.
        dataset = lock_dataset(session, body.dataset_id)
        if dataset is None or not caller.may_see(dataset):  # another key's reads as a missing one
            raise HTTPException(404, f"dataset {body.dataset_id} not found")
        spec = check_data(spec, tuple(dataset.shape), memory_budget())  # auto: picked
    except JobRejected as exc:  # 422 in FastAPI's shape, at the body field the refusal names
        field = "dataset_id" if exc.field == "data" else exc.field
        detail = [{**e, "loc": ["body", field, *e["loc"]]} for e in exc.errors]
        raise HTTPException(422, detail) from None
    check_active_jobs(session, caller)  # locks the key's row until the commit
    check_storage(session, caller, adding=dataset.n * 16)  # labels, confidence, a small embedding
    job = create_job(
        session,
        dataset.id,
        spec.method_name,
        body.n_clusters,
        spec.stored_params(),
        body.seed,
        owner_id=caller.key_id,
    )
    out = JobOut.model_validate(job)
    claim.record(session, 202, jsonable_encoder(out), f"/jobs/{job.id}")
    session.commit()  # the worker must find the row: enqueue only after the commit
    try:
        enqueue(job.id)
    except Exception as exc:
        end_job(
            session,
            job.id,
            JobStatus.FAILED,
            f"could not reach the job queue: {exc}",
            from_status=JobStatus.QUEUED,
        )
        session.commit()
        raise HTTPException(
            503, f"the job queue is unavailable ({type(exc).__name__}); job {job.id} was not run"
        ) from exc
    response.headers["Location"] = f"/jobs/{job.id}"
    return out


@router.get("", response_model=Page[JobOut], responses=errors(422))
def list_jobs(
    session: SessionDep,
    caller: CallerDep,
    limit: Limit = 50,
    offset: Offset = 0,
    status: Annotated[JobStatus | None, Query()] = None,
    dataset_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
):
    query = visible(select(Job).order_by(Job.created_at.desc()), Job, caller)
    if status:
        query = query.where(Job.status == status)
    if dataset_id:
        query = query.where(Job.dataset_id == dataset_id)
    items, total = page(session, query, limit, offset)
    return Page(
        items=[JobOut.model_validate(j) for j in items], total=total, limit=limit, offset=offset
    )


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: str, session: SessionDep, caller: CallerDep):
    return job_or_404(session, job_id, caller)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut, responses=errors(404, 409))
def cancel_job(job_id: str, session: SessionDep, caller: CallerDep):
    """A queued job is cancelled at once; a running one stops at its next progress step."""
    job = job_or_404(session, job_id, caller)
    if not request_cancel(session, job):
        raise HTTPException(409, f"job {job_id} has already {job.status}")
    session.commit()
    session.refresh(job)
    return job


def _succeeded(session, job_id: str, caller) -> Job:
    job = job_or_404(session, job_id, caller)
    if job.status != JobStatus.SUCCEEDED:
        detail = f"job {job_id} is {job.status}; results exist only once it has succeeded"
        raise HTTPException(409, detail)
    return job


@router.get(
    "/{job_id}/assignments.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **errors(404, 409)},
)
def assignments_csv(job_id: str, session: SessionDep, caller: CallerDep):
    """index,sample_id,cluster,confidence for every sample, in the order of the upload."""
    job = _succeeded(session, job_id, caller)
    dataset = session.get(Dataset, job.dataset_id)
    folder = job_folder(job_id)
    labels = blobs.load_array(session, f"{folder}/labels.npy")
    confidence = blobs.load_array(session, f"{folder}/confidence.npy")
    ids = (
        blobs.load_array(session, f"{dataset_folder(dataset.id)}/ids.npy")
        if dataset.has_ids
        else None
    )
    return StreamingResponse(
        assignment_csv_chunks(labels, confidence, ids),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-assignments.csv"'},
    )


@router.get(
    "/{job_id}/embedding.npy",
    responses={200: {"content": {"application/octet-stream": {}}}, **errors(404, 409)},
)
def embedding_npy(job_id: str, session: SessionDep, caller: CallerDep) -> Response:
    """The latent embedding (n, d') as a float32 .npy file."""
    _succeeded(session, job_id, caller)
    return Response(
        blobs.read_bytes(session, f"{job_folder(job_id)}/embedding.npy"),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-embedding.npy"'},
    )


ARTIFACT_RESPONSES = {
    200: {"content": {"text/csv": {}, "application/octet-stream": {}}},
    **errors(404, 409, 422),
}


@router.get("/{job_id}/artifacts/{name}", response_class=Response, responses=ARTIFACT_RESPONSES)
def artifact(
    job_id: str,
    name: str,
    session: SessionDep,
    caller: CallerDep,
    format: Annotated[
        Literal["csv", "npy"],
        Query(
            description="csv: a row per entry, "
            "with the sample id when it has one "
            "per sample; npy: the array"
        ),
    ] = "csv",
):
    """One of the arrays the job's method returned besides its labels (listed in the job's
    `artifacts`). CSV takes 1-D and 2-D arrays; any array downloads as .npy."""
    job = _succeeded(session, job_id, caller)
    listed = {entry["name"]: entry for entry in job.artifacts or []}
    if name not in listed:
        raise HTTPException(
            404,
            f"job {job_id} has no artifact named {name[:64]!r}; "
            f"it has: {', '.join(listed) or 'none'}",
        )
    filename = f"{job_id}-{name}.{format}"
    disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "npy":
        return Response(
            blobs.read_bytes(session, artifact_key(job_id, name)),
            media_type="application/octet-stream",
            headers=disposition,
        )
    if len(listed[name]["shape"]) > 2:
        raise HTTPException(
            409,
            f"artifact {name} has shape {listed[name]['shape']}: CSV takes "
            "1-D and 2-D arrays; ask for ?format=npy",
        )
    values = blobs.load_array(session, artifact_key(job_id, name))
    dataset = session.get(Dataset, job.dataset_id)
    per_sample = len(values) == dataset.n
    ids = (
        blobs.load_array(session, f"{dataset_folder(dataset.id)}/ids.npy")
        if per_sample and dataset.has_ids
        else None
    )
    return StreamingResponse(
        artifact_csv_chunks(name, values, per_sample, ids),
        media_type="text/csv",
        headers=disposition,
    )


@router.get("/{job_id}/history", responses=errors(404, 409))
def history(job_id: str, session: SessionDep, caller: CallerDep) -> list[dict]:
    """Every progress record of the run: phase, step, losses, label changes, live metrics."""
    _succeeded(session, job_id, caller)
    return session.get(JobResult, job_id).history


@router.get("/{job_id}/projection", response_model=ProjectionOut, responses=errors(404, 409))
def projection(job_id: str, session: SessionDep, caller: CallerDep):
    """The 2-D map of the embedding (UMAP; PCA for a 2-D embedding or under 100 samples), at
    most 20,000 samples (stratified by cluster), with each one's cluster and confidence."""
    job = _succeeded(session, job_id, caller)
    folder = job_folder(job_id)
    if not blobs.has_blob(session, f"{folder}/projection.npy"):
        raise HTTPException(
            409,
            f"job {job_id} has no 2-D map (it finished before maps were made, or making it failed)",
        )
    rows = blobs.load_array(session, f"{folder}/projection.npy")
    index = rows[:, 0].astype(np.int64)
    labels = blobs.load_array(session, f"{folder}/labels.npy")
    confidence = blobs.load_array(session, f"{folder}/confidence.npy")
    timings = (job.metrics or {}).get("timings", {})
    return ProjectionOut(
        method=timings.get("projection_method", "umap"),
        total=len(labels),
        index=index.tolist(),
        x=np.round(rows[:, 1], 4).tolist(),
        y=np.round(rows[:, 2], 4).tolist(),
        cluster=labels[index].tolist(),
        confidence=np.round(confidence[index].astype(np.float64), 4).tolist(),
    )


@router.get("/{job_id}/confusion", response_model=ConfusionOut, responses=errors(404, 409))
def confusion(job_id: str, session: SessionDep, caller: CallerDep):
    """Clusters against the dataset's stored labels (409 when it has none)."""
    job = _succeeded(session, job_id, caller)
    dataset = session.get(Dataset, job.dataset_id)
    if not dataset.has_labels:
        raise HTTPException(409, f"dataset {dataset.id} has no labels to compare with")
    y_true = blobs.load_array(session, f"{dataset_folder(dataset.id)}/y.npy")
    y_pred = blobs.load_array(session, f"{job_folder(job_id)}/labels.npy")
    classes, col = np.unique(y_true, return_inverse=True)
    clusters, row = np.unique(y_pred, return_inverse=True)
    matrix = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(matrix, (row, col), 1)
    mapping, _ = hungarian_map(y_true, y_pred)
    return ConfusionOut(
        clusters=clusters.tolist(),
        classes=classes.tolist(),
        matrix=matrix.tolist(),
        mapping={str(k): v for k, v in mapping.items()},
    )


# ---- live progress: Server-Sent Events ----------------------------------------------------------
EVENTS_POLL_S = 0.5  # how often the stream looks for new records
KEEPALIVE_S = 15.0  # a comment after this long without data: proxies keep the stream open
EVENTS_PER_POLL = 500

EVENTS_DOC = """Each progress record as an SSE message: `id: <seq>` and `data: <record JSON>` (the
records of GET /jobs/{id}/history, thinned evenly when a method reports more than
DEEPCLUST_EVENTS_PER_BEAT of them per heartbeat), first those stored so far, then new ones
as the worker reports them, and finally `event: end` with `data: {"status", "error"}` once the
job is final (or `deleted`; or, when the stream reaches the job time limit, the job's current
status, queued or running: reconnect or poll). `: keep-alive` comments come every 15 s of
silence. A client that reconnects with the `Last-Event-ID` header gets only the records
after that seq."""


SSE_EXAMPLE = (
    'id: 1\ndata: {"phase": "starting", "step": 0, "total": 0}\n\n'
    'event: end\ndata: {"status": "succeeded", "error": null}\n\n'
)
ResumeAfter = Annotated[int | None, Header(ge=0, description="resume after this seq")]


EVENTS_RESPONSES = {
    200: {
        "content": {"text/event-stream": {"example": SSE_EXAMPLE}},
        "description": "the job's progress records, then `event: end`",
    },
    404: {"description": "no job with this id"},
    422: {"description": "Last-Event-ID is not a non-negative integer"},
}


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    description=EVENTS_DOC,
    responses=EVENTS_RESPONSES,
)
async def job_events(
    job_id: str, request: Request, caller: CallerDep, last_event_id: ResumeAfter = None
) -> StreamingResponse:
    await run_in_threadpool(_job_exists_or_404, job_id, caller)
    return StreamingResponse(
        _event_stream(request, job_id, last_event_id or 0),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _job_exists_or_404(job_id: str, caller) -> None:
    with session_scope() as session:
        job_or_404(session, job_id, caller)


def _poll_events(job_id: str, after_seq: int) -> tuple[str | None, str | None, list]:
    """The job's status and error, then its records after `after_seq`. In this order: a status
    read as final was written after the worker's last records, so the read that follows has them."""
    with session_scope() as session:  # one short session per poll: no connection held while waiting
        job = session.get(Job, job_id)
        if job is None:  # deleted with its dataset meanwhile
            return None, None, []
        status, error = job.status, job.error
        events = job_events_after(session, job_id, after_seq, EVENTS_PER_POLL)
        return status, error, [(event.seq, event.record) for event in events]


async def _event_stream(request: Request, job_id: str, after_seq: int) -> AsyncIterator[str]:
    deadline = time.monotonic() + get_settings().job_time_limit_s
    last_sent = time.monotonic()
    while True:
        status, error, events = await run_in_threadpool(_poll_events, job_id, after_seq)
        for seq, record in events:
            yield f"id: {seq}\ndata: {json.dumps(record)}\n\n"
            after_seq, last_sent = seq, time.monotonic()
        if len(events) == EVENTS_PER_POLL:
            continue  # more are waiting
        if status is None or status in FINAL_STATES or time.monotonic() > deadline:
            end = {"status": status or "deleted", "error": error}
            yield f"event: end\ndata: {json.dumps(end)}\n\n"
            return
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        if await request.is_disconnected():
            return
        await asyncio.sleep(EVENTS_POLL_S)
