"""DCCF through the service: every loss term reported, and above k-means on digits."""


def test_dccf_through_the_service_reports_every_loss_and_beats_kmeans(client, worker, digits_id):
    from tests.service.helpers import submit, wait_for

    kmeans = submit(client, digits_id, "kmeans")
    dccf = submit(
        client, digits_id, "dccf"
    )  # the paper's schedule: 100 + 200 epochs, lambda 1e-7, beta 0.1
    assert dccf["params"]["contractive_lambda"] == 1e-7 and dccf["params"]["hidden_dims"] == [
        500,
        500,
        1000,
    ]
    kmeans, dccf = wait_for(client, kmeans["id"]), wait_for(client, dccf["id"], timeout=600)
    assert dccf["status"] == "succeeded", dccf["error"]
    assert dccf["metrics"]["acc"] > kmeans["metrics"]["acc"] + 0.02, (
        dccf["metrics"],
        kmeans["metrics"],
    )
    assert dccf["metrics"]["embedding_dim"] == 10  # d' = n_clusters
    history = client.get(f"/jobs/{dccf['id']}/history").json()
    trained = [h for h in history if h["phase"] == "train" and "losses" in h]
    assert trained, history[-3:]
    terms = {"reconstruction", "contractive", "kl", "focal", "total", "penalty_share"}
    assert terms <= set(trained[-1]["losses"]) and all(terms <= set(h["losses"]) for h in trained)
    assert all(h["losses"]["contractive"] > 0 and h["losses"]["focal"] > 0 for h in trained)
    assert (
        0 < trained[-1]["losses"]["penalty_share"] < 1e-2
    )  # lambda = 1e-7 leaves the penalty tiny: visible
    assert "delta_label" in trained[-1] and "acc" in trained[-1]["metrics"]
