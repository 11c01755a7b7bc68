"""API keys, ownership, quotas, rate limits, Idempotency-Key and retention (issue #16), on the
real PostgreSQL, Redis and worker. Concurrency tests go through two separate API processes
(uvicorn), so what they prove holds across processes, not only across threads."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ROOT, deepclust
from tests.service.helpers import wait_for

MB = 2**20


def npy_bytes(rows: int, cols: int = 4, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).random((rows, cols)).astype(np.float32))
    return buffer.getvalue()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_key(client, name: str, **limits) -> dict:
    response = client.post("/keys", json={"name": name, **limits})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def anonymous(client):
    """The same app with no default Authorization header (the lifespan already runs in `client`)."""
    return TestClient(client.app)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api_processes(database, tmp_path_factory):
    """Two API processes on this run's database and broker, as two replicas behind a balancer."""
    log = (tmp_path_factory.mktemp("api") / "uvicorn.log").open("a")
    processes, bases = [], []
    for _ in range(2):
        port = free_port()
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "api.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    deadline = time.time() + 120
    for process, base in zip(processes, bases, strict=True):
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.time() < deadline, "an API process did not start"
            time.sleep(0.3)
    yield bases
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def concurrently(calls) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


# ---- keys ----------------------------------------------------------------------------------------
def test_cli_creates_lists_and_revokes_keys_stored_only_as_hashes(anonymous, database):
    from sqlalchemy import text

    created = deepclust(
        "keys", "create", "cli-user", "--max-active-jobs", "2", "--requests-per-minute", "50"
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    token = key["token"]
    assert {"id", "name", "token"} <= set(key) and key["name"] == "cli-user" and not key["admin"]
    assert token.startswith("dck_") and len(token) >= 4 + 43  # 32 random bytes, urlsafe base64

    me = anonymous.get("/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "cli-user"
    assert (
        me.json()["limits"]["max_active_jobs"] == 2
        and me.json()["limits"]["requests_per_minute"] == 50
    )

    listed = deepclust("keys", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {"id": key["id"], "name": "cli-user"}.items() <= next(
        r for r in rows if r["id"] == key["id"]
    ).items()
    assert token not in listed.stdout and "token" not in rows[0]
    with database.connect() as connection:  # only the sha256 is in the database
        stored = (
            connection.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key["id"]})
            .mappings()
            .one()
        )
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps({k: str(v) for k, v in stored.items()})

    revoked = deepclust("keys", "revoke", key["id"])
    assert revoked.returncode == 0, revoked.stderr
    after = anonymous.get("/me", headers=bearer(token))
    assert after.status_code == 401 and after.headers["www-authenticate"] == "Bearer"
    again = deepclust("keys", "revoke", key["id"])
    assert again.returncode == 2 and "no live key" in again.stderr


def test_missing_malformed_and_unknown_tokens_are_401_with_bearer_challenge(anonymous):
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        bearer("dck_" + "x" * 43),
        bearer(""),
    ):
        response = anonymous.get("/datasets", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
    assert anonymous.get("/health").status_code == 200  # health and methods stay open
    assert anonymous.get("/methods").status_code == 200


def test_only_admins_manage_keys_over_http(client, anonymous):
    user = new_key(client, "plain-user")
    assert (
        anonymous.post("/keys", json={"name": "x"}, headers=bearer(user["token"])).status_code
        == 403
    )
    assert anonymous.get("/keys", headers=bearer(user["token"])).status_code == 403
    assert anonymous.delete(f"/keys/{user['id']}", headers=bearer(user["token"])).status_code == 403
    listed = client.get("/keys").json()
    assert user["id"] in [k["id"] for k in listed] and user["token"] not in json.dumps(listed)
    assert client.delete(f"/keys/{user['id']}").status_code == 204
    assert anonymous.get("/me", headers=bearer(user["token"])).status_code == 401
    assert client.delete(f"/keys/{user['id']}").status_code == 404  # already revoked


def test_bootstrap_admin_token_creates_one_admin_key_once(anonymous):
    from persistence.accounts import ensure_admin_token, new_token
    from persistence.db import session_scope

    token = new_token()
    with session_scope() as session:
        assert ensure_admin_token(session, token)
    with session_scope() as session:
        assert not ensure_admin_token(session, token)  # a second API process starting: no duplicate
    me = anonymous.get("/me", headers=bearer(token)).json()
    assert me["admin"] and me["name"] == "bootstrap-admin"
    with pytest.raises(ValueError, match="dck_"), session_scope() as session:
        ensure_admin_token(session, "password")


def test_auth_default_is_none_only_for_the_embedded_service_on_loopback(monkeypatch):
    from api.serve import auth_mode
    from persistence.settings import Settings

    monkeypatch.delenv("DEEPCLUST_AUTH", raising=False)
    assert auth_mode(Settings(), "127.0.0.1") == "keys"  # this run's settings: Redis, PostgreSQL
    monkeypatch.delenv("DEEPCLUST_BROKER_URL")
    embedded = Settings()
    assert embedded.embedded and auth_mode(embedded, "127.0.0.1") == "none"
    with pytest.raises(SystemExit, match="DEEPCLUST_AUTH"):
        auth_mode(embedded, "0.0.0.0")
    assert (
        embedded.auth_mode == "keys"
    )  # `uvicorn api.main:app` directly: keys unless told otherwise
    monkeypatch.setenv("DEEPCLUST_AUTH", "none")
    assert auth_mode(Settings(), "0.0.0.0") == "none"  # said explicitly


def test_the_embedded_launcher_refuses_an_open_non_loopback_bind(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEEPCLUST_")}
    env.update(HOST="0.0.0.0", PORT="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "api.serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "DEEPCLUST_AUTH=keys" in done.stderr
    assert not (tmp_path / "var").exists()  # refused before touching anything


def test_compose_passes_the_bootstrap_admin_token_to_the_app_services():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("migrate", "api", "worker"):
        value = compose["services"][service]["environment"]["DEEPCLUST_BOOTSTRAP_ADMIN_TOKEN"]
        assert value == "${DEEPCLUST_BOOTSTRAP_ADMIN_TOKEN:-}"
    assert "DEEPCLUST_AUTH" not in compose["services"]["api"]["environment"]  # keys, the default


# ---- ownership matrix ----------------------------------------------------------------------------
WHO = ("owner", "other", "admin", "no key", "revoked")


@pytest.fixture(scope="module")
def world(client, worker, anonymous):
    """An owner's dataset with a succeeded job, and tokens for each kind of caller."""
    owner, other, admin = (
        new_key(client, "owner"),
        new_key(client, "other"),
        new_key(client, "admin", admin=True),
    )
    revoked = new_key(client, "gone")
    assert client.delete(f"/keys/{revoked['id']}").status_code == 204
    headers = {
        "owner": bearer(owner["token"]),
        "other": bearer(other["token"]),
        "admin": bearer(admin["token"]),
        "no key": {},
        "revoked": bearer(revoked["token"]),
    }
    dataset = anonymous.post(
        "/datasets", params={"name": "mine.npy"}, content=npy_bytes(120), headers=headers["owner"]
    ).json()
    job = anonymous.post(
        "/jobs",
        json={"dataset_id": dataset["id"], "method": "kmeans", "n_clusters": 3},
        headers=headers["owner"],
    ).json()
    wait_for(client, job["id"], timeout=120)  # the admin fixture client sees it finish
    return {"headers": headers, "dataset": dataset["id"], "job": job["id"]}


# route -> expected status for (owner, other, admin); "no key" and "revoked" are always 401
MATRIX = {
    ("GET", "/datasets/{dataset}"): (200, 404, 200),
    ("GET", "/jobs/{job}"): (200, 404, 200),
    ("GET", "/jobs/{job}/assignments.csv"): (200, 404, 200),
    ("GET", "/jobs/{job}/embedding.npy"): (200, 404, 200),
    ("GET", "/jobs/{job}/history"): (200, 404, 200),
    ("POST", "/jobs/{job}/cancel"): (
        409,
        404,
        409,
    ),  # finished: visible to owner and admin, not to other
    ("GET", "/datasets"): (200, 200, 200),
    ("GET", "/jobs"): (200, 200, 200),
    ("GET", "/jobs?dataset_id={dataset}"): (200, 200, 200),
    ("GET", "/me"): (200, 200, 200),
}


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("method,route", list(MATRIX), ids=[f"{m} {r}" for m, r in MATRIX])
def test_every_route_answers_each_kind_of_caller(anonymous, world, method, route, who):
    url = route.format(dataset=world["dataset"], job=world["job"])
    response = anonymous.request(method, url, headers=world["headers"][who])
    expected = 401 if who in ("no key", "revoked") else MATRIX[(method, route)][WHO.index(who)]
    assert response.status_code == expected, response.text
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    if expected == 404:  # exactly what a missing id gets: nothing of the other owner's data
        kind, row_id = ("job", world["job"]) if "/jobs/" in url else ("dataset", world["dataset"])
        assert response.json() == {"detail": f"{kind} {row_id} not found"}
    if route in ("/datasets", "/jobs", "/jobs?dataset_id={dataset}") and expected == 200:
        ids = [item["id"] for item in response.json()["items"]]
        mine = world["dataset"] if route == "/datasets" else world["job"]
        assert (mine in ids) == (who in ("owner", "admin")), ids


@pytest.mark.parametrize("who", WHO)
def test_creating_a_job_on_a_dataset(anonymous, world, who):
    response = anonymous.post(
        "/jobs",
        json={"dataset_id": world["dataset"], "method": "kmeans", "n_clusters": 3},
        headers=world["headers"][who],
    )
    if who in ("owner", "admin"):
        assert response.status_code == 202, response.text
    elif who == "other":  # the same answer as for a dataset that does not exist
        missing = anonymous.post(
            "/jobs",
            json={"dataset_id": "e" * 32, "method": "kmeans", "n_clusters": 3},
            headers=world["headers"][who],
        )
        assert response.status_code == missing.status_code == 404
        assert response.json()["detail"] == missing.json()["detail"].replace(
            "e" * 32, world["dataset"]
        )
    else:
        assert response.status_code == 401


@pytest.mark.parametrize("who", WHO)
def test_deleting_a_dataset(anonymous, world, who):
    headers = world["headers"]
    dataset = anonymous.post(
        "/datasets", params={"name": "doomed.npy"}, content=npy_bytes(10), headers=headers["owner"]
    ).json()["id"]
    response = anonymous.delete(f"/datasets/{dataset}", headers=headers[who])
    expected = {"owner": 204, "admin": 204, "other": 404}.get(who, 401)
    assert response.status_code == expected, response.text
    still_there = anonymous.get(f"/datasets/{dataset}", headers=headers["owner"]).status_code == 200
    assert still_there == (expected != 204)


def test_admins_list_every_owners_rows(client, world):
    ids = [d["id"] for d in client.get("/datasets", params={"limit": 500}).json()["items"]]
    assert world["dataset"] in ids


# ---- quotas and rate limits ----------------------------------------------------------------------
def test_twenty_concurrent_submissions_never_pass_the_active_job_limit(
    client, api_processes, worker
):
    key = new_key(client, "busy", max_active_jobs=3)
    headers = bearer(key["token"])
    dataset = httpx.post(
        f"{api_processes[0]}/datasets",
        params={"name": "q.npy"},
        content=npy_bytes(60),
        headers=headers,
    ).json()["id"]
    body = {
        "dataset_id": dataset,
        "method": "dec",
        "n_clusters": 2,
        "params": {"pretrain_epochs": 3000},
    }
    responses = concurrently(
        [
            lambda i=i: httpx.post(
                f"{api_processes[i % 2]}/jobs", json=body, headers=headers, timeout=60
            )
            for i in range(20)
        ]
    )
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 429]
    try:
        assert len(accepted) == 3 and len(refused) == 17, [r.status_code for r in responses]
        assert all(int(r.headers["retry-after"]) > 0 for r in refused)
        assert (
            "active job limit" in refused[0].json()["detail"]
            and "3 of 3" in refused[0].json()["detail"]
        )
        me = httpx.get(f"{api_processes[1]}/me", headers=headers).json()
        assert me["usage"]["active_jobs"] == 3 and me["limits"]["max_active_jobs"] == 3
    finally:
        for r in accepted:
            httpx.post(f"{api_processes[0]}/jobs/{r.json()['id']}/cancel", headers=headers)
    for r in accepted:
        wait_for(client, r.json()["id"], timeout=60)
    assert httpx.get(f"{api_processes[0]}/me", headers=headers).json()["usage"]["active_jobs"] == 0


def test_request_rate_is_counted_across_api_processes(client, api_processes):
    key = new_key(client, "chatty", requests_per_minute=5)
    headers = bearer(key["token"])
    if time.time() % 60 > 50:  # all requests in one fixed window
        time.sleep(61 - time.time() % 60)
    responses = [httpx.get(f"{api_processes[i % 2]}/me", headers=headers) for i in range(8)]
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 3
    limited = responses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "5 per minute" in limited.json()["detail"] and "8 requests" in limited.json()["detail"]


def test_storage_quota_refuses_with_413_and_delete_frees_it_at_once(client, api_processes):
    key = new_key(client, "hoarder", max_storage_mb=1)
    headers = bearer(key["token"])
    base = api_processes[0]
    first = httpx.post(
        f"{base}/datasets", params={"name": "a.npy"}, content=npy_bytes(20_000, 5), headers=headers
    )
    assert first.status_code == 201, first.text  # 400 KB
    used = httpx.get(f"{base}/me", headers=headers).json()["usage"]["stored_bytes"]
    assert 400_000 <= used < 401_000
    second = httpx.post(
        f"{base}/datasets", params={"name": "b.npy"}, content=npy_bytes(40_000, 5), headers=headers
    )
    assert second.status_code == 413, second.text
    assert str(MB) in second.json()["detail"] and str(used) in second.json()["detail"]
    assert httpx.delete(f"{base}/datasets/{first.json()['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{base}/me", headers=headers).json()["usage"]["stored_bytes"] == 0
    third = httpx.post(
        f"{base}/datasets", params={"name": "b.npy"}, content=npy_bytes(40_000, 5), headers=headers
    )
    assert third.status_code == 201, third.text


def test_concurrent_uploads_never_pass_the_storage_quota(client, api_processes):
    key = new_key(client, "rush", max_storage_mb=1)
    headers = bearer(key["token"])
    body = npy_bytes(6_000, 5)  # 120 KB each: 8 fit in 1 MiB
    responses = concurrently(
        [
            lambda i=i: httpx.post(
                f"{api_processes[i % 2]}/datasets",
                params={"name": "c.npy"},
                content=body,
                headers=headers,
                timeout=60,
            )
            for i in range(20)
        ]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 8 + [413] * 12, codes
    assert (
        httpx.get(f"{api_processes[0]}/me", headers=headers).json()["usage"]["stored_bytes"] <= MB
    )


def test_upload_size_limit_per_key(client, api_processes):
    key = new_key(client, "small", max_upload_mb=1)
    response = httpx.post(
        f"{api_processes[0]}/datasets",
        params={"name": "big.npy"},
        content=npy_bytes(80_000, 5),
        headers=bearer(key["token"]),
    )
    assert response.status_code == 413 and "upload limit of 1048576" in response.json()["detail"]


# ---- Idempotency-Key -------------------------------------------------------------------------
def test_concurrent_job_retries_with_one_idempotency_key_make_one_job(client, api_processes):
    key = new_key(client, "retrier")
    headers = bearer(key["token"])
    dataset = httpx.post(
        f"{api_processes[0]}/datasets",
        params={"name": "r.npy"},
        content=npy_bytes(50),
        headers=headers,
    ).json()["id"]
    body = {"dataset_id": dataset, "method": "kmeans", "n_clusters": 2}
    retry = {**headers, "Idempotency-Key": "job-1"}
    responses = concurrently(
        [
            lambda i=i: httpx.post(
                f"{api_processes[i % 2]}/jobs", json=body, headers=retry, timeout=90
            )
            for i in range(10)
        ]
    )
    assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert {r.headers["location"] for r in responses} == {f"/jobs/{ids.pop()}"}
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 9
    assert httpx.get(f"{api_processes[0]}/jobs", headers=headers).json()["total"] == 1
    other = httpx.post(f"{api_processes[1]}/jobs", json={**body, "seed": 7}, headers=retry)
    assert other.status_code == 422 and "Idempotency-Key" in other.text
    # the same key under another API key is another request altogether: the dataset is not
    # the stranger's, so it is not found (not the first key's replayed 202)
    stranger = new_key(client, "stranger")
    assert (
        httpx.post(
            f"{api_processes[0]}/jobs",
            json=body,
            headers={**bearer(stranger["token"]), "Idempotency-Key": "job-1"},
        ).status_code
        == 404
    )


def test_concurrent_upload_retries_with_one_idempotency_key_store_one_copy(client, api_processes):
    key = new_key(client, "uploader")
    headers = {**bearer(key["token"]), "Idempotency-Key": "upload-1"}
    content = npy_bytes(500)
    # multipart bodies: every retry has another boundary, the same file
    responses = concurrently(
        [
            lambda i=i: httpx.post(
                f"{api_processes[i % 2]}/datasets",
                files={"file": ("x.npy", content)},
                headers=headers,
                timeout=90,
            )
            for i in range(8)
        ]
    )
    assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    me = httpx.get(f"{api_processes[0]}/me", headers=headers).json()
    assert me["usage"]["stored_bytes"] == responses[0].json()["n"] * 4 * 4 + 128
    assert httpx.get(f"{api_processes[0]}/datasets", headers=headers).json()["total"] == 1
    changed = httpx.post(
        f"{api_processes[1]}/datasets",
        files={"file": ("x.npy", npy_bytes(500, seed=1))},
        headers=headers,
    )
    assert changed.status_code == 422


def test_a_failed_request_releases_its_idempotency_key(client):
    key = new_key(client, "fixer")
    headers = {**bearer(key["token"]), "Idempotency-Key": "fix-1"}
    bad = client.post(
        "/datasets", params={"name": "x.npy"}, content=b"not an array", headers=headers
    )
    assert bad.status_code == 422
    retry = client.post(
        "/datasets", params={"name": "x.npy"}, content=b"not an array", headers=headers
    )
    assert (
        retry.status_code == 422 and "Idempotency" not in retry.text
    )  # ran again, same data error


# ---- retention -----------------------------------------------------------------------------------
def test_retention_sweep_removes_old_results_unused_data_and_orphans_but_never_active_jobs(
    client, anonymous
):
    from sqlalchemy import select, update

    from persistence import blobs
    from persistence.db import session_scope
    from persistence.models import BlobPart, Dataset, Job, new_id, utcnow
    from persistence.repository import claim_job, create_job, finish_job
    from persistence.retention import sweep

    key = new_key(client, "forgetful")
    headers = bearer(key["token"])

    def upload(name: str) -> str:
        return anonymous.post(
            "/datasets", params={"name": name}, content=npy_bytes(30), headers=headers
        ).json()["id"]

    finished_on, unused, busy, fresh = (
        upload("f.npy"),
        upload("u.npy"),
        upload("b.npy"),
        upload("n.npy"),
    )
    old = utcnow() - timedelta(days=31)
    with session_scope() as session:
        done = create_job(session, finished_on, "kmeans", 2, {}, 0, owner_id=key["id"]).id
        active = create_job(
            session, busy, "kmeans", 2, {}, 0, owner_id=key["id"]
        ).id  # never enqueued: stays queued
    with session_scope() as session:
        assert claim_job(session, done, "test", 60, 3)
        assert finish_job(
            session,
            done,
            labels=np.zeros(30),
            confidence=np.ones(30),
            embedding=np.zeros((30, 2)),
            metrics={},
            history=[],
            progress=None,
            device="cpu",
            versions={},
            wall_s=0,
            peak_mb=0,
            artifacts={"head_labels": np.zeros(30, dtype=np.int64)},  # swept with the job
        )
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == done).values(finished_at=old, created_at=old))
        session.execute(update(Job).where(Job.id == active).values(created_at=old))
        session.execute(
            update(Dataset)
            .where(Dataset.id.in_([finished_on, unused, busy]))
            .values(last_used_at=old)
        )
        orphans = [
            f"datasets/{new_id()}/X.npy",
            f"jobs/{new_id()}/labels.npy",
        ]  # a failed commit's leftovers
        for orphan in orphans:
            session.add(BlobPart(key=orphan, part=0, data=b"x"))
    before = anonymous.get("/me", headers=headers).json()["usage"]["stored_bytes"]

    removed = sweep()

    assert removed["jobs"] >= 1 and removed["datasets"] >= 2 and removed["orphan_blobs"] >= 2
    def get(url: str) -> int:
        return anonymous.get(url, headers=headers).status_code

    assert (
        get(f"/jobs/{done}") == 404
        and get(f"/datasets/{finished_on}") == 404
        and get(f"/datasets/{unused}") == 404
    )
    assert (
        get(f"/jobs/{active}") == 200
        and get(f"/datasets/{busy}") == 200
        and get(f"/datasets/{fresh}") == 200
    )
    with session_scope() as session:
        left = session.scalars(
            select(BlobPart.key).where(
                BlobPart.key.in_(orphans) | BlobPart.key.startswith(f"jobs/{done}/")
            )
        ).all()
        assert left == [] and blobs.has_blob(session, f"datasets/{busy}/X.npy")
    after = anonymous.get("/me", headers=headers).json()["usage"]["stored_bytes"]
    per_dataset = 30 * 4 * 4 + 128
    assert before - after > 2 * per_dataset and after == 2 * per_dataset  # busy + fresh remain
    with session_scope() as session:
        session.execute(
            update(Job).where(Job.id == active).values(status="cancelled", finished_at=utcnow())
        )


def test_orphan_local_blob_files_are_removed_after_a_grace_period(monkeypatch):
    from persistence import blobs
    from persistence.models import new_id
    from persistence.retention import remove_orphan_blobs
    from persistence.settings import get_settings

    monkeypatch.setattr(get_settings(), "blob_store", "local")
    root = blobs.blob_root()
    stale, in_flight = root / "datasets" / new_id(), root / "jobs" / new_id()
    for folder in (stale, in_flight):
        folder.mkdir(parents=True)
        (folder / "X.npy").write_bytes(b"x")
    an_hour_ago = time.time() - get_settings().orphan_grace_s - 60
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert remove_orphan_blobs() >= 1
    assert (
        not stale.exists() and in_flight.exists()
    )  # a young folder may be an upload being committed
