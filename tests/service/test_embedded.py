"""The embedded default: with no settings at all, `python -m api.serve` (what `make run`
starts) runs the whole service: SQLite, local blobs, and a real Celery worker process on
a filesystem queue. Upload, run, download, over real HTTP; and a job survives the whole
service being killed and restarted."""

import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from tests.conftest import ROOT, npz_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedService:
    """`python -m api.serve` in `workdir` with no DEEPCLUST_* settings but `extra_env`."""

    def __init__(self, workdir, **extra_env):
        self.workdir, self.port = workdir, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
        env.update(PORT=str(self.port), PYTHONPATH=str(ROOT), **extra_env)
        log = (workdir / "serve.log").open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.serve"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError((workdir / "serve.log").read_text()[-3000:])
            time.sleep(0.3)

    def kill(self, sig=signal.SIGTERM) -> None:
        """Signal the server alone (as Ctrl-C or `kill` would); SIGKILL also takes its worker."""
        workers = self.worker_pids()
        os.kill(self.process.pid, sig)
        if sig == signal.SIGKILL:
            for pid in workers:
                os.killpg(pid, signal.SIGKILL)  # the whole machine lost: worker and pool too
        self.process.wait(timeout=60)
        deadline = time.time() + 60
        while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers):
            time.sleep(0.2)
        assert not any(os.path.exists(f"/proc/{pid}") for pid in workers), (
            "worker outlived the server"
        )

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def wait_for(self, job_id: str, until, timeout: float = 180) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = httpx.get(f"{self.base}/jobs/{job_id}").json()
            if until(job):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} never got there: {job}")


def upload_digits(service, digits) -> str:
    X, y = digits
    return httpx.post(
        f"{service.base}/datasets", files={"file": ("digits.npz", npz_bytes(X=X, y=y))}
    ).json()["id"]


def test_embedded_service_runs_a_job_with_no_settings(tmp_path, digits):
    service = EmbeddedService(tmp_path)
    try:
        health = httpx.get(f"{service.base}/health").json()
        assert health == {
            "status": "ok",
            "database": "sqlite",
            "embedded": True,
            "blob_store": "local",
            "auth": "none",
        }  # the embedded default needs no key
        dataset_id = upload_digits(service, digits)
        job = httpx.post(
            f"{service.base}/jobs",
            json={"dataset_id": dataset_id, "method": "kmeans", "n_clusters": 10},
        ).json()
        job = service.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
        assert job["status"] == "succeeded", job
        assert job["metrics"]["acc"] > 0.6
        rows = list(
            csv.reader(
                io.StringIO(httpx.get(f"{service.base}/jobs/{job['id']}/assignments.csv").text)
            )
        )
        assert len(rows) == 1798
    finally:
        service.kill()
    assert (tmp_path / "var" / "deepclust.db").exists()  # everything under ./var, nothing elsewhere
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serve.log", "var"]


def test_stopping_the_server_stops_its_worker(tmp_path):
    service = EmbeddedService(tmp_path)
    assert service.worker_pids(), "the embedded service started no worker process"
    service.kill(signal.SIGTERM)  # asserts that the worker is gone too


def test_a_job_survives_the_whole_embedded_service_being_killed(tmp_path, digits):
    fast_recovery = {
        "DEEPCLUST_STALE_AFTER_S": "3",
        "DEEPCLUST_REAP_EVERY_S": "1",
        "DEEPCLUST_HEARTBEAT_S": "0.5",
    }
    service = EmbeddedService(tmp_path, **fast_recovery)
    dataset_id = upload_digits(service, digits)
    job = httpx.post(
        f"{service.base}/jobs",
        json={
            "dataset_id": dataset_id,
            "method": "ae_kmeans",
            "n_clusters": 10,
            "params": {"pretrain_epochs": 40},
        },
    ).json()
    service.wait_for(
        job["id"], lambda j: j["status"] == "running" and (j["progress"] or {}).get("step", 0) >= 3
    )
    service.kill(signal.SIGKILL)  # API, worker and its child all die mid-job

    restarted = EmbeddedService(tmp_path, **fast_recovery)
    try:
        done = restarted.wait_for(
            job["id"], lambda j: j["status"] not in ("queued", "running"), timeout=240
        )
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2
        assert (
            httpx.get(f"{restarted.base}/jobs/{job['id']}/assignments.csv").text.count("\n") == 1798
        )
    finally:
        restarted.kill()


def test_job_submission_and_dataset_deletion_are_serialised_on_sqlite(tmp_path):
    """The embedded default has no row locks: the first write takes SQLite's write lock for
    the transaction instead. 15 concurrent pairs over HTTP: never a 500, and every job
    accepted with 202 still exists (its dataset's delete was refused). The jobs are slow (5000
    pretraining steps), so none can finish, and let its dataset go, while the pairs run."""
    from concurrent.futures import ThreadPoolExecutor

    service = EmbeddedService(tmp_path)
    try:
        buffer = io.BytesIO()
        np.save(buffer, np.random.default_rng(0).random((20, 3)).astype(np.float32))
        dataset_ids = [
            httpx.post(
                f"{service.base}/datasets", params={"name": f"r{i}.npy"}, content=buffer.getvalue()
            ).json()["id"]
            for i in range(15)
        ]

        def submit(dataset_id):
            return httpx.post(
                f"{service.base}/jobs",
                timeout=60,
                json={"dataset_id": dataset_id, "method": "ae_kmeans", "n_clusters": 2,
                      "params": {"pretrain_epochs": 5000}},
            )

        def delete(dataset_id):
            return httpx.delete(f"{service.base}/datasets/{dataset_id}", timeout=60)

        with ThreadPoolExecutor(30) as pool:
            jobs = [pool.submit(submit, d) for d in dataset_ids]
            deletes = [pool.submit(delete, d) for d in dataset_ids]
            pairs = [(j.result(), d.result()) for j, d in zip(jobs, deletes, strict=True)]
        for job, deleted in pairs:
            assert (job.status_code, deleted.status_code) in {(202, 409), (404, 204)}, (
                job.text,
                deleted.text,
            )
            if job.status_code == 202:
                assert httpx.get(f"{service.base}/jobs/{job.json()['id']}").status_code == 200
        for job, _ in pairs:  # a quick stop: the worker finishes its running job first
            if job.status_code == 202:
                httpx.post(f"{service.base}/jobs/{job.json()['id']}/cancel", timeout=60)
    finally:
        service.kill()
