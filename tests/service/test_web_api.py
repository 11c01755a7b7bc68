"""The routes the web page reads: dataset samples, a job's 2-D map and its confusion matrix."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import npz_bytes
from tests.service.helpers import submit, wait_for


@pytest.fixture(scope="module")
def stranger(client):
    """Another (non-admin) key: it must not see the admin's datasets and jobs."""
    response = client.post("/keys", json={"name": "web-stranger"})
    assert response.status_code == 201, response.text
    other = TestClient(client.app)
    other.headers["Authorization"] = f"Bearer {response.json()['token']}"
    return other


@pytest.fixture(scope="module")
def kmeans_done(client, digits_id, worker) -> dict:
    job = submit(client, digits_id, "kmeans", params={"n_init": 1})
    job = wait_for(client, job["id"], timeout=180)
    assert job["status"] == "succeeded", job
    return job


def test_samples_by_index_and_by_range_keep_the_image_shape(client, digits_id, digits):
    X, y = digits
    got = client.get(f"/datasets/{digits_id}/samples", params={"index": [5, 0, 1796]}).json()
    assert got["index"] == [5, 0, 1796] and got["shape"] == [8, 8]
    assert np.allclose(got["rows"], X[[5, 0, 1796]]) and got["labels"] == y[[5, 0, 1796]].tolist()
    page = client.get(f"/datasets/{digits_id}/samples", params={"start": 1790, "count": 50}).json()
    assert page["index"] == list(range(1790, 1797)) and np.allclose(page["rows"], X[1790:])


def test_samples_are_bounded_owner_checked_and_in_range(client, stranger, digits_id):
    url = f"/datasets/{digits_id}/samples"
    outside = client.get(url, params={"index": [0, 1797]})
    assert outside.status_code == 422 and "1797" in outside.json()["detail"][0]["msg"]
    assert client.get(url, params={"start": 1797}).status_code == 422
    assert client.get(url, params={"index": list(range(201))}).status_code == 422
    assert client.get(url, params={"count": 201}).status_code == 422
    assert client.get(url, params={"index": [-1]}).status_code == 422
    missing = stranger.get(url, params={"index": [0]})
    assert missing.status_code == 404 and digits_id in missing.json()["detail"]
    vectors = client.post("/datasets", files={"file": ("v.npz", npz_bytes(X=np.eye(3)))}).json()
    got = client.get(f"/datasets/{vectors['id']}/samples").json()
    assert got["shape"] == [3] and got["rows"] == np.eye(3).tolist() and got["labels"] is None


def test_projection_matches_the_assignments_and_its_cost_is_recorded(client, stranger, kmeans_done):
    job_id = kmeans_done["id"]
    timings = kmeans_done["metrics"]["timings"]
    assert timings["projection_method"] == "pca"  # the tests' DEEPCLUST_PROJECTION
    assert timings["projection_points"] == 1797 and timings["projection_s"] >= 0
    assert timings["projection_peak_mb"] >= 0
    m = client.get(f"/jobs/{job_id}/projection").json()
    assert m["method"] == "pca" and m["total"] == 1797 and m["index"] == list(range(1797))
    assert len(m["x"]) == len(m["y"]) == 1797 and np.isfinite(m["x"] + m["y"]).all()
    assert np.std(m["x"]) > 0 and np.std(m["y"]) > 0
    rows = list(csv.DictReader(io.StringIO(client.get(f"/jobs/{job_id}/assignments.csv").text)))
    assert m["cluster"] == [int(r["cluster"]) for r in rows]
    assert np.allclose(m["confidence"], [float(r["confidence"]) for r in rows], atol=1e-4)
    assert stranger.get(f"/jobs/{job_id}/projection").status_code == 404
    assert stranger.get(f"/jobs/{job_id}/confusion").status_code == 404


def test_projection_and_confusion_wait_for_success(client, digits_id):
    job = submit(client, digits_id, "kmeans", params={"n_init": 1})
    client.post(f"/jobs/{job['id']}/cancel")
    for route in ("projection", "confusion"):
        refused = client.get(f"/jobs/{job['id']}/{route}")
        assert refused.status_code == 409 and "succeeded" in refused.json()["detail"]


def test_confusion_counts_clusters_against_labels_and_gives_the_acc_matching(
        client, kmeans_done, digits):
    _, y = digits
    c = client.get(f"/jobs/{kmeans_done['id']}/confusion").json()
    matrix = np.array(c["matrix"])
    assert c["classes"] == list(range(10)) and matrix.sum() == 1797
    assert matrix.sum(axis=0).tolist() == np.bincount(y).tolist()
    sizes = kmeans_done["metrics"]["cluster_sizes"]
    assert matrix.sum(axis=1).tolist() == [sizes[k] for k in c["clusters"]]
    matched = sum(matrix[i, c["classes"].index(c["mapping"][str(k)])]
                  for i, k in enumerate(c["clusters"]))
    assert matched / 1797 == pytest.approx(kmeans_done["metrics"]["acc"])


def test_confusion_of_a_dataset_without_labels_is_409(client, worker):
    X = np.random.default_rng(0).random((40, 3))
    dataset = client.post("/datasets", files={"file": ("u.npz", npz_bytes(X=X))}).json()
    job = wait_for(client, submit(client, dataset["id"], "kmeans", n_clusters=3,
                                  params={"n_init": 1})["id"], timeout=180)
    refused = client.get(f"/jobs/{job['id']}/confusion")
    assert refused.status_code == 409 and "no labels" in refused.json()["detail"]
    assert client.get(f"/jobs/{job['id']}/projection").json()["total"] == 40
