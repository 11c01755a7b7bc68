"""Run the whole service on one machine: `python -m api.serve` (what `make run` does).

Migrates the database, starts a Celery worker process (the same task code as in
production) and serves the API at http://127.0.0.1:$PORT (default 8000). With no
settings this is the embedded default: SQLite, blobs and a filesystem queue under ./var.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import uvicorn

from persistence.db import upgrade_database
from persistence.settings import get_settings


def worker_command(settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-P",
        "prefork",
        "-c",
        "1",
        "--max-tasks-per-child=1",
        "-Q",
        settings.queue,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


def _die_with_parent() -> None:
    """In the worker child: have the kernel send SIGTERM if the server process dies (even by
    SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_worker(worker: subprocess.Popen, grace_s: float = 30) -> None:
    """Warm shutdown (a running job may finish), then kill the worker and its pool after `grace_s`.
    A job killed here is re-queued by the next start's lost-job check."""
    if worker.poll() is not None:
        return
    worker.terminate()
    try:
        worker.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def auth_mode(settings, host: str) -> str:
    """DEEPCLUST_AUTH when set; otherwise `none` only for the embedded default on a loopback
    bind (one user on one machine), `keys` for a distributed setup. An embedded service bound
    to another address must say which it wants: it refuses to start open by default."""
    if settings.auth:
        return settings.auth
    if not settings.embedded:
        return "keys"
    if host in LOOPBACK:
        return "none"
    raise SystemExit(
        f"deepclust: refusing to serve {host} without API keys by default: set "
        "DEEPCLUST_AUTH=keys (and create a key: `deepclust keys create NAME --admin`)"
        ", or DEEPCLUST_AUTH=none to serve it open on purpose"
    )


def main() -> None:
    settings = get_settings()
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    mode = auth_mode(settings, host)
    os.environ["DEEPCLUST_AUTH"] = mode  # what the app (same process) and its worker read
    get_settings.cache_clear()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database()
    # Its own process group, so stop_worker can kill the pool's children too.
    worker = subprocess.Popen(
        worker_command(settings), preexec_fn=_die_with_parent, start_new_session=True
    )
    access = (
        "no API keys (DEEPCLUST_AUTH=none): anyone who can reach it may use it"
        if mode == "none"
        else "API keys required (Authorization: Bearer dck_...; `deepclust keys create NAME`)"
    )
    print(
        f"deepclust: database {settings.db_url}, queue {settings.broker}, "
        f"API http://{host}:{port}, {access}",
        flush=True,
    )
    # uvicorn restores these handlers after its graceful shutdown and re-raises the signal into
    # them; with the default handler that would end the process before the worker is stopped.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    finally:
        stop_worker(worker)


if __name__ == "__main__":
    main()
