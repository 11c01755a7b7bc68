from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from sqlalchemy import select

from api.deps import (
    Limit,
    Offset,
    SessionDep,
    errors,
    job_or_404,
    memory_budget,
    unprocessable,
)
from api.schemas import JobCreate, JobOut, JobStatus, Page
from core import method_names
from core.io import assignment_csv_chunks
from core.registry import get_method
from core.resources import size_problem
from persistence import blobs
from persistence.models import Dataset, Job, JobResult
from persistence.repository import (
    create_job,
    dataset_folder,
    end_job,
    job_folder,
    lock_dataset,
    page,
    request_cancel,
)
from worker.celery_app import enqueue

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("", status_code=202, response_model=JobOut, responses=errors(400, 422, 503))
def submit_job(body: JobCreate, response: Response, session: SessionDep):
    """Validate the method, its parameters and the data against each other, store the job
    as queued and enqueue it. Poll GET /jobs/{id} (the Location header) for its progress."""
    if body.method not in method_names():
        raise unprocessable(["body", "method"], f"unknown method {body.method!r}; known: {', '.join(method_names())}")
    method = get_method(body.method)
    try:
        params = method.Params.model_validate(body.params)
    except ValidationError as exc:
        raise HTTPException(422, [{"loc": ["body", "params", *e["loc"]], "msg": e["msg"], "type": e["type"]}
                                  for e in exc.errors(include_url=False, include_context=False)]) from None
    # Locked until the commit: a concurrent DELETE /datasets/{id} waits, then sees this job.
    dataset = lock_dataset(session, body.dataset_id)
    if dataset is None:
        raise unprocessable(["body", "dataset_id"], f"dataset {body.dataset_id} does not exist")
    problem = method.accepts.problem(tuple(dataset.shape), body.n_clusters)
    if problem:
        field = "n_clusters" if problem.startswith("n_clusters") else "dataset_id"
        raise unprocessable(["body", field], f"{body.method}: {problem}")
    if method.memory_bytes(tuple(dataset.shape), body.n_clusters, params) is not None:
        budget, where = memory_budget()
        problem = size_problem(lambda shape: method.memory_bytes(shape, body.n_clusters, params),
                               tuple(dataset.shape), budget, where)
        if problem:
            raise unprocessable(["body", "dataset_id"], f"{body.method}: {problem}")
    job = create_job(session, dataset.id, body.method, body.n_clusters, params.model_dump(mode="json"), body.seed)
    session.commit()  # the worker must find the row: enqueue only after the commit
    try:
        enqueue(job.id)
    except Exception as exc:
        end_job(session, job.id, "failed", f"could not reach the job queue: {exc}", from_status="queued")
        session.commit()
        raise HTTPException(503, f"the job queue is unavailable ({type(exc).__name__}); job {job.id} was not run")
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


@router.get("", response_model=Page[JobOut], responses=errors(422))
def list_jobs(session: SessionDep, limit: Limit = 50, offset: Offset = 0,
              status: Annotated[JobStatus | None, Query()] = None,
              dataset_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None):
    query = select(Job).order_by(Job.created_at.desc())
    if status:
        query = query.where(Job.status == status)
    if dataset_id:
        query = query.where(Job.dataset_id == dataset_id)
    items, total = page(session, query, limit, offset)
    return Page(items=[JobOut.model_validate(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobOut, responses=errors(404))
def get_job(job_id: str, session: SessionDep):
    return job_or_404(session, job_id)


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut, responses=errors(404, 409))
def cancel_job(job_id: str, session: SessionDep):
    """A queued job is cancelled at once; a running one stops at its next progress step."""
    job = job_or_404(session, job_id)
    if not request_cancel(session, job):
        raise HTTPException(409, f"job {job_id} has already {job.status}")
    session.commit()
    session.refresh(job)
    return job


def _succeeded(session, job_id: str) -> Job:
    job = job_or_404(session, job_id)
    if job.status != "succeeded":
        detail = f"job {job_id} is {job.status}; results exist only once it has succeeded"
        raise HTTPException(409, detail)
    return job


@router.get("/{job_id}/assignments.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **errors(404, 409)})
def assignments_csv(job_id: str, session: SessionDep):
    """index,sample_id,cluster,confidence for every sample, in the order of the upload."""
    job = _succeeded(session, job_id)
    dataset = session.get(Dataset, job.dataset_id)
    folder = job_folder(job_id)
    labels = blobs.load_array(session, f"{folder}/labels.npy")
    confidence = blobs.load_array(session, f"{folder}/confidence.npy")
    ids = blobs.load_array(session, f"{dataset_folder(dataset.id)}/ids.npy") if dataset.has_ids else None
    return StreamingResponse(assignment_csv_chunks(labels, confidence, ids), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{job_id}-assignments.csv"'})


@router.get("/{job_id}/embedding.npy",
            responses={200: {"content": {"application/octet-stream": {}}}, **errors(404, 409)})
def embedding_npy(job_id: str, session: SessionDep) -> Response:
    """The latent embedding (n, d') as a float32 .npy file."""
    _succeeded(session, job_id)
    return Response(blobs.read_bytes(session, f"{job_folder(job_id)}/embedding.npy"), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{job_id}-embedding.npy"'})


@router.get("/{job_id}/history", responses=errors(404, 409))
def history(job_id: str, session: SessionDep) -> list[dict]:
    """Every progress record of the run: phase, step, losses, label changes, live metrics."""
    _succeeded(session, job_id)
    return session.get(JobResult, job_id).history
