"""The task that runs one clustering job, start to finish.

The message carries only the job id. The task claims the job with a compare-and-set
(a redelivered message finds it taken and does nothing), runs the method from core/
while a thread writes heartbeat and progress and reads the cancel flag, and writes the
whole result in one transaction.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from celery.exceptions import SoftTimeLimitExceeded

from deepclust_client.status import JobStatus
from persistence.db import session_scope
from persistence.models import Dataset, Job
from persistence.repository import (
    append_job_events,
    claim_job,
    end_job,
    finish_job,
    heartbeat,
    last_event_seq,
    load_dataset_arrays,
)
from persistence.settings import get_settings
from worker.celery_app import app

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Every `interval` s: mark the job alive, save its latest progress, append the records
    reported since the last beat to job_events (at most `max_events`, thinned evenly when a
    method reports faster) and read its cancel flag."""

    def __init__(self, job_id: str, interval: float, max_events: int):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.interval, self.max_events = job_id, interval, max_events
        self.latest: dict | None = None
        self.device: str | None = None
        self.cancelled = threading.Event()
        self.stopped = threading.Event()
        self._pending: list[dict] = []
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()  # the job's thread also beats (first and last)
        self._next_seq: int | None = None

    def record(self, record: dict) -> None:
        """Context.on_progress: called by the method, in the job's thread."""
        with self._pending_lock:
            self.latest = record
            self._pending.append(record)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.beat()

    def finish(self) -> None:
        """Stop beating and store what is left, before the job's final state is written: a
        stream that sees the job final has every record by then."""
        self.stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join()
        self.beat()

    def beat(self) -> None:
        with self._write_lock:
            with self._pending_lock:
                records = thin_evenly(self._pending, self.max_events)
                self._pending = []
            try:
                with session_scope() as session:
                    if self._next_seq is None:
                        self._next_seq = last_event_seq(session, self.job_id) + 1
                    append_job_events(session, self.job_id, self._next_seq, records)
                    if heartbeat(session, self.job_id, self.latest, self.device):
                        self.cancelled.set()
                self._next_seq += len(records)
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                log.exception("heartbeat for job %s failed", self.job_id)
                self._next_seq = None  # read it again: another attempt may have written
                with self._pending_lock:
                    self._pending[:0] = records


def thin_evenly(records: list[dict], limit: int) -> list[dict]:
    """At most `limit` records, evenly spaced, always keeping the first and the last."""
    if len(records) <= limit:
        return records
    step = (len(records) - 1) / (limit - 1)
    return [records[round(i * step)] for i in range(limit)]


@app.task(name="deepclust.run_job")
def run_job(job_id: str) -> str:
    settings = get_settings()
    worker_name = f"{socket.gethostname()}:{threading.get_native_id()}"
    with session_scope() as session:
        if not claim_job(
            session, job_id, worker_name, settings.stale_after_s, settings.max_attempts
        ):
            log.info("job %s is not claimable (already taken, finished or cancelled)", job_id)
            return "skipped"
    beat = Heartbeat(job_id, settings.heartbeat_s, settings.events_per_beat)
    beat.start()
    started = time.perf_counter()
    device = None
    try:
        from core import JobCancelled  # torch is imported in the child only
        from core.jobs import run_job as run_spec  # this task is run_job
        from core.jobs import stored_job_spec
        from core.metrics import evaluate

        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)

        with session_scope() as session:
            job = session.get(Job, job_id)
            data = load_dataset_arrays(session, session.get(Dataset, job.dataset_id))
            asked = job.method, job.params, job.n_clusters, job.seed
        spec = stored_job_spec(*asked)  # params without auto's picked_by
        y_true = data.y
        ctx = spec.context(
            on_progress=beat.record,
            is_cancelled=beat.cancelled.is_set,
            monitor=(lambda labels: evaluate(y_true, labels)) if y_true is not None else None,
        )
        device = beat.device = ctx.device
        beat.record({"phase": "starting", "step": 0, "total": 0})
        beat.beat()
        try:
            outcome = run_spec(spec, data.X, y_true, ctx)
        except JobCancelled as exc:
            beat.finish()
            with session_scope() as session:
                end_job(
                    session,
                    job_id,
                    JobStatus.CANCELLED,
                    str(exc),
                    progress=beat.latest,
                    device=device,
                )
            return JobStatus.CANCELLED
        result, metrics = outcome.result, outcome.metrics
        projection = _projection(result, spec.seed, metrics, settings.projection)
        beat.finish()
        with session_scope() as session:
            finished = finish_job(
                session,
                job_id,
                labels=result.labels,
                confidence=result.confidence,
                embedding=result.embedding,
                metrics=metrics,
                history=ctx.history,
                progress=beat.latest,
                device=device,
                versions=outcome.versions,
                wall_s=round(time.perf_counter() - started, 3),
                peak_mb=outcome.peak_mb,
                projection=projection,
                artifacts=result.artifacts,
            )
        if not finished:  # cancelled while the result was being computed
            with session_scope() as session:
                end_job(session, job_id, JobStatus.CANCELLED, "cancelled", device=device)
            return JobStatus.CANCELLED
        return JobStatus.SUCCEEDED
    except SoftTimeLimitExceeded:
        beat.finish()
        _fail(job_id, f"stopped at the time limit of {settings.job_soft_time_limit_s} s", device)
        return JobStatus.FAILED
    except Exception as exc:
        log.exception("job %s failed", job_id)
        beat.finish()
        _fail(job_id, f"{type(exc).__name__}: {exc}", device)
        return JobStatus.FAILED
    finally:
        beat.stopped.set()


def _projection(result, seed: int, metrics: dict, how: str):
    """The 2-D map for the web page; its cost goes into metrics["timings"]. A failure here
    costs the job its map (GET /jobs/{id}/projection: 409), never its result."""
    from core.projection import project

    if how == "none":
        return None
    try:
        projection = project(result.embedding, result.labels, seed=seed, method=how)
    except Exception:
        log.exception("the 2-D projection failed")
        return None
    metrics.setdefault("timings", {}).update(
        projection_s=projection.seconds,
        projection_peak_mb=projection.peak_mb,
        projection_method=projection.method,
        projection_points=len(projection.index),
    )
    return projection.as_array()


def _fail(job_id: str, error: str, device: str | None) -> None:
    with session_scope() as session:
        end_job(session, job_id, JobStatus.FAILED, error[:4000], device=device)
