"""Test fixtures on the real parts: the machine's PostgreSQL and Redis, and a real Celery
worker process running the real task. Nothing here is mocked.

Settings are environment variables, so they are set before any project module is imported.
Each run gets its own queue name and its own PostgreSQL schema, so concurrent runs (or a
stray worker of another run) never touch each other's jobs or tables.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# Tests also import this module as `tests.conftest`: the id must survive a second execution.
RUN_ID = os.environ.setdefault("DEEPCLUST_TEST_RUN_ID", uuid.uuid4().hex[:8])
if "DEEPCLUST_TEST_DATA_DIR" not in os.environ:  # one folder per run (worker log, local files)
    os.environ["DEEPCLUST_TEST_DATA_DIR"] = tempfile.mkdtemp(prefix=f"deepclust-test-{RUN_ID}-")
DATA_DIR = os.environ["DEEPCLUST_TEST_DATA_DIR"]
SCHEMA = f"test_run_{RUN_ID}"
_DATABASE = os.environ.get("DEEPCLUST_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ.update({
    # libpq's `options` puts every connection (API, worker, migrations) in this run's schema
    "DEEPCLUST_DATABASE_URL": f"{_DATABASE}{'&' if '?' in _DATABASE else '?'}options=-csearch_path%3D{SCHEMA}",
    "DEEPCLUST_BROKER_URL": os.environ.get("DEEPCLUST_TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
    "DEEPCLUST_QUEUE": f"deepclust-test-{RUN_ID}",
    "DEEPCLUST_DATA_DIR": DATA_DIR,
    "DEEPCLUST_BLOB_STORE": "database",
    # Short intervals so the lost-worker test sees a stale heartbeat within seconds.
    "DEEPCLUST_HEARTBEAT_S": "0.5",
    "DEEPCLUST_STALE_AFTER_S": "4",
    "DEEPCLUST_REAP_EVERY_S": "1",
    # The tests' score margins were measured on two threads; a bigger machine must not change them.
    "DEEPCLUST_TORCH_THREADS": "2",
    # UMAP's numba compilation costs every worker child (one per job) 15-100 s on this machine;
    # the maps of the tests' jobs are PCA (tests/test_projection.py runs UMAP itself).
    "DEEPCLUST_PROJECTION": "pca",
})


@pytest.fixture(scope="session", autouse=True)
def database():
    """This run's own schema in the `test` database, built by the Alembic migrations, dropped after."""
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
        self.process = subprocess.Popen(worker_command(get_settings()), cwd=ROOT, stdout=self.log.open("a"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while "ready." not in self.log.read_text():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
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
    tests of keys and limits make their own (tests/test_accounts.py)."""
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


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled handwritten digits: 1797 real 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


@pytest.fixture(scope="session")
def digits_id(client, digits) -> str:
    X, y = digits
    response = client.post("/datasets", files={"file": ("digits.npz", npz_bytes(X=X, y=y))})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(client, dataset_id: str, method: str, n_clusters: int = 10, params: dict | None = None,
           seed: int = 0) -> dict:
    response = client.post("/jobs", json={"dataset_id": dataset_id, "method": method, "n_clusters": n_clusters,
                                          "params": params or {}, "seed": seed})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['id']}"
    return response.json()


def wait_for(client, job_id: str, states=("succeeded", "failed", "cancelled"), timeout: float = 300,
             until=None) -> dict:
    """Poll GET /jobs/{id} until the job is in one of `states` (and `until(job)` holds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in states and (until is None or until(job)):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout} s: {job}")
