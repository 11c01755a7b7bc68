"""Fixtures on the real parts: the machine's PostgreSQL and Redis, and a real Celery worker
process running the real task. Nothing here is mocked.

Settings are environment variables: tests.service.environment sets them, and it is imported
here first, before any project module (pytest loads this file before the tests beside it).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, npz_bytes
from tests.service.environment import SCHEMA


@pytest.fixture(scope="session", autouse=True)
def database():
    """This run's own schema in the `test` database, built by the Alembic migrations,
    dropped after."""
    from sqlalchemy import text

    from persistence.db import get_engine, upgrade_database

    with get_engine().begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    get_engine().dispose()  # that connection resolved its search_path before the schema existed
    upgrade_database()
    yield get_engine()
    with get_engine().begin() as connection:
        connection.execute(text(f"DROP SCHEMA {SCHEMA} CASCADE"))


class Worker:
    """A real `celery worker` process on this run's queue."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.log = Path(os.environ["DEEPCLUST_DATA_DIR"]) / "worker.log"

    def start(self) -> None:
        from api.serve import worker_command
        from persistence.settings import get_settings

        self.log.write_text("")
        self.process = subprocess.Popen(worker_command(get_settings()), cwd=ROOT,
                                        stdout=self.log.open("a"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.time() + 60
        while "ready." not in self.log.read_text():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture(scope="session")
def worker(database):
    w = Worker()
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="session")
def admin_token(database) -> str:
    """An admin key's token (DEEPCLUST_AUTH is `keys` here) whose limits no test reaches;
    tests of keys and limits make their own (tests/service/test_accounts.py)."""
    from persistence.accounts import create_key
    from persistence.db import session_scope

    with session_scope() as session:
        _, token = create_key(session, "tests", admin=True, max_active_jobs=100_000,
                              max_storage_mb=1 << 30, requests_per_minute=10**9)
    return token


@pytest.fixture(scope="session")
def client(database, admin_token):
    """The API in this process, sending the admin key."""
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app) as c:  # runs the lifespan: the lost-job reaper is live
        c.headers["Authorization"] = f"Bearer {admin_token}"
        yield c


@pytest.fixture(scope="session")
def digits_id(client, digits) -> str:
    X, y = digits
    response = client.post("/datasets", files={"file": ("digits.npz", npz_bytes(X=X, y=y))})
    assert response.status_code == 201, response.text
    return response.json()["id"]
