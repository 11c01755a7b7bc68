"""The Celery app. Start a worker with

    celery -A worker.celery_app worker -P prefork -c 1 --max-tasks-per-child=1 -Q deepclust

The parent process never imports torch (forking after CUDA is initialised breaks the
child), and each child runs one job and exits, which frees its GPU memory. A new child
imports torch and the methods while it waits for its job (`_warm_up`), so a job that
arrives later does not wait for the imports (about 4-7 s on a 2-core CPU).
"""

from __future__ import annotations

import json

from celery import Celery
from celery.signals import worker_process_init

from persistence.settings import get_settings

settings = get_settings()
app = Celery("deepclust", broker=settings.broker, include=["worker.tasks"])

transport_options: dict = {
    # Redis redelivers an unacknowledged message after this long, so it must outlast any job.
    "visibility_timeout": settings.job_time_limit_s + 3600,
}
if settings.embedded:
    settings.broker_folder.mkdir(parents=True, exist_ok=True)
    transport_options.update(
        data_folder_in=str(settings.broker_folder),
        data_folder_out=str(settings.broker_folder),
        control_folder=str(settings.broker_folder / "control"),
    )  # default: ./control

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
    worker_proc_alive_timeout=120,  # a child reports ready after _warm_up's imports (default 4 s)
)


@worker_process_init.connect
def _warm_up(**_) -> None:
    """In each new pool child, before it takes a job: import torch, the methods and their
    libraries (no CUDA state is touched). Done here rather than in a thread, since two
    threads importing torch's module graph at once can deadlock on the import locks."""
    from core.registry import method_names

    method_names()


def enqueue(job_id: str) -> None:
    """Send a job's id to the queue (only after the transaction that created it committed)."""
    app.send_task("deepclust.run_job", args=[job_id], task_id=job_id, queue=settings.queue)


def requeue_lost_jobs() -> list[str]:
    """Re-send the messages of lost jobs; the API calls this periodically. Lost are running
    jobs whose heartbeat stopped (queued again, or failed when out of attempts) and queued
    jobs whose message is no longer in the broker. A duplicate message is harmless: the
    task's compare-and-set claim runs a job once."""
    from persistence.db import session_scope
    from persistence.repository import mark_resent, queued_longer_than, reap_stale_jobs

    with session_scope() as session:
        job_ids = reap_stale_jobs(session, settings.stale_after_s, settings.max_attempts)
    for job_id in job_ids:
        enqueue(job_id)
    after_s = settings.requeue_queued_after_s
    with session_scope() as session:
        waiting = queued_longer_than(session, after_s)
    if waiting:
        in_broker = queued_message_ids()
        lost = [job_id for job_id in waiting if in_broker is None or job_id not in in_broker]
        for job_id in lost:
            with session_scope() as session:
                resend = mark_resent(session, job_id, after_s)
            if resend:
                enqueue(job_id)
                job_ids.append(job_id)
    return job_ids


def queued_message_ids() -> set[str] | None:
    """Task ids of the messages waiting in (or reserved from) this queue, or None for a
    broker that cannot be inspected (every waiting job is then sent again after the bound)."""
    if settings.broker.startswith("redis"):
        import redis

        # Waiting messages are in the list named after the queue; those delivered to a worker
        # and not yet acknowledged are in kombu's `unacked` hash, as [message, exchange, key].
        with redis.Redis.from_url(settings.broker, socket_timeout=10) as client:
            waiting = [json.loads(raw) for raw in client.lrange(settings.queue, 0, -1)]
            reserved = [json.loads(raw)[0] for raw in client.hvals("unacked")]
        return {message["headers"]["id"] for message in waiting + reserved if "headers" in message}
    if settings.embedded:
        ids = set()
        for path in settings.broker_folder.glob(f"*.{settings.queue}.msg"):
            try:
                ids.add(json.loads(path.read_bytes())["headers"]["id"])
            except (OSError, ValueError, KeyError):  # taken by the worker meanwhile
                pass
        return ids
    return None


def broker_problem() -> str | None:
    """Why the broker cannot take messages now, or None when it can (for GET /ready)."""
    try:
        if settings.broker.startswith("redis"):
            import redis

            with redis.Redis.from_url(
                settings.broker, socket_connect_timeout=3, socket_timeout=3
            ) as client:
                client.ping()
        elif settings.embedded:
            if not settings.broker_folder.is_dir():
                return f"the queue folder {settings.broker_folder} does not exist"
        else:
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # noqa: BLE001  (whatever it is, readiness reports it)
        return f"{type(exc).__name__}: {exc}"
    return None
