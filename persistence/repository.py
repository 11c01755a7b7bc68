"""Every query on datasets and jobs, in one place. The job state machine lives here:

    queued -> running -> succeeded | failed | cancelled

Each transition is a compare-and-set UPDATE, so two workers (or a redelivered message)
can never both run a job, and a cancel can never be overwritten by a late success.
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from core.io import Dataset as DatasetArrays
from core.io import DatasetStream
from deepclust_client.status import FINAL_STATES, JobStatus
from persistence import blobs
from persistence.models import BUILTIN_OWNER, Dataset, Job, JobEvent, JobResult, new_id, utcnow

log = logging.getLogger(__name__)

# A method's artifacts are per-sample arrays of a few columns (DSCNSS: its head's labels). The
# bound keeps a method's bug from filling the store; what passes it counts against the quota.
MAX_ARTIFACT_BYTES = 256 << 20  # all of one job's artifacts together
ARTIFACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # also a file name and a URL segment


# ---- datasets ---------------------------------------------------------------------------------
def dataset_folder(dataset_id: str) -> str:
    return f"datasets/{dataset_id}"


def job_folder(job_id: str) -> str:
    return f"jobs/{job_id}"


def artifact_key(job_id: str, name: str) -> str:
    """Inside the job's folder: deleted with it (retention, dataset deletion)."""
    return f"{job_folder(job_id)}/artifacts/{name}.npy"


def create_dataset(
    session: Session,
    name: str,
    fmt: str,
    data: DatasetStream,
    size_bytes: int,
    owner_id: str = BUILTIN_OWNER,
) -> Dataset:
    """Store a checked upload: X is converted, checked, hashed and written a chunk at a time.
    A DataError from a later chunk (a NaN) leaves nothing behind once the transaction rolls back."""
    row_id, now = new_id(), utcnow()
    folder = dataset_folder(row_id)
    try:
        stored, checksum, stats = _write_float32(session, f"{folder}/X.npy", data)
        if data.y is not None:
            stored += blobs.save_array(session, f"{folder}/y.npy", data.y)
        if data.ids is not None:
            stored += blobs.save_array(session, f"{folder}/ids.npy", data.ids)
    except BaseException:
        blobs.delete_folder(session, folder)  # local files are outside the transaction
        raise
    row = Dataset(
        id=row_id,
        name=name,
        format=fmt,
        n=int(data.shape[0]),
        shape=list(data.shape),
        source_dtype=data.source_dtype,
        kind=data.kind,
        has_labels=data.y is not None,
        n_classes=int(data.y.max()) + 1 if data.y is not None else None,
        has_ids=data.ids is not None,
        checksum=checksum,
        size_bytes=size_bytes,
        stats=stats,
        stored_bytes=stored,
        owner_id=owner_id,
        created_at=now,
        last_used_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _write_float32(session: Session, key: str, data: DatasetStream) -> tuple[int, str, dict]:
    """Write X as a C-ordered float32 .npy; return the bytes stored, its sha256 (of the array
    bytes, the same as hashing X.tobytes()) and its statistics."""
    digest, stats = hashlib.sha256(), RunningStats()
    with blobs.blob_writer(session, key) as out:
        np.lib.format.write_array_header_1_0(
            out, {"descr": "<f4", "fortran_order": False, "shape": tuple(data.shape)}
        )
        for chunk in data.float32_chunks():
            digest.update(chunk)
            stats.add(chunk)
            out.write(chunk)
        stored = out.tell()
    return stored, digest.hexdigest(), stats.as_dict()


class RunningStats:
    """min, max, mean and std over chunks (Chan et al.'s pairwise update, in float64)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = float("inf"), float("-inf")

    def add(self, chunk: np.ndarray) -> None:
        count = chunk.size
        mean = float(chunk.mean(dtype=np.float64))
        deviation = chunk.astype(np.float64)
        deviation -= mean
        m2 = float(np.dot(deviation, deviation))
        total = self.count + count
        delta = mean - self.mean
        self.mean += delta * count / total
        self.m2 += m2 + delta * delta * self.count * count / total
        self.count = total
        self.min, self.max = min(self.min, float(chunk.min())), max(self.max, float(chunk.max()))

    def as_dict(self) -> dict:
        std = (self.m2 / self.count) ** 0.5
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": std}


def load_dataset_arrays(session: Session, row: Dataset) -> DatasetArrays:
    folder = dataset_folder(row.id)
    return DatasetArrays(
        X=blobs.load_array(session, f"{folder}/X.npy"),
        y=blobs.load_array(session, f"{folder}/y.npy") if row.has_labels else None,
        ids=blobs.load_array(session, f"{folder}/ids.npy") if row.has_ids else None,
        source_dtype=row.source_dtype,
    )


def lock_dataset(session: Session, dataset_id: str) -> Dataset | None:
    """The dataset row, locked until the transaction ends, or None. Submitting a job and
    deleting a dataset both take this lock first, so they are serialised: a job is never
    inserted under a dataset being deleted, nor deleted with it once accepted."""
    if session.get_bind().dialect.name == "sqlite":
        # No row locks: a write takes the database's write lock, held until the commit. It
        # must be the transaction's first statement, so no older read snapshot has to upgrade.
        session.execute(update(Dataset).where(Dataset.id == dataset_id).values(id=Dataset.id))
    return session.scalar(
        select(Dataset)
        .where(Dataset.id == dataset_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def delete_dataset(session: Session, row: Dataset) -> None:
    job_ids = session.scalars(select(Job.id).where(Job.dataset_id == row.id)).all()
    for job_id in job_ids:
        blobs.delete_folder(session, job_folder(job_id))
    blobs.delete_folder(session, dataset_folder(row.id))
    session.delete(row)


def page(session: Session, query, limit: int, offset: int) -> tuple[list, int]:
    """One page of a list query, and the total count (shared by every list endpoint)."""
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    return session.scalars(query.limit(limit).offset(offset)).all(), int(total or 0)


# ---- jobs ---------------------------------------------------------------------------------------
def create_job(
    session: Session,
    dataset_id: str,
    method: str,
    n_clusters: int | None,
    params: dict,
    seed: int,
    owner_id: str = BUILTIN_OWNER,
) -> Job:
    now = utcnow()
    job = Job(
        id=new_id(),
        dataset_id=dataset_id,
        method=method,
        n_clusters=n_clusters,
        params=params,
        seed=seed,
        status=JobStatus.QUEUED,
        attempts=0,
        cancel_requested=False,
        created_at=now,
        enqueued_at=now,
        owner_id=owner_id,
        stored_bytes=0,
    )
    session.execute(
        update(Dataset).where(Dataset.id == dataset_id).values(last_used_at=now)
    )  # retention
    session.add(job)
    session.flush()
    return job


def claim_job(
    session: Session, job_id: str, worker: str, stale_after_s: float, max_attempts: int
) -> bool:
    """queued -> running, or take over a running job whose heartbeat stopped. False: not ours to
    run."""
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempts < max_attempts,
            Job.cancel_requested.is_(False),
            or_(
                Job.status == JobStatus.QUEUED,
                (Job.status == JobStatus.RUNNING)
                & (Job.heartbeat_at < now - timedelta(seconds=stale_after_s)),
            ),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            error=None,
        )
    ).rowcount
    return claimed == 1


def heartbeat(
    session: Session, job_id: str, progress: dict | None, device: str | None = None
) -> bool:
    """Record that the job is alive (and its latest progress); True if a cancel was requested."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    if device is not None:
        values["device"] = device
    running = Job.id == job_id, Job.status == JobStatus.RUNNING
    session.execute(update(Job).where(*running).values(**values))
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def finish_job(
    session: Session,
    job_id: str,
    *,
    labels: np.ndarray,
    confidence: np.ndarray,
    embedding: np.ndarray,
    metrics: dict,
    history: list,
    progress: dict | None,
    device: str,
    versions: dict,
    wall_s: float,
    peak_mb: float,
    projection: np.ndarray | None = None,
    artifacts: dict[str, np.ndarray] | None = None,
) -> bool:
    """running -> succeeded with every result, in the caller's single transaction.
    `projection`: the 2-D map's (m, 3) rows of index, x, y (core.projection); `artifacts`:
    the method's other arrays, those within the bound (storable_artifacts)."""
    done = (
        session.execute(
            update(Job)
            .where(
                Job.id == job_id, Job.status == JobStatus.RUNNING, Job.cancel_requested.is_(False)
            )
            .values(
                status=JobStatus.SUCCEEDED,
                metrics=metrics,
                progress=progress,
                device=device,
                versions=versions,
                wall_s=wall_s,
                peak_mb=peak_mb,
                finished_at=utcnow(),
            )
        ).rowcount
        == 1
    )
    if not done:
        return False
    folder = job_folder(job_id)
    stored = (
        blobs.save_array(session, f"{folder}/labels.npy", labels.astype(np.int64))
        + blobs.save_array(session, f"{folder}/confidence.npy", confidence.astype(np.float32))
        + blobs.save_array(session, f"{folder}/embedding.npy", embedding.astype(np.float32))
    )
    if projection is not None:
        stored += blobs.save_array(session, f"{folder}/projection.npy", projection)
    kept = storable_artifacts(artifacts or {})
    for name, array in kept.items():
        stored += blobs.save_array(session, artifact_key(job_id, name), array)
    listing = [
        {"name": name, "dtype": str(array.dtype), "shape": list(array.shape)}
        for name, array in kept.items()
    ]
    session.execute(
        update(Job).where(Job.id == job_id).values(stored_bytes=stored, artifacts=listing)
    )
    session.merge(JobResult(job_id=job_id, history=history, embedding_shape=list(embedding.shape)))
    return True


def storable_artifacts(artifacts: dict) -> dict[str, np.ndarray]:
    """The artifacts a job stores: numeric arrays (at least 1-D) with a plain name, within
    MAX_ARTIFACT_BYTES together. Each one left out is logged with the reason."""
    kept: dict[str, np.ndarray] = {}
    total = 0
    for name, value in artifacts.items():
        array = np.asarray(value)
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        if not isinstance(name, str) or not ARTIFACT_NAME.fullmatch(name):
            problem = f"its name is not {ARTIFACT_NAME.pattern}"
        elif array.dtype.kind not in "iuf":
            problem = f"dtype {array.dtype} is not numeric"
        elif array.ndim == 0:
            problem = "a scalar belongs in the diagnostics"
        elif total + array.nbytes > MAX_ARTIFACT_BYTES:
            problem = (
                f"{array.nbytes} bytes would take the job's artifacts past "
                f"{MAX_ARTIFACT_BYTES} bytes"
            )
        else:
            kept[name] = array
            total += array.nbytes
            continue
        log.warning("artifact %.80r not stored: %s", name, problem)
    return kept


def end_job(
    session: Session,
    job_id: str,
    status: JobStatus,
    error: str | None = None,
    *,
    from_status: JobStatus = JobStatus.RUNNING,
    **values: Any,
) -> bool:
    """running (or `from_status`) -> failed | cancelled."""
    assert status in (JobStatus.FAILED, JobStatus.CANCELLED)
    return (
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == from_status)
            .values(status=status, error=error, finished_at=utcnow(), **values)
        ).rowcount
        == 1
    )


def request_cancel(session: Session, job: Job) -> bool:
    """A queued job is cancelled at once; a running one is flagged and stops at its next step.
    False if the job had already finished."""
    if session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.CANCELLED,
            cancel_requested=True,
            finished_at=utcnow(),
            error="cancelled before it started",
        )
    ).rowcount:
        return True
    return (
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.RUNNING)
            .values(cancel_requested=True)
        ).rowcount
        == 1
    )


def reap_stale_jobs(session: Session, stale_after_s: float, max_attempts: int) -> list[str]:
    """Running jobs whose heartbeat stopped (worker killed, host lost): back to queued while
    attempts remain (the caller re-sends them), failed with the reason otherwise."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stale = Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff
    session.execute(
        update(Job)
        .where(*stale, Job.cancel_requested.is_(True))
        .values(
            status=JobStatus.CANCELLED, finished_at=utcnow(), error="cancelled; its worker stopped"
        )
    )
    session.execute(
        update(Job)
        .where(*stale, Job.attempts >= max_attempts)
        .values(
            status=JobStatus.FAILED,
            finished_at=utcnow(),
            error=f"the worker stopped answering (no heartbeat for {stale_after_s:.0f} s) "
            f"on each of {max_attempts} attempts",
        )
    )
    requeue = session.scalars(select(Job.id).where(*stale, Job.attempts < max_attempts)).all()
    if requeue:
        session.execute(
            update(Job)
            .where(Job.id.in_(requeue), *stale)
            .values(
                status=JobStatus.QUEUED,
                progress=None,
                enqueued_at=utcnow(),
                error="its worker stopped answering; queued again",
            )
        )
    return list(requeue)


def queued_longer_than(session: Session, seconds: float) -> list[str]:
    """Queued jobs whose message was last sent more than `seconds` ago."""
    cutoff = utcnow() - timedelta(seconds=seconds)
    return list(
        session.scalars(
            select(Job.id).where(
                Job.status == JobStatus.QUEUED,
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
            )
        ).all()
    )


def mark_resent(session: Session, job_id: str, seconds: float) -> bool:
    """Record that a queued job's message is sent again now; False if it was sent within
    `seconds` (another API process got there first) or is no longer queued."""
    now = utcnow()
    return (
        session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == JobStatus.QUEUED,
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < now - timedelta(seconds=seconds)),
            )
            .values(enqueued_at=now)
        ).rowcount
        == 1
    )


# ---- job events (progress records, streamed live by GET /jobs/{id}/events) -----------------------
def last_event_seq(session: Session, job_id: str) -> int:
    """The highest stored seq of the job's events, 0 when there are none (a retried job goes on
    from the previous attempt's, so a client resuming by seq never misses a record)."""
    return session.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)) or 0


def append_job_events(session: Session, job_id: str, first_seq: int, records: list[dict]) -> None:
    session.add_all(
        JobEvent(job_id=job_id, seq=first_seq + i, record=record)
        for i, record in enumerate(records)
    )
    session.flush()


def job_events_after(session: Session, job_id: str, after_seq: int, limit: int) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after_seq)
    return list(session.scalars(query.order_by(JobEvent.seq).limit(limit)))


def is_final(job: Job) -> bool:
    return job.status in FINAL_STATES
