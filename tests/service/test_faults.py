"""Faults on real servers: a throwaway Redis (with and without persistence) restarted or
emptied with jobs queued, and a throwaway PostgreSQL cluster restarted mid-job. The API
(uvicorn) and a Celery worker run as processes against them, with short intervals:

    DEEPCLUST_REQUEUE_QUEUED_AFTER_S=3, DEEPCLUST_REAP_EVERY_S=1 (defaults 120 and 15)

so a queued job whose message was lost is sent again within 3 + 1 s of its last send (with
the defaults: within 135 s). Each check asserts every job finished, and ran once where no
worker died: attempts == 1 (the claim's compare-and-set counts every run). A worker killed
mid-job is tests/service/test_jobs.py::test_job_survives_its_worker_being_killed.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.service.environment import RUN_ID
from tests.service.test_embedded import free_port

pytestmark = pytest.mark.skipif(
    not shutil.which("redis-server"), reason="needs redis-server on PATH"
)

FAST = {
    "DEEPCLUST_HEARTBEAT_S": "0.5",
    "DEEPCLUST_STALE_AFTER_S": "6",
    "DEEPCLUST_REAP_EVERY_S": "1",
    "DEEPCLUST_REQUEUE_QUEUED_AFTER_S": "3",
    "DEEPCLUST_AUTH": "none",
}  # these tests are about the broker and the database, not keys


def wait_until(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            result = check()
            if result:
                return result
        except (httpx.TransportError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Redis:
    """`redis-server` on a free port in its own folder; restart keeps the port and folder."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.process = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes" if appendonly else "no",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=(self.folder / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.cli("ping") == "PONG", 10, "redis")

    def cli(self, *args: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.cli(
                "shutdown"
            )  # with appendonly the AOF is flushed first; without, the queue is gone
            self.process.wait(timeout=20)


class Postgres:
    """A PostgreSQL cluster of its own (initdb + pg_ctl, as the postgres user when root)."""

    def __init__(self, folder: Path):
        self.data, self.port = folder / "pgdata", free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(folder, "postgres")
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def run(self, *argv: str) -> None:
        subprocess.run([*self.as_user, *argv], check=True, capture_output=True, timeout=120)

    def pg_ctl(self, action: str) -> None:
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-m",
            "fast",
            "-l",
            str(self.data / "log"),
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            action,
        )


class Service:
    """The API (uvicorn) and one Celery worker, as processes on the given database and broker."""

    def __init__(self, folder: Path, database_url: str, broker_url: str):
        self.folder = folder
        self.queue = f"faults-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        self.env = {
            **os.environ,
            **FAST,
            "DEEPCLUST_DATABASE_URL": database_url,
            "DEEPCLUST_BROKER_URL": broker_url,
            "DEEPCLUST_QUEUE": self.queue,
            "DEEPCLUST_DATA_DIR": str(folder),
            "PYTHONPATH": str(ROOT),
        }
        self.api = self.worker = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=(self.folder / log).open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def migrate(self) -> None:
        subprocess.run(
            [
                sys.executable,
                "-c",
                "from persistence.db import upgrade_database; upgrade_database()",
            ],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start_api(self) -> None:
        self.api = self.spawn(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.port)], "api.log"
        )
        wait_until(
            lambda: httpx.get(f"{self.base}/health", timeout=2).status_code == 200, 120, "the API"
        )

    def start_worker(self) -> None:
        from api.serve import worker_command

        log = self.folder / "worker.log"
        offset = log.stat().st_size if log.exists() else 0
        self.worker = self.spawn(worker_command(SimpleNamespace(queue=self.queue)), "worker.log")
        wait_until(lambda: "ready." in log.read_text()[offset:], 60, "the worker")

    def stop_worker(self) -> None:
        stop(self.worker)

    def close(self) -> None:
        stop(self.worker)
        stop(self.api)

    def upload(self, n: int = 60) -> str:
        buffer = io.BytesIO()
        np.save(buffer, np.random.default_rng(0).random((n, 4)).astype(np.float32))
        response = httpx.post(
            f"{self.base}/datasets", params={"name": "x.npy"}, content=buffer.getvalue(), timeout=30
        )
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def submit(self, dataset_id: str, method: str = "kmeans", params: dict | None = None) -> str:
        response = httpx.post(
            f"{self.base}/jobs",
            json={
                "dataset_id": dataset_id,
                "method": method,
                "n_clusters": 3,
                "params": params or {"n_init": 2},
            },
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.base}/jobs/{job_id}", timeout=10).json()

    def wait_finished(self, job_ids: list[str], timeout: float) -> list[dict]:
        done = ("succeeded", "failed", "cancelled")
        return wait_until(
            lambda: (
                (jobs := [self.job(j) for j in job_ids])
                and all(j["status"] in done for j in jobs)
                and jobs
            ),
            timeout,
            f"jobs {job_ids} to finish",
        )

    def runs_of(self, job_id: str) -> int:
        """How many times the worker ran the job to the end (duplicates log 'not claimable')."""
        log = (self.folder / "worker.log").read_text()
        return sum(
            1
            for line in log.splitlines()
            if job_id in line and "succeeded in" in line and "'skipped'" not in line
        )


def stop(process: subprocess.Popen | None) -> None:
    if process and process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def redis_stack(database):
    """A throwaway Redis and the API on it (the test run's PostgreSQL schema)."""
    folder = Path(tempfile.mkdtemp(prefix="deepclust-faults-"))
    redis = Redis(folder)
    redis.start(appendonly=True)
    service = Service(folder, os.environ["DEEPCLUST_DATABASE_URL"], redis.url)
    service.start_api()
    yield redis, service
    service.close()
    redis.stop()
    shutil.rmtree(folder, ignore_errors=True)


def finish_after_fault(redis_stack, fault) -> float:
    """Queue two jobs with no worker running, apply `fault`, start a worker: every job must
    finish and run once. Returns the seconds from the fault to the last job's end."""
    redis, service = redis_stack
    dataset_id = service.upload()
    job_ids = [service.submit(dataset_id) for _ in range(2)]
    fault(redis, service)
    faulted = time.time()
    service.start_worker()
    try:
        jobs = service.wait_finished(job_ids, timeout=300)  # each job starts torch in a new child
    finally:
        service.stop_worker()
    assert [j["status"] for j in jobs] == ["succeeded"] * 2, [j["error"] for j in jobs]
    assert [j["attempts"] for j in jobs] == [1, 1]
    assert [service.runs_of(j) for j in job_ids] == [1, 1]
    return max(datetime.fromisoformat(j["finished_at"]).timestamp() for j in jobs) - faulted


def test_jobs_queued_in_a_persistent_redis_survive_its_restart(redis_stack):
    def restart(redis, _service):
        redis.stop()
        redis.start(appendonly=True)
        assert int(redis.cli("llen", _service.queue)) == 2  # the AOF kept both messages

    print(f"recovered {finish_after_fault(redis_stack, restart):.0f} s after the restart")


def test_jobs_queued_in_a_redis_without_persistence_are_sent_again_after_its_restart(redis_stack):
    def restart_empty(redis, service):
        redis.stop()
        redis.start(appendonly=False)
        assert int(redis.cli("llen", service.queue)) == 0  # the messages are gone

    seconds = finish_after_fault(redis_stack, restart_empty)
    print(f"recovered {seconds:.0f} s after the restart")


def test_jobs_whose_queue_was_deleted_all_finish(redis_stack):
    def delete_queue(redis, service):
        assert redis.cli("del", service.queue) == "1"

    print(f"recovered {finish_after_fault(redis_stack, delete_queue):.0f} s after DEL")


def test_ready_names_the_broker_while_redis_is_down(redis_stack):
    redis, service = redis_stack
    redis.stop()
    try:
        response = httpx.get(f"{service.base}/ready", timeout=30)
        assert response.status_code == 503 and response.json()["database"] == "ok", response.text
        assert "Connection" in response.json()["broker"]
        assert httpx.get(f"{service.base}/health", timeout=10).status_code == 200
    finally:
        redis.start(appendonly=True)
    assert httpx.get(f"{service.base}/ready", timeout=30).status_code == 200


@pytest.mark.skipif(
    not shutil.which("initdb") or not shutil.which("pg_ctl"), reason="needs initdb and pg_ctl"
)
def test_a_job_survives_postgres_restarting_under_it(database):
    folder = Path(tempfile.mkdtemp(prefix="deepclust-faults-pg-"))
    postgres = Postgres(folder)
    postgres.pg_ctl("start")
    redis = Redis(folder)
    redis.start(appendonly=False)
    service = Service(folder, postgres.url, redis.url)
    try:
        service.migrate()
        service.start_api()
        service.start_worker()
        dataset_id = service.upload(n=300)
        job_id = service.submit(
            dataset_id,
            "ae_kmeans",
            # long enough to span the restart: a warm worker starts it at once (60 epochs: 1 s)
            {"pretrain_epochs": 1500, "batch_size": 64, "hidden_dims": [32, 32], "n_init": 2},
        )
        wait_until(
            lambda: (service.job(job_id).get("progress") or {}).get("step", 0) >= 2,
            90,
            "the job to run",
        )
        print("progress before the restart:", service.job(job_id)["progress"])
        restarted = time.time()
        postgres.pg_ctl("restart")  # fast mode: every connection, the worker's included, is cut
        print(f"PostgreSQL restart took {time.time() - restarted:.1f} s")
        job = service.wait_finished([job_id], timeout=400)[0]
        assert job["status"] == "succeeded", job["error"]
        assert (
            1 <= job["attempts"] <= 2
        )  # 2: it finished while the database was down, and ran again
        csv = httpx.get(f"{service.base}/jobs/{job_id}/assignments.csv", timeout=30).text
        assert csv.count("\n") == 301
        print(
            f"attempts {job['attempts']}; "
            f"finished {time.time() - restarted:.0f} s after the restart"
        )
    except AssertionError:
        print({k: v for k, v in service.job(job_id).items() if k not in ("params", "versions")})
        log = (folder / "worker.log").read_text().splitlines()
        print("\n".join([line for line in log if line.startswith("[")][-40:]))
        raise
    finally:
        service.close()
        redis.stop()
        try:
            postgres.pg_ctl("stop")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
