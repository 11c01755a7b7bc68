"""The live events stream, the Python client and the server CLI, against a real uvicorn server
(in a thread of this process) with PostgreSQL, Redis and the real Celery worker."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from tests.conftest import ROOT, npz_bytes

# A DEC run of a few seconds on digits: 30 pretraining epochs, then self-training.
SHORT_DEC = {
    "hidden_dims": [32],
    "pretrain_epochs": 10,
    "update_interval": 20,
    "maxiter": 40,
    "n_init": 1,
}
# SGD at lr 1, momentum 0.99 on unscaled pixels diverges: the codes are NaN, the fit says so.
DIVERGING = {
    "hidden_dims": [32],
    "pretrain_epochs": 3,
    "pretrain_optimizer": "sgd",
    "pretrain_lr": 1,
    "pretrain_momentum": 0.99,
    "input_scaling": "none",
}
FAST_KMEANS = {"n_init": 1}
AUTH: dict[str, str] = {}  # the admin key's header, for the raw HTTP calls (set by `server`)


@pytest.fixture(scope="module")
def server(worker, admin_token) -> str:
    import uvicorn

    from api.main import app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not uv.started:
        assert thread.is_alive() and time.time() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    AUTH["Authorization"] = f"Bearer {admin_token}"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    uv.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
def api(server, admin_token):
    from deepclust_client import Client

    with Client(server, api_key=admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def digits_dataset(api, digits) -> dict:
    X, y = digits
    return api.upload(X, labels=y, name="digits.npz")


@pytest.fixture(scope="module")
def kmeans_job(api, digits_dataset) -> dict:
    return api.wait(api.submit(digits_dataset, "kmeans", 10, FAST_KMEANS, seed=1), progress=False)


def deepclust(*args: str, server: str | None = None) -> subprocess.CompletedProcess:
    extra = ["--server", server] if server else []
    env = dict(os.environ)
    if AUTH:  # the admin key, unless a test sets its own
        env.setdefault("DEEPCLUST_API_KEY", AUTH["Authorization"].removeprefix("Bearer "))
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_events(
    url: str, job_id: str, last_event_id: int | None = None, on_record=None
) -> list[tuple[str, int | None, dict]]:
    """(event, id, data) of each message (keep-alives aside) until the server ends the stream;
    `on_record(data)` is called as each record arrives."""
    from deepclust_client.client import parse_sse

    headers = dict(AUTH) if last_event_id is None else {**AUTH, "Last-Event-ID": str(last_event_id)}
    events = []
    with httpx.stream(
        "GET", f"{url}/jobs/{job_id}/events", headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/event-stream"
        )
        for event, seq, data in parse_sse(response.iter_lines()):
            if event == "keep-alive":
                continue
            events.append((event, seq, data))
            if on_record and event == "progress":
                on_record(data)
    return events


# ---- the events stream ------------------------------------------------------------------------
def test_events_arrive_live_in_order_and_end_when_the_job_does(api, server, digits_dataset):
    job = api.submit(digits_dataset, "dec", 10, {"hidden_dims": [64], "pretrain_epochs": 5000})
    seen_running = []

    def cancel_once_running(record):  # the records come while the job runs, not after it
        if record["phase"] == "pretrain" and record["step"] >= 2 and not seen_running:
            seen_running.append(api.job(job)["status"])
            api.cancel(job)

    *records, end = read_events(server, job["id"], on_record=cancel_once_running)
    assert seen_running == ["running"]
    final = api.job(job)
    assert end == ("end", None, {"status": "cancelled", "error": final["error"]})
    assert "cancelled during pretrain" in final["error"]
    assert [seq for _, seq, _ in records] == list(range(1, len(records) + 1))
    assert records[0][2]["phase"] == "starting"
    steps = [data["step"] for _, _, data in records[1:]]
    assert all(data["phase"] == "pretrain" for _, _, data in records[1:]) and steps == sorted(
        set(steps)
    )
    assert records[-1][2] == final["progress"]  # the last record was stored before the job ended


def test_waiting_shows_a_bar_and_the_stream_replays_the_history(
    api, server, digits_dataset, capsys
):
    job = api.submit(digits_dataset, "dec", 10, SHORT_DEC)
    api.wait(job)
    bar = capsys.readouterr().err
    assert "pretrain" in bar and "10/10" in bar and "loss=" in bar and "cluster" in bar
    assert "<00:00" in bar  # the ETA at the end of a phase

    *records, end = read_events(server, job["id"])
    assert end == ("end", None, {"status": "succeeded", "error": None})
    assert [seq for _, seq, _ in records] == list(range(1, len(records) + 1))
    # Thinned or not, the stream carries records of the history, in its order, ending with its last.
    history = api.history(job)
    streamed = [data for _, _, data in records[1:]]
    positions = [history.index(record) for record in streamed]
    assert positions == sorted(positions) and streamed[-1] == history[-1]
    assert {"pretrain", "kmeans_init", "cluster"} <= {record["phase"] for record in streamed}


def test_events_resume_after_last_event_id(server, kmeans_job):
    job = kmeans_job
    everything = read_events(server, job["id"])
    assert [e[0] for e in everything] == ["progress", "progress", "end"]  # starting, kmeans
    resumed = read_events(server, job["id"], last_event_id=1)
    assert [(e[0], e[1]) for e in resumed] == [("progress", 2), ("end", None)]
    assert resumed[0][2] == everything[1][2] and resumed[0][2]["phase"] == "kmeans"
    assert [e[0] for e in read_events(server, job["id"], last_event_id=2)] == ["end"]


def test_events_of_an_unknown_job_are_404_and_a_bad_last_event_id_422(server):
    response = httpx.get(f"{server}/jobs/{'f' * 32}/events", headers=AUTH)
    assert response.status_code == 404 and "not found" in response.json()["detail"]
    refused = httpx.get(f"{server}/jobs/{'f' * 32}/events", headers={**AUTH, "Last-Event-ID": "x"})
    assert refused.status_code == 422 and "last-event-id" in refused.text
    documented = httpx.get(f"{server}/openapi.json").json()["paths"]["/jobs/{job_id}/events"]["get"]
    assert {"200", "404"} <= set(documented["responses"])
    assert "text/event-stream" in documented["responses"]["200"]["content"]


def test_a_quiet_stream_keeps_alive_stops_when_the_client_leaves_and_at_its_time_limit(
    server, digits_dataset, monkeypatch
):
    from api.routes import jobs as job_routes
    from persistence.db import session_scope
    from persistence.repository import create_job, request_cancel
    from persistence.settings import get_settings

    with session_scope() as session:  # a queued job no worker is told about: its stream stays quiet
        job = create_job(
            session, digits_dataset["id"], "kmeans", 10, FAST_KMEANS | {"max_iter": 300}, 0
        )
    polls, real_poll = [], job_routes._poll_events
    monkeypatch.setattr(
        job_routes, "_poll_events", lambda *args: polls.append(1) or real_poll(*args)
    )
    monkeypatch.setattr(job_routes, "KEEPALIVE_S", 0.3)
    with httpx.stream(
        "GET", f"{server}/jobs/{job.id}/events", headers=AUTH, timeout=30
    ) as response:
        lines = response.iter_lines()
        assert [next(lines) for _ in range(4)] == [": keep-alive", "", ": keep-alive", ""]
    time.sleep(1.0)  # the server notices at its next poll
    after_close = len(polls)
    time.sleep(1.5)
    assert len(polls) == after_close, "the stream went on polling after the client left"

    monkeypatch.setattr(get_settings(), "job_time_limit_s", 1)
    assert read_events(server, job.id) == [("end", None, {"status": "queued", "error": None})]
    with session_scope() as session:
        assert request_cancel(session, job)


def test_heartbeat_stores_each_beats_records_bounded_and_a_retry_goes_on_from_the_last_seq(
    digits_dataset,
):
    from persistence.db import session_scope
    from persistence.models import Job
    from persistence.repository import claim_job, create_job, end_job, job_events_after
    from worker.tasks import Heartbeat

    with session_scope() as session:
        job_id = create_job(
            session, digits_dataset["id"], "kmeans", 10, FAST_KMEANS | {"max_iter": 300}, 0
        ).id
    with session_scope() as session:
        assert claim_job(session, job_id, "test", 60, 3)
    beat = Heartbeat(job_id, 60, max_events=5)
    for step in range(100):  # a method reporting faster than the beat
        beat.record({"phase": "fast", "step": step, "total": 100})
    beat.beat()
    beat.record({"phase": "last", "step": 1, "total": 1})
    beat.finish()
    retry = Heartbeat(job_id, 60, max_events=5)  # the next attempt, after a lost worker
    retry.record({"phase": "starting", "step": 0, "total": 0})
    retry.beat()
    with session_scope() as session:
        events = job_events_after(session, job_id, 0, 100)
        assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6, 7]
        assert [e.record["step"] for e in events[:5]] == [0, 25, 50, 74, 99]
        assert [e.record["phase"] for e in events[5:]] == ["last", "starting"]
        assert session.get(Job, job_id).progress["phase"] == "starting"
        end_job(session, job_id, "cancelled", "test cleanup")


def test_thinning_keeps_at_most_the_limit_evenly_with_first_and_last():
    from worker.tasks import thin_evenly

    records = [{"step": i} for i in range(1000)]
    kept = thin_evenly(records, 50)
    steps = [r["step"] for r in kept]
    assert len(kept) == 50 and steps[0] == 0 and steps[-1] == 999 and steps == sorted(set(steps))
    assert max(np.diff(steps)) - min(np.diff(steps)) <= 1
    assert thin_evenly(records[:7], 50) == records[:7]


# ---- the Python client ------------------------------------------------------------------------
def test_client_uploads_submits_waits_and_fetches_labels_and_embedding(
    api, digits_dataset, kmeans_job
):
    assert digits_dataset["n"] == 1797 and digits_dataset["has_labels"]
    done = kmeans_job  # api.wait(api.submit(...)) in the fixture
    assert done["status"] == "succeeded" and done["seed"] == 1 and done["metrics"]["acc"] > 0.6
    labels = api.labels(done)
    assert labels.shape == (1797,) and labels.dtype == np.int64 and set(labels) == set(range(10))
    assert np.bincount(labels).tolist() == done["metrics"]["cluster_sizes"]
    assert api.embedding(done).shape == (1797, 64)
    assert done["id"] in {j["id"] for j in api.jobs(status="succeeded", limit=500)["items"]}


def test_client_resumes_a_broken_stream_then_falls_back_to_polling(api, kmeans_job, monkeypatch):
    from deepclust_client import Client
    from deepclust_client.errors import ServerError

    calls, real_events = [], Client.events

    def broken_events(self, job, after=0):  # at most one record, then the connection drops
        calls.append(after)
        for event in real_events(self, job, after):
            if event[0] != "progress":
                break
            yield event
            break
        raise ServerError("connection reset")

    monkeypatch.setattr(Client, "events", broken_events)
    assert api.wait(kmeans_job, progress=False)["status"] == "succeeded"
    assert calls == [0, 1, 2]  # resumed after the last seq each time, then polled


def test_client_errors_carry_the_api_message(api, digits_dataset):
    from deepclust_client import Invalid, NotFound

    with pytest.raises(NotFound) as missing:
        api.job("f" * 32)
    assert missing.value.status == 404 and "not found" in str(missing.value)
    with pytest.raises(Invalid) as invalid:
        api.submit(digits_dataset, "spectral", 10)
    assert invalid.value.status == 422 and "unknown method 'spectral'" in str(invalid.value)
    with pytest.raises(Invalid, match="pretrain_epochs"):
        api.submit(digits_dataset, "dec", 10, {"pretrain_epochs": -1})
    with pytest.raises(NotFound):
        api.wait("f" * 32)


# ---- the CLI against the server ---------------------------------------------------------------
def test_cli_submit_waits_and_writes_the_csv(server, tmp_path, digits):
    X, y = digits
    data, out = tmp_path / "digits.npz", tmp_path / "labels.csv"
    data.write_bytes(npz_bytes(X=X, y=y))
    done = deepclust(
        "submit",
        str(data),
        "--method",
        "kmeans",
        "--clusters",
        "10",
        "--params",
        json.dumps(FAST_KMEANS),
        "--seed",
        "2",
        "--out",
        str(out),
        server=server,
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["seed"] == 2 and job["metrics"]["acc"] > 0.6
    assert "kmeans" in done.stderr and "1/1" in done.stderr and "loss=" in done.stderr  # the bar
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["index", "sample_id", "cluster", "confidence"] and len(rows) == 1798


def test_a_failed_job_exits_the_cli_non_zero_and_raises_job_failed(api, server, tmp_path, digits):
    from deepclust_client import JobFailed

    X, _ = digits
    data = tmp_path / "digits.npy"
    np.save(data, X)
    done = deepclust(
        "submit",
        str(data),
        "-m",
        "ae_kmeans",
        "-k",
        "10",
        "--params",
        json.dumps(DIVERGING),
        "--wait",
        "--quiet",
        "--out",
        str(tmp_path / "never.csv"),
        server=server,
    )
    assert done.returncode == 1
    assert "failed: TrainingFailed" in done.stderr and "diverged" in done.stderr
    assert "lower pretrain_lr" in done.stderr
    assert not (tmp_path / "never.csv").exists()
    job_id = done.stderr.split("job ")[1].split()[0]
    with pytest.raises(JobFailed) as failed:
        api.wait(job_id, progress=False)
    assert failed.value.job["status"] == "failed" and failed.value.error in done.stderr
    refused = deepclust("submit", str(data), "-m", "kmeans", "-k", "1", server=server)
    assert (
        refused.returncode == 2
        and "n_clusters" in refused.stderr
        and "Traceback" not in refused.stderr
    )
    nowhere = deepclust("jobs")
    assert nowhere.returncode == 2 and "DEEPCLUST_SERVER" in nowhere.stderr


def test_cli_cancel_status_and_jobs(api, server, digits_dataset):
    from deepclust_client import Conflict, JobCancelled
    from persistence.db import session_scope
    from persistence.repository import create_job

    # A queued job no worker is told about (cancelling a running one: the events test above).
    with session_scope() as session:
        job = {"id": create_job(session, digits_dataset["id"], "dec", 10, {}, 0).id}
    cancelled = deepclust("cancel", job["id"], server=server)
    assert cancelled.returncode == 0 and f"job {job['id']} cancelled" in cancelled.stdout
    with pytest.raises(JobCancelled) as waited:
        api.wait(job, progress=False, timeout=60)
    assert waited.value.error == "cancelled before it started"
    with pytest.raises(Conflict, match="results exist only once it has succeeded"):
        api.labels(job)
    status = deepclust("status", job["id"], server=server)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "cancelled"
    listed = deepclust("jobs", "--status", "cancelled", "--limit", "500", server=server)
    assert listed.returncode == 0
    assert any(
        line.split("\t")[:3] == [job["id"], "cancelled", "dec"]
        for line in listed.stdout.splitlines()
    )
    again = deepclust("cancel", job["id"], server=server)
    assert again.returncode == 2 and "409" in again.stderr
    unknown = deepclust("status", "f" * 32, server=server)
    assert unknown.returncode == 2 and "not found" in unknown.stderr


def test_api_key_is_sent_as_a_bearer_token_by_client_and_cli(monkeypatch):
    """A bare HTTP server records what arrives."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"id": "j", "status": "queued"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    recorder = HTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{recorder.server_port}"
    try:
        from deepclust_client import Client

        with Client(url, api_key="s3cret") as client:
            assert client.job("j")["status"] == "queued"
        assert deepclust("status", "j", "--api-key", "k1", server=url).returncode == 0
        monkeypatch.setenv("DEEPCLUST_API_KEY", "k2")
        monkeypatch.setenv("DEEPCLUST_SERVER", url)
        assert deepclust("status", "j").returncode == 0
    finally:
        recorder.shutdown()
    assert seen == ["Bearer s3cret", "Bearer k1", "Bearer k2"]
