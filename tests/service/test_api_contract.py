"""The HTTP contract: bounded pagination, one 422 shape, a full `Allow` on 405, liveness apart
from readiness, every error status and enum in the OpenAPI schema, and POST /jobs serialised
against DELETE /datasets (a job accepted with 202 is never deleted with its dataset)."""

import io
import json
import threading

import numpy as np
import pytest


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32))
    return buffer.getvalue()


@pytest.mark.parametrize("path", ["/jobs", "/datasets"])
@pytest.mark.parametrize("offset", [2**63, 2**31, -1])
def test_huge_or_negative_offsets_are_422_not_500(client, path, offset):
    response = client.get(path, params={"offset": offset})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


def test_largest_offset_is_an_empty_page(client):
    page = client.get("/jobs", params={"offset": 2**31 - 1}).json()
    assert page["items"] == [] and page["offset"] == 2**31 - 1


def test_every_422_detail_is_a_list_of_loc_msg_type(client, digits_id):
    responses = [
        client.post("/jobs", json={"dataset_id": digits_id, "method": "nope", "n_clusters": 3}),
        client.post("/jobs", json={"dataset_id": digits_id, "method": "kmeans", "n_clusters": 1}),
        client.post(
            "/datasets",
            params={"name": "x.csv", "label_column": "klass"},
            content=b"a,b\n1,2\n3,4\n",
        ),
        client.post("/datasets", content=npy(np.ones((3, 2)))),  # no name, no format
        client.post("/datasets", files={"other": ("x", b"1")}, data={"field": "v"}),  # no file part
        client.get("/jobs", params={"limit": 0}),
    ]
    for response in responses:
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert isinstance(detail, list) and detail, detail
        assert all({"loc", "msg", "type"} <= set(item) for item in detail), detail
    assert "kmeans" in responses[0].json()["detail"][0]["msg"]  # the unknown method names the known


def test_405_allow_lists_every_method_of_the_path(client):
    response = client.delete("/jobs")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}
    allow = client.put("/datasets/" + "a" * 32).headers["allow"]
    assert {m.strip() for m in allow.split(",")} >= {"GET", "DELETE"}


def test_malformed_ids_are_404_without_reaching_the_database(client):
    for path in ("/jobs/%00", "/datasets/%00abc", f"/jobs/{'F' * 32}"):
        assert client.get(path).status_code == 404, path
    assert client.delete("/datasets/%00").status_code == 404


def test_health_is_liveness_and_ready_checks_database_and_broker(client):
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json() == {
        "status": "ready",
        "database": "ok",
        "broker": "ok",
    }


def test_ready_is_503_naming_the_broker_when_it_is_down(client, monkeypatch):
    from worker import celery_app

    monkeypatch.setattr(
        celery_app.settings, "broker_url", "redis://127.0.0.1:1/0"
    )  # nothing listens
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert (
        body["status"] == "unavailable"
        and body["database"] == "ok"
        and "Connection" in body["broker"]
    )
    assert client.get("/health").status_code == 200  # liveness does not depend on the broker


def test_schema_documents_errors_and_enums(client):
    from core import method_names
    from core.io import FORMATS

    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/jobs"]["post"]["responses"]) >= {"202", "422", "503"}
    assert set(paths["/datasets"]["post"]["responses"]) >= {"201", "400", "413", "422"}
    assert set(paths["/datasets/{dataset_id}"]["delete"]["responses"]) >= {"204", "404", "409"}
    assert set(paths["/jobs/{job_id}/cancel"]["post"]["responses"]) >= {"202", "404", "409"}
    assert set(paths["/ready"]["get"]["responses"]) >= {"200", "503"}
    for path, operations in paths.items():
        for verb, operation in operations.items():
            codes = set(operation["responses"])
            if "{" in path:
                assert "404" in codes, f"{verb} {path}"
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in codes, f"{verb} {path}"
            if operation.get("requestBody"):  # a body that is not JSON (or multipart) is a 400
                assert "400" in codes, f"{verb} {path}"
    job_create = schema["components"]["schemas"]["JobCreate"]["properties"]["method"]
    assert job_create["enum"] == [*method_names(), "auto"]  # auto: core.jobs.pick_method
    upload_params = {p["name"]: p for p in paths["/datasets"]["post"]["parameters"]}
    format_schema = upload_params["format"]["schema"]["anyOf"][0]
    assert format_schema["enum"] == list(FORMATS)
    assert "multipart/form-data" in paths["/datasets"]["post"]["requestBody"]["content"]


def test_job_submission_and_dataset_deletion_are_serialised(client):
    """30 concurrent pairs: either the job is refused (the dataset is gone) or the delete is
    (the job is active); every job accepted with 202 still exists afterwards; no 500."""
    X = np.random.default_rng(0).random((20, 3))
    dataset_ids = [
        client.post("/datasets", params={"name": f"race{i}.npy"}, content=npy(X)).json()["id"]
        for i in range(30)
    ]
    outcomes: dict[str, dict] = {d: {} for d in dataset_ids}
    barrier = threading.Barrier(2 * len(dataset_ids))

    def call(dataset_id, key, request):
        barrier.wait()
        try:
            outcomes[dataset_id][key] = request()
        except Exception as exc:  # noqa: BLE001  (the test client re-raises what would be a 500)
            outcomes[dataset_id][key] = exc

    def submit_one(dataset_id):
        call(
            dataset_id,
            "job",
            lambda: client.post(
                "/jobs", json={"dataset_id": dataset_id, "method": "kmeans", "n_clusters": 2}
            ),
        )

    def delete_one(dataset_id):
        call(dataset_id, "delete", lambda: client.delete(f"/datasets/{dataset_id}"))

    threads = [
        threading.Thread(target=f, args=(d,)) for d in dataset_ids for f in (submit_one, delete_one)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = []
    for outcome in outcomes.values():
        job, delete = outcome["job"], outcome["delete"]
        assert not isinstance(job, Exception) and not isinstance(delete, Exception), (job, delete)
        assert job.status_code in (202, 404) and delete.status_code in (204, 409), (
            job.text,
            delete.text,
        )
        if job.status_code == 202:
            accepted.append(job.json()["id"])
            assert delete.status_code == 409, "the dataset was deleted under an accepted job"
            assert client.get(f"/jobs/{job.json()['id']}").status_code == 200
            client.post(f"/jobs/{job.json()['id']}/cancel")
        else:
            assert delete.status_code == 204 and "not found" in job.text
    print(f"{len(accepted)} of 30 jobs accepted, {30 - len(accepted)} refused after the delete")
    drop_messages(accepted)


def drop_messages(job_ids) -> None:
    """Take cancelled jobs' messages off this run's queue: each would cost the session's
    worker a fresh child process (seconds on a busy CI machine) only to be skipped."""
    import redis

    from persistence.settings import get_settings

    settings = get_settings()
    client = redis.Redis.from_url(settings.broker)
    for raw in client.lrange(settings.queue, 0, -1):
        if json.loads(raw)["headers"]["id"] in job_ids:
            client.lrem(settings.queue, 0, raw)


def test_a_queued_job_whose_message_was_lost_is_sent_again(client, worker, digits_id, monkeypatch):
    """Rows queued with no message in the broker (as after `DEL <queue>`): the API's periodic
    check sends them again once they waited DEEPCLUST_REQUEUE_QUEUED_AFTER_S, and each runs once."""
    from datetime import timedelta

    from persistence.db import session_scope
    from persistence.models import Job, utcnow
    from persistence.repository import create_job
    from tests.service.helpers import wait_for
    from worker import celery_app

    monkeypatch.setattr(celery_app.settings, "requeue_queued_after_s", 2.0)
    with session_scope() as session:
        ids = [
            create_job(session, digits_id, "kmeans", 10, {"n_init": 2, "max_iter": 50}, seed).id
            for seed in range(2)
        ]
        session.get(Job, ids[0]).enqueued_at = utcnow() - timedelta(hours=1)
    jobs = [wait_for(client, job_id, timeout=90) for job_id in ids]
    assert [j["status"] for j in jobs] == ["succeeded"] * 2, jobs
    assert [j["attempts"] for j in jobs] == [1, 1]
