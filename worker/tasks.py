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

from persistence.db import session_scope
from persistence.models import Dataset, Job
from persistence.repository import claim_job, end_job, finish_job, heartbeat, load_dataset_arrays
from persistence.settings import get_settings
from worker.celery_app import app

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Every `interval` s: mark the job alive, save its latest progress, read its cancel flag."""

    def __init__(self, job_id: str, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.job_id, self.interval = job_id, interval
        self.latest: dict | None = None
        self.device: str | None = None
        self.cancelled = threading.Event()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        try:
            with session_scope() as session:
                if heartbeat(session, self.job_id, self.latest, self.device):
                    self.cancelled.set()
        except Exception:  # a database hiccup must not kill the job; the next beat retries
            log.exception("heartbeat for job %s failed", self.job_id)


@app.task(name="deepclust.run_job")
def run_job(job_id: str) -> str:
    settings = get_settings()
    worker_name = f"{socket.gethostname()}:{threading.get_native_id()}"
    with session_scope() as session:
        if not claim_job(session, job_id, worker_name, settings.stale_after_s, settings.max_attempts):
            log.info("job %s is not claimable (already taken, finished or cancelled)", job_id)
            return "skipped"
    beat = Heartbeat(job_id, settings.heartbeat_s)
    beat.start()
    started = time.perf_counter()
    device = None
    try:
        from core import Context, JobCancelled, get_method  # torch is imported in the child only
        from core.provenance import library_versions, peak_memory_mb
        from core.metrics import evaluate, result_metrics

        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)

        with session_scope() as session:
            job = session.get(Job, job_id)
            data = load_dataset_arrays(session, session.get(Dataset, job.dataset_id))
            method, n_clusters, seed, raw_params = get_method(job.method), job.n_clusters, job.seed, job.params
        params = method.Params.model_validate(raw_params)
        y_true = data.y
        ctx = Context(
            seed=seed,
            on_progress=lambda record: setattr(beat, "latest", record),
            is_cancelled=beat.cancelled.is_set,
            monitor=(lambda labels: evaluate(y_true, labels)) if y_true is not None else None,
        )
        device = beat.device = ctx.device
        beat.latest = {"phase": "starting", "step": 0, "total": 0}
        beat.beat()
        try:
            result = method.fit(data.X, n_clusters, params, ctx)
        except JobCancelled as exc:
            with session_scope() as session:
                end_job(session, job_id, "cancelled", str(exc), progress=beat.latest, device=device)
            return "cancelled"
        metrics = result_metrics(result.labels, result.embedding, n_clusters, y_true, seed=seed)
        metrics.update(result.extras)
        with session_scope() as session:
            finished = finish_job(
                session, job_id, labels=result.labels, confidence=result.confidence, embedding=result.embedding,
                metrics=metrics, history=ctx.history, progress=beat.latest, device=device,
                versions=library_versions(), wall_s=round(time.perf_counter() - started, 3),
                peak_mb=peak_memory_mb(device))
        if not finished:  # cancelled while the result was being computed
            with session_scope() as session:
                end_job(session, job_id, "cancelled", "cancelled", device=device)
            return "cancelled"
        return "succeeded"
    except SoftTimeLimitExceeded:
        _fail(job_id, f"stopped at the time limit of {settings.job_soft_time_limit_s} s", device)
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        _fail(job_id, f"{type(exc).__name__}: {exc}", device)
        return "failed"
    finally:
        beat.stopped.set()


def _fail(job_id: str, error: str, device: str | None) -> None:
    with session_scope() as session:
        end_job(session, job_id, "failed", error[:4000], device=device)
