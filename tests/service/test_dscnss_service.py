"""DSCNSS through the service: above k-means with its rounds recorded, and the memory refusal."""

import pytest

from core.methods.dscnss import DSCNSSMethod, DSCNSSParams

# A short CI schedule. J2 uses the code's lr 1e-3: with the paper's 1e-4 the head does not fit the
# pseudo-labels in 200 epochs and the encoder step then hurts C (digits ACC 0.80 -> 0.73 in
# round 2).
CI_PARAMS = {
    "pretrain_epochs": 50,
    "j1_epochs_first": 100,
    "j1_epochs": 10,
    "rounds": 2,
    "j2_epochs": 200,
    "j2_lr": 1e-3,
}


def test_dscnss_through_the_service_beats_kmeans_and_records_rounds(client, worker, digits_id):
    from tests.service.helpers import submit, wait_for

    kmeans = submit(client, digits_id, "kmeans")
    job = submit(client, digits_id, "dscnss", params=CI_PARAMS)
    assert job["params"]["preset"] == "auto" and job["params"]["lambda3"] == 0.3
    kmeans, job = wait_for(client, kmeans["id"]), wait_for(client, job["id"], timeout=600)
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["acc"] > kmeans["metrics"]["acc"], (
        job["metrics"]["acc"],
        kmeans["metrics"]["acc"],
    )
    assert job["metrics"]["latent_dim"] == 160 and "head_labels" not in job["metrics"]
    assert job["artifacts"] == [{"name": "head_labels", "dtype": "int64", "shape": [1797]}]
    history = client.get(f"/jobs/{job['id']}/history").json()
    j1 = [h for h in history if h["phase"] == "j1"]
    j2 = [h for h in history if h["phase"] == "j2"]
    rounds = [h for h in history if h["phase"] == "round"]
    assert {"L0", "L1", "L2", "J1"} <= set(j1[-1]["losses"]) and {"L3", "L4", "J2"} <= set(
        j2[-1]["losses"]
    )
    assert all(h["losses"]["L3"] >= 0 and h["losses"]["L4"] > 0 for h in j2)
    assert [h["round"] for h in rounds] == [0, 1]
    assert (
        rounds[0]["agreement_with_previous"] is None
        and 0 < rounds[1]["agreement_with_previous"] <= 1
    )
    assert all("acc" in h["metrics"] and "acc" in h["head_metrics"] for h in rounds)
    assert rounds[-1]["metrics"]["acc"] == pytest.approx(job["metrics"]["acc"])


def test_dscnss_refuses_data_over_the_memory_budget(client, digits_id, monkeypatch):
    from persistence.settings import get_settings

    monkeypatch.setenv("DEEPCLUST_MEMORY_BUDGET_MB", "20")
    get_settings.cache_clear()
    try:
        before = client.get("/jobs", params={"limit": 1}).json()["total"]
        response = client.post(
            "/jobs",
            json={
                "dataset_id": digits_id,
                "method": "dscnss",
                "n_clusters": 10,
                "params": {},
                "seed": 0,
            },
        )
        assert response.status_code == 422, response.text
        detail = response.json()["detail"][0]["msg"]
        limit = DSCNSSMethod.memory_bytes((1797, 8, 8), 10, DSCNSSParams())
        assert "1797 samples" in detail and "0.02 GiB" in detail and "at most" in detail, detail
        assert f"{limit / 2**30:.2f} GiB" in detail
        assert client.get("/jobs", params={"limit": 1}).json()["total"] == before  # no job row
    finally:
        monkeypatch.delenv("DEEPCLUST_MEMORY_BUDGET_MB")
        get_settings.cache_clear()
