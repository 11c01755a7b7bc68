"""The API refuses unbounded parameters and models too large for the worker (issue #15)."""

import json

import pytest


def post_job(client, dataset_id: str, method: str, params: dict | str):
    """POST /jobs; a str `params` is spliced in raw (JSON's Infinity cannot come from
    json.dumps(allow_nan=False))."""
    raw = params if isinstance(params, str) else json.dumps(params)
    body = (f'{{"dataset_id": "{dataset_id}", "method": "{method}", "n_clusters": 10, '
            f'"params": {raw}, "seed": 0}}')
    return client.post("/jobs", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    "method,params,named",
    [
        ("idec", {"hidden_dims": [1000000000]}, "less than or equal to 100000"),
        ("idec", {"hidden_dims": [0]}, "greater than or equal to 1"),
        ("idec", {"hidden_dims": [-5]}, "greater than or equal to 1"),
        ("idec", '{"gamma": Infinity}', "finite number"),
        ("idec", '{"gamma": NaN}', "finite number"),
        ("dec", {"alpha": 1e308}, "less than or equal to 1000"),
        ("dccf", {"contractive_lambda": 1e300}, "less than or equal to 1000000"),
        ("iciclegcn", {"fusion": [0.4, 0.2, 1e9]}, "less than or equal to 10"),
    ],
)
def test_attack_parameters_are_refused_naming_the_bound(client, digits_id, method, params, named):
    before = client.get("/jobs", params={"limit": 1}).json()["total"]
    response = post_job(client, digits_id, method, params)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(named in d["msg"] and d["loc"][:2] == ["body", "params"] for d in detail), detail
    assert client.get("/jobs", params={"limit": 1}).json()["total"] == before  # no job row


def test_a_model_too_large_for_the_worker_is_refused_naming_memory_and_parameter(
    client, digits_id, monkeypatch
):
    from persistence.settings import get_settings

    monkeypatch.setenv("DEEPCLUST_MEMORY_BUDGET_MB", "2048")
    get_settings.cache_clear()
    try:
        wide = post_job(client, digits_id, "idec", {"hidden_dims": [100000, 100000, 100000]})
        assert wide.status_code == 422, wide.text
        msg = wide.json()["detail"][0]["msg"]
        assert "GiB" in msg and "2.00 GiB" in msg and "the model itself does not fit" in msg, msg
        assert "hidden_dims=[100000, 100000, 100000] makes it large" in msg, msg
        assert wide.json()["detail"][0]["loc"] == ["body", "params"]
        # batch x width: every batch of 1797 rows through 100,000-wide layers (a few hundred fit)
        batch = post_job(
            client, digits_id, "dec", {"batch_size": 65536, "hidden_dims": [100000, 100000]}
        )
        assert batch.status_code == 422, batch.text
        msg = batch.json()["detail"][0]["msg"]
        assert "GiB" in msg and "1797 samples" in msg, msg
    finally:
        monkeypatch.delenv("DEEPCLUST_MEMORY_BUDGET_MB")
        get_settings.cache_clear()
