"""Helping a user choose, through the service: `method: "auto"` and GET /methods' hints."""
import numpy as np

from tests.conftest import npz_bytes
from tests.service.helpers import submit, wait_for


def test_auto_job_records_the_picked_method_and_runs_it(client, worker):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.3, (100, 5)), rng.normal(4, 0.3, (100, 5))])
    y = np.repeat([0, 1], 100)
    files = {"file": ("blobs.npz", npz_bytes(X=X.astype(np.float32), y=y))}
    dataset = client.post("/datasets", files=files).json()
    job = submit(client, dataset["id"], "auto", n_clusters=2)
    assert job["method"] == "kmeans"  # 200 samples: too few for an autoencoder
    assert job["params"]["picked_by"].startswith("auto: 200 samples")
    done = wait_for(client, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["metrics"]["acc"] == 1.0 and done["params"]["picked_by"]

    body = {"dataset_id": dataset["id"], "n_clusters": 2}
    refused = client.post("/jobs", json={**body, "method": "auto", "params": {"n_init": 3}})
    assert refused.status_code == 422 and "auto" in refused.text
    assert refused.json()["detail"][0]["loc"][:2] == ["body", "params"]
    spoofed = client.post("/jobs", json={**body, "method": "kmeans",
                                         "params": {"picked_by": "me"}})
    assert spoofed.status_code == 422  # picked_by is the service's note, not a parameter


def test_methods_say_what_they_suit_and_cost(client):
    methods = {m["name"]: m for m in client.get("/methods").json()}
    assert {"n2d", "dcn"} <= set(methods)
    assert all(m["suits"] and m["cost"] for m in methods.values())
    assert "auto" in methods["n2d"]["suits"]  # the method auto picks says so
    schema = client.get("/openapi.json").json()["components"]["schemas"]["JobCreate"]
    assert {"auto", "n2d", "dcn"} <= set(schema["properties"]["method"]["enum"])
