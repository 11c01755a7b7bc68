"""Jobs through the HTTP API on PostgreSQL + Redis + a real Celery worker."""

import csv
import io
import os
import signal
import threading

import numpy as np
import pytest

from tests.service.helpers import submit, wait_for

FAST_IDEC = {
    "pretrain_epochs": 50,
    "update_interval": 30,
}  # digits is small: fewer epochs than MNIST's


def test_methods_lists_every_baseline_with_paper_defaults(client):
    methods = {m["name"]: m for m in client.get("/methods").json()}
    assert {"kmeans", "ae_kmeans", "dec", "idec"} <= set(methods)
    idec = methods["idec"]["params_schema"]["properties"]
    assert idec["gamma"]["default"] == 0.1 and idec["embedding_dim"]["default"] == 10
    assert idec["hidden_dims"]["default"] == [500, 500, 2000]
    assert methods["dec"]["params_schema"]["properties"]["update_interval"]["default"] == 140
    assert methods["idec"]["accepts"]["kinds"] == ["vectors", "images"]
    assert client.get("/methods/dec").json()["name"] == "dec"
    assert client.get("/methods/nope").status_code == 404


def test_idec_through_the_service_beats_kmeans_on_digits(client, worker, digits_id, digits):
    kmeans = submit(client, digits_id, "kmeans")
    idec = submit(client, digits_id, "idec", params=FAST_IDEC)
    assert (
        idec["status"] == "queued" and idec["params"]["gamma"] == 0.1
    )  # defaults filled in and recorded
    kmeans = wait_for(client, kmeans["id"])
    idec = wait_for(client, idec["id"], timeout=900)  # 2-3 min alone; 8 min on a loaded 2-core CI
    assert kmeans["status"] == "succeeded", kmeans["error"]
    assert idec["status"] == "succeeded", idec["error"]
    assert idec["metrics"]["acc"] > kmeans["metrics"]["acc"] + 0.01, (
        idec["metrics"],
        kmeans["metrics"],
    )
    assert idec["metrics"]["acc"] > 0.75 and idec["metrics"]["nmi"] > 0.7
    for key in ("nmi", "ari", "f1_macro", "f1_micro", "silhouette"):
        assert key in idec["metrics"]
    assert sum(idec["metrics"]["cluster_sizes"]) == 1797
    assert (
        idec["device"] == "cpu"
        and idec["versions"]["torch"]
        and idec["wall_s"] > 0
        and idec["peak_mb"] > 0
    )
    assert idec["versions"]["torch_threads"] == 2  # DEEPCLUST_TORCH_THREADS reached the worker
    assert idec["attempts"] == 1

    response = client.get(f"/jobs/{idec['id']}/assignments.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["index", "sample_id", "cluster", "confidence"]
    assert len(rows) == 1 + 1797
    clusters = np.array([int(r[2]) for r in rows[1:]])
    assert set(clusters) <= set(range(10))
    assert np.bincount(clusters, minlength=10).tolist() == idec["metrics"]["cluster_sizes"]
    assert all(0.0 < float(r[3]) <= 1.0 for r in rows[1:])

    embedding = np.load(
        io.BytesIO(client.get(f"/jobs/{idec['id']}/embedding.npy").content), allow_pickle=False
    )
    assert embedding.shape == (1797, 10) and embedding.dtype == np.float32

    history = client.get(f"/jobs/{idec['id']}/history").json()
    phases = [h["phase"] for h in history]
    assert phases.count("pretrain") == 50 and "cluster" in phases
    cluster_steps = [h for h in history if h["phase"] == "cluster" and "losses" in h]
    assert {"clustering", "reconstruction", "total"} <= set(cluster_steps[-1]["losses"])
    assert "delta_label" in cluster_steps[-1] and "acc" in cluster_steps[-1]["metrics"]


def test_redelivered_message_never_runs_a_finished_job_twice(client, worker, digits_id):
    from worker.tasks import run_job

    job = wait_for(client, submit(client, digits_id, "kmeans")["id"])
    assert job["status"] == "succeeded"
    assert run_job(job["id"]) == "skipped"  # the task's compare-and-set claim refuses it
    after = client.get(f"/jobs/{job['id']}").json()
    assert after["attempts"] == 1 and after["finished_at"] == job["finished_at"]


def test_only_one_of_two_concurrent_claims_wins(client, digits_id):
    from persistence.db import session_scope
    from persistence.repository import claim_job, create_job

    with session_scope() as session:
        job_id = create_job(session, digits_id, "kmeans", 10, {"n_init": 20, "max_iter": 300}, 0).id
    results, barrier = [], threading.Barrier(4)

    def claim():
        barrier.wait()
        with session_scope() as session:
            results.append(claim_job(session, job_id, "test", 60, 3))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    with session_scope() as session:  # leave no running job behind for the reaper
        from persistence.repository import end_job

        end_job(session, job_id, "cancelled", "test cleanup")


def test_cancel_queued_and_running_jobs(client, worker, digits_id):
    long = submit(client, digits_id, "dec", params={"pretrain_epochs": 2000})
    queued = submit(client, digits_id, "kmeans")
    wait_for(
        client,
        long["id"],
        states=("running",),
        until=lambda j: (j["progress"] or {}).get("step", 0) >= 2,
    )

    cancelled = client.post(f"/jobs/{queued['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    flagged = client.post(f"/jobs/{long['id']}/cancel")
    assert flagged.status_code == 202 and flagged.json()["cancel_requested"]
    stopped = wait_for(client, long["id"], timeout=60)
    assert stopped["status"] == "cancelled" and "pretrain" in stopped["error"]
    assert client.post(f"/jobs/{long['id']}/cancel").status_code == 409
    never_ran = wait_for(client, queued["id"])
    assert never_ran["status"] == "cancelled" and never_ran["attempts"] == 0
    assert client.get(f"/jobs/{long['id']}/assignments.csv").status_code == 409
    listed = client.get("/jobs", params={"status": "cancelled", "limit": 500}).json()
    assert {long["id"], queued["id"]} <= {j["id"] for j in listed["items"]}


def test_job_survives_its_worker_being_killed(client, worker, digits_id):
    job = submit(client, digits_id, "ae_kmeans", params={"pretrain_epochs": 60})
    wait_for(
        client,
        job["id"],
        states=("running",),
        until=lambda j: (j["progress"] or {}).get("step", 0) >= 3,
    )
    children = worker.children()
    assert children, "the worker has no child process running the job"
    for pid in children:
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
    done = wait_for(client, job["id"], timeout=240)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempts"] == 2
    assert client.get(f"/jobs/{job['id']}/assignments.csv").text.count("\n") == 1798


BAD_JOBS = [
    ({"method": "spectral"}, "unknown method"),
    ({"params": {"gamma": 0.1, "not_a_param": 1}}, "extra"),
    ({"params": {"pretrain_epochs": "many"}}, "integer"),
    ({"params": {"pretrain_epochs": -1}}, "greater than or equal"),
    ({"params": {"optimizer": "rmsprop"}}, "adam"),
    ({"n_clusters": 5000}, "n_clusters"),
    ({"n_clusters": 1}, "greater than or equal"),
    ({"n_clusters": "ten"}, "integer"),
    ({"n_clusters": None}, "n_clusters is required"),  # idec cannot find the number of clusters
    ({"dataset_id": "../etc"}, "pattern"),
    ({"seed": -3}, "greater than or equal"),
    ({"colour": "red"}, "extra"),
]


@pytest.mark.parametrize("change,problem", BAD_JOBS, ids=[str(c) for c, _ in BAD_JOBS])
def test_bad_job_request_is_refused_with_422(client, digits_id, change, problem):
    before = client.get("/jobs", params={"limit": 1}).json()["total"]
    body = {"dataset_id": digits_id, "method": "idec", "n_clusters": 10, "params": {}, **change}
    response = client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert problem.lower() in str(response.json()["detail"]).lower()
    assert client.get("/jobs", params={"limit": 1}).json()["total"] == before


def test_job_on_an_unknown_dataset_is_404(client):
    response = client.post(
        "/jobs", json={"dataset_id": "0" * 32, "method": "kmeans", "n_clusters": 3}
    )
    assert (
        response.status_code == 404 and response.json()["detail"] == f"dataset {'0' * 32} not found"
    )


def test_unknown_job_is_404(client):
    assert client.get(f"/jobs/{'f' * 32}").status_code == 404
    assert client.post(f"/jobs/{'f' * 32}/cancel").status_code == 404
    assert client.get(f"/jobs/{'f' * 32}/assignments.csv").status_code == 404


def test_deleting_a_dataset_with_an_active_job_is_refused(client, worker):
    X = np.random.default_rng(1).random((300, 16)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, X)
    dataset = client.post(
        "/datasets", params={"name": "busy.npy"}, content=buffer.getvalue()
    ).json()
    job = submit(client, dataset["id"], "dec", n_clusters=3, params={"pretrain_epochs": 3000})
    response = client.delete(f"/datasets/{dataset['id']}")
    assert response.status_code == 409 and job["id"] in response.json()["detail"]
    client.post(f"/jobs/{job['id']}/cancel")
    wait_for(client, job["id"], timeout=60)
    assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/jobs/{job['id']}").status_code == 404


def test_a_job_that_fails_in_the_worker_records_the_reason(client, worker, digits_id):
    # Params stored by an older version that the current schema refuses: the worker
    # validates again and fails the job with the reason instead of crashing.
    from persistence.db import session_scope
    from persistence.repository import create_job
    from worker.celery_app import enqueue

    with session_scope() as session:
        job_id = create_job(session, digits_id, "kmeans", 10, {"n_init": "lots"}, 0).id
    enqueue(job_id)
    job = wait_for(client, job_id, timeout=120)
    assert job["status"] == "failed" and "n_init" in job["error"] and job["finished_at"]
    assert client.get(f"/jobs/{job_id}/assignments.csv").status_code == 409


def test_a_job_whose_autoencoder_collapses_fails_naming_the_cause_and_the_remedy(
    client, worker, digits_id
):
    # tests/core/test_autoencoder.py: Adam at 0.1 turns every first-layer ReLU off
    params = {"pretrain_epochs": 5, "pretrain_lr": 0.1, "hidden_dims": [64, 64, 128],
              "batch_size": 64}
    job = wait_for(client, submit(client, digits_id, "ae_kmeans", params=params)["id"],
                   timeout=120)
    assert job["status"] == "failed" and job["error"].startswith("TrainingFailed: "), job
    assert "collapsed" in job["error"] and "lower pretrain_lr (now 0.1)" in job["error"]
    assert client.get(f"/jobs/{job['id']}/assignments.csv").status_code == 409
