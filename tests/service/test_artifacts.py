"""A method's artifacts (ClusteringResult.artifacts) through the real worker: stored as blobs,
listed in the job (never their values), downloadable by the owner, deleted with the job."""
import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import npz_bytes
from tests.core.test_method_contract import longest_list
from tests.service.helpers import submit, wait_for

N = 300
# DSCNSS in seconds on 300 digits; rounds=2 so its head is trained and labels every sample.
FAST_DSCNSS = {"pretrain_epochs": 20, "j1_epochs_first": 100, "j1_epochs": 10, "rounds": 2,
               "j2_epochs": 50, "j2_lr": 1e-3}


@pytest.fixture(scope="module")
def dscnss_job(client, worker, digits):
    X, y = digits
    ids = np.array([f"s{i}" for i in range(N)])
    upload = client.post("/datasets", files={"file": ("few.npz", npz_bytes(X=X[:N], y=y[:N],
                                                                           ids=ids))})
    assert upload.status_code == 201, upload.text
    job = wait_for(client, submit(client, upload.json()["id"], "dscnss", params=FAST_DSCNSS)["id"])
    assert job["status"] == "succeeded", job["error"]
    return job


def test_head_labels_are_listed_not_inlined_and_download_as_csv_and_npy(client, dscnss_job):
    job = dscnss_job
    assert job["artifacts"] == [{"name": "head_labels", "dtype": "int64", "shape": [N]}]
    assert "head_labels" not in job["metrics"] and longest_list(job) < N  # no per-sample list
    assert client.get("/jobs", params={"limit": 5}).json()["items"][0]["artifacts"]

    response = client.get(f"/jobs/{job['id']}/artifacts/head_labels")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["index", "sample_id", "head_labels"] and len(rows) == 1 + N
    assert rows[1][:2] == ["0", "s0"] and rows[-1][:2] == [str(N - 1), f"s{N - 1}"]
    head = np.array([int(r[2]) for r in rows[1:]])
    assert set(head) <= set(range(10))

    npy = client.get(f"/jobs/{job['id']}/artifacts/head_labels", params={"format": "npy"})
    array = np.load(io.BytesIO(npy.content), allow_pickle=False)
    assert array.dtype == np.int64 and np.array_equal(array, head)


def test_unknown_artifacts_and_other_owners_get_404(client, dscnss_job):
    job_id = dscnss_job["id"]
    unknown = client.get(f"/jobs/{job_id}/artifacts/nope")
    assert unknown.status_code == 404 and "head_labels" in unknown.json()["detail"]
    assert client.get(f"/jobs/{job_id}/artifacts/head_labels",
                      params={"format": "xls"}).status_code == 422
    other = client.post("/keys", json={"name": "artifact-stranger"})
    assert other.status_code == 201, other.text
    stranger = TestClient(client.app)
    stranger.headers["Authorization"] = f"Bearer {other.json()['token']}"
    response = stranger.get(f"/jobs/{job_id}/artifacts/head_labels")
    assert response.status_code == 404 and response.json() == {"detail": f"job {job_id} not found"}


def test_artifacts_go_with_their_dataset(client, dscnss_job):
    from persistence import blobs
    from persistence.db import session_scope
    from persistence.repository import artifact_key

    key = artifact_key(dscnss_job["id"], "head_labels")
    with session_scope() as session:
        assert blobs.has_blob(session, key)
    assert client.delete(f"/datasets/{dscnss_job['dataset_id']}").status_code == 204
    with session_scope() as session:
        assert not blobs.has_blob(session, key)


def test_only_plain_bounded_numeric_arrays_are_stored(caplog):
    from persistence.repository import MAX_ARTIFACT_BYTES, storable_artifacts

    ok = np.arange(5)
    kept = storable_artifacts({
        "head_labels": ok, "../escape": ok, "names": np.array(["a", "b"]), "scalar": np.float32(1),
        "huge": np.zeros(MAX_ARTIFACT_BYTES // 8 + 1), "flags": np.array([True, False]),
    })
    assert list(kept) == ["head_labels", "flags"] and kept["flags"].dtype == np.uint8
    skipped = " ".join(caplog.messages)
    for name in ("../escape", "names", "scalar", "huge"):
        assert repr(name) in skipped
