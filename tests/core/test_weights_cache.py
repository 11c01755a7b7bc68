"""Pretrained weights are reused only for the same data, settings, seed and thread count."""
import numpy as np
import torch

from core import Context, get_method
from core.weights_cache import weights_path


def test_the_key_is_data_settings_seed_and_threads(tmp_path):
    data = torch.arange(12.0).reshape(3, 4)
    path = weights_path(str(tmp_path), "ae", data, {"epochs": 2}, seed=0)
    assert path.parent == tmp_path and path.name.startswith("ae-")
    # a tensor or an array
    assert weights_path(str(tmp_path), "ae", data.numpy(), {"epochs": 2}, seed=0) == path
    assert weights_path(str(tmp_path), "ae", data, {"epochs": 3}, seed=0) != path
    assert weights_path(str(tmp_path), "ae", data, {"epochs": 2}, seed=1) != path
    assert weights_path(str(tmp_path), "ae", data + 1, {"epochs": 2}, seed=0) != path
    assert weights_path(None, "ae", data, {"epochs": 2}, seed=0) is None
    threads = torch.get_num_threads()
    try:  # other float reductions, other weights
        torch.set_num_threads(threads + 1)
        assert weights_path(str(tmp_path), "ae", data, {"epochs": 2}, seed=0) != path
    finally:
        torch.set_num_threads(threads)


def test_a_second_run_reuses_the_pretrained_autoencoder(tmp_path, digits):
    X = digits[0][:300]
    method = get_method("ae_kmeans")
    params = method.Params(pretrain_epochs=2, hidden_dims=(32,))
    first, second = (Context(seed=0, device="cpu", cache_dir=str(tmp_path)) for _ in range(2))
    a, b = method.fit(X, 5, params, first), method.fit(X, 5, params, second)
    assert not any("reused_weights" in h for h in first.history)
    assert any("reused_weights" in h for h in second.history) and len(list(tmp_path.iterdir())) == 1
    np.testing.assert_array_equal(a.embedding, b.embedding)


def test_the_key_fields_are_declared_on_the_params_and_shared_pretrainings_share_them():
    from core.weights_cache import weights_fields

    params = {name: get_method(name).Params() for name in ("ae_kmeans", "dec", "idec")}
    keys = {name: weights_fields(p) for name, p in params.items()}
    assert keys["ae_kmeans"] == keys["dec"] == keys["idec"]
    assert {"hidden_dims", "pretrain_epochs", "batch_size", "input_scaling"} <= set(keys["dec"])
    assert "lr" not in keys["dec"] and "update_interval" not in keys["dec"]  # self-training only
    dscnss = get_method("dscnss").Params
    assert weights_fields(dscnss()) == weights_fields(dscnss(self_supervision=False, rounds=2))
    assert weights_fields(dscnss()) != weights_fields(dscnss(pretrain_noise=0.2))
    icicle = get_method("iciclegcn").Params
    assert weights_fields(icicle()) == weights_fields(icicle(stage2_epochs=0, alpha=1.0))
    assert "warmup_epochs" in weights_fields(icicle())
    rdc = weights_fields(get_method("rdc").Params())
    assert {"acai_lambda", "augment"} <= set(rdc) and "gamma" not in rdc


def test_dsc_net_alone_reuses_the_conv_autoencoder_dscnss_pretrained(tmp_path, digits):
    images = digits[0][:200].reshape(200, 8, 8)
    method = get_method("dscnss")
    tiny = {"pretrain_epochs": 2, "j1_epochs_first": 2, "j1_epochs": 1, "rounds": 1, "j2_epochs": 2}
    first, second = (Context(seed=0, device="cpu", cache_dir=str(tmp_path)) for _ in range(2))
    method.fit(images, 10, method.Params(**tiny), first)
    method.fit(images, 10, method.Params(**tiny, self_supervision=False), second)
    assert not any("reused_weights" in h for h in first.history)
    assert any("reused_weights" in h for h in second.history) and len(list(tmp_path.iterdir())) == 1
