"""What service tests call: submit a job over the API and wait for it."""
from __future__ import annotations

import time


def submit(client, dataset_id: str, method: str, n_clusters: int = 10,
           params: dict | None = None, seed: int = 0) -> dict:
    response = client.post("/jobs", json={"dataset_id": dataset_id, "method": method,
                                          "n_clusters": n_clusters, "params": params or {},
                                          "seed": seed})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{response.json()['id']}"
    return response.json()


def wait_for(client, job_id: str, states=("succeeded", "failed", "cancelled"),
             timeout: float = 300, until=None) -> dict:
    """Poll GET /jobs/{id} until the job is in one of `states` (and `until(job)` holds)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in states and (until is None or until(job)):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout} s: {job}")
