"""IcicleGCN through the service (images: both stages; features: stage 2)."""


def test_iciclegcn_through_the_service_images_and_features(client, worker, digits_id):
    from tests.service.helpers import submit, wait_for

    tiny = {
        "backbone": "resnet18",
        "backbone_width": 4,
        "warmup_epochs": 1,
        "stage1_epochs": 1,
        "stage2_epochs": 2,
        "report_every": 1,
        "hidden_dims": [32, 32, 64],
    }
    images = submit(client, digits_id, "iciclegcn", params=tiny)
    bad = client.post(
        "/jobs",
        json={
            "dataset_id": digits_id,
            "method": "iciclegcn",
            "n_clusters": 10,
            "params": {"backbone_weights": "/no/such/file.pt"},
        },
    )
    assert bad.status_code == 422 and "does not exist" in bad.text
    kmeans = submit(client, digits_id, "kmeans")
    # features mode on the 64 pixel values, the code's settings (the ImageNet-10 log's). The
    # paper's variants with mean L_re gave 0.814 on one thread but 0.791 in this two-thread
    # worker, below k-means: too close to assert (README, IcicleGCN).
    features = submit(
        client,
        digits_id,
        "iciclegcn",
        params={
            "mode": "features",
            "stage1_variant": "code",
            "stage2_variant": "code",
            "hidden_dims": [128, 128, 512],
            "features_pretrain_epochs": 200,
            "stage2_epochs": 100,
            "stage2_lr": 1e-3,
            "report_every": 25,
        },
    )
    images = wait_for(client, images["id"], timeout=900)
    assert images["status"] == "succeeded", images["error"]
    history = client.get(f"/jobs/{images['id']}/history").json()
    phases = [h["phase"] for h in history]
    assert (
        phases[:2] == ["warmup", "stage1"] and "stage1_result" in phases and "stage2_init" in phases
    )
    assert [h["step"] for h in history if h["phase"] == "stage2"] == [1, 2]
    assert all(h["stage"] == (2 if h["phase"].startswith("stage2") else 1) for h in history)
    assert all("eta_s" in h for h in history if h["phase"] in ("warmup", "stage1", "stage2"))
    assert {"instance", "cluster", "entropy", "reconstruction"} <= set(history[1]["losses"])
    assert {"reconstruction", "kl_q", "kl_gcn_a", "kl_gcn_b"} <= set(history[-1]["losses"])
    assert "acc" in history[-1]["metrics"] and "acc" in history[-1]["metrics_q"]

    kmeans, features = wait_for(client, kmeans["id"]), wait_for(client, features["id"], timeout=900)
    assert features["status"] == "succeeded", features["error"]
    # ACC depends on the CPU's float kernels here: 0.792 vs k-means' 0.792 on one machine
    # (seeds 1, 2: 0.796, 0.836), above k-means + 0.01 on another. NMI and ARI lead on every seed
    # measured (seed 0: 0.801 vs 0.743 and 0.712 vs 0.666; seed 1: 0.780 vs 0.742 and 0.683 vs
    # 0.666).
    # ARI is CPU-dependent too: 0.668 on one machine (a cluster empty), 0.712 on an AVX-512 Xeon,
    # where d31f35a and a877772 give the same labels bit for bit in-process (1 and 2 threads) and
    # through the worker. So ARI keeps only the direction; NMI keeps its margin on every machine.
    for metric, margin in (("nmi", 0.02), ("ari", 0.0)):
        assert features["metrics"][metric] > kmeans["metrics"][metric] + margin, (
            features["metrics"],
            kmeans["metrics"],
        )
    history = client.get(f"/jobs/{features['id']}/history").json()
    assert "warmup" not in {h["phase"] for h in history} and history[-1]["phase"] == "stage2"
