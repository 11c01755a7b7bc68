"""The embedded default: with no settings at all, `python -m api.serve` (what `make run`
starts) runs the whole service: SQLite, local blobs, and a real Celery worker process on
a filesystem queue. Upload, run, download, over real HTTP."""
import csv
import io
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ROOT, npz_bytes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded_service(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
    env.update(PORT=str(port), PYTHONPATH=str(ROOT))
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "api.serve"], cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError((tmp_path / "serve.log").read_text()[-3000:])
        time.sleep(0.3)
    yield base, tmp_path
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def test_embedded_service_runs_a_job_with_no_settings(embedded_service, digits):
    base, workdir = embedded_service
    health = httpx.get(f"{base}/health").json()
    assert health == {"status": "ok", "database": "sqlite", "embedded": True, "blob_store": "local"}
    X, y = digits
    dataset = httpx.post(f"{base}/datasets", files={"file": ("digits.npz", npz_bytes(X=X, y=y))}).json()
    job = httpx.post(f"{base}/jobs", json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": 10}).json()
    deadline = time.time() + 120
    while job["status"] in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
        job = httpx.get(f"{base}/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job
    assert job["metrics"]["acc"] > 0.6
    rows = list(csv.reader(io.StringIO(httpx.get(f"{base}/jobs/{job['id']}/assignments.csv").text)))
    assert len(rows) == 1798
    assert (workdir / "var" / "deepclust.db").exists()  # everything under ./var, nothing elsewhere
    assert not (workdir / "control").exists()
