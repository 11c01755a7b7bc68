"""The Celery app. Start a worker with

    celery -A worker.celery_app worker -P prefork -c 1 --max-tasks-per-child=1 -Q deepclust

The parent process never imports torch (forking after CUDA is initialised breaks the
child), and each child runs one job and exits, which frees its GPU memory.
"""
from __future__ import annotations

from celery import Celery

from persistence.settings import get_settings

settings = get_settings()
app = Celery("deepclust", broker=settings.broker, include=["worker.tasks"])

transport_options: dict = {
    # Redis redelivers an unacknowledged message after this long, so it must outlast any job.
    "visibility_timeout": settings.job_time_limit_s + 3600,
}
if settings.embedded:
    settings.broker_folder.mkdir(parents=True, exist_ok=True)
    transport_options.update(data_folder_in=str(settings.broker_folder),
                             data_folder_out=str(settings.broker_folder),
                             control_folder=str(settings.broker_folder / "control"))  # default: ./control

app.conf.update(
    task_acks_late=True,  # ack after the run: a crashed worker's message is delivered again
    task_reject_on_worker_lost=True,  # ...also when the child is killed (OOM, SIGKILL)
    worker_prefetch_multiplier=1,  # reserve one job at a time
    worker_max_tasks_per_child=1,
    worker_cancel_long_running_tasks_on_connection_loss=True,
    task_soft_time_limit=settings.job_soft_time_limit_s,
    task_time_limit=settings.job_time_limit_s,
    task_ignore_result=True,  # state lives in the database, not in a result backend
    task_default_queue=settings.queue,
    broker_transport_options=transport_options,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def enqueue(job_id: str) -> None:
    """Send a job's id to the queue (only after the transaction that created it committed)."""
    app.send_task("deepclust.run_job", args=[job_id], task_id=job_id, queue=settings.queue)


def requeue_lost_jobs() -> list[str]:
    """Find running jobs whose heartbeat stopped, queue them again (or fail them when out
    of attempts), and re-send their messages. The API calls this periodically."""
    from persistence.db import session_scope
    from persistence.repository import reap_stale_jobs

    with session_scope() as session:
        job_ids = reap_stale_jobs(session, settings.stale_after_s, settings.max_attempts)
    for job_id in job_ids:
        enqueue(job_id)
    return job_ids
