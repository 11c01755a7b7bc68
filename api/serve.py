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
    return [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-P", "prefork", "-c", "1",
            "--max-tasks-per-child=1", "-Q", settings.queue, "--loglevel", "INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat"]


def _die_with_parent() -> None:
    """In the worker child: have the kernel send SIGTERM when the server process exits.
    uvicorn re-raises SIGTERM/SIGINT after its shutdown, so a `finally` can't be relied on."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def main() -> None:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database()
    worker = subprocess.Popen(worker_command(settings), preexec_fn=_die_with_parent)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    print(f"deepclust: database {settings.db_url}, queue {settings.broker}, API http://{host}:{port}", flush=True)
    try:
        uvicorn.run("api.main:app", host=host, port=port, log_level="info")
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


if __name__ == "__main__":
    main()
