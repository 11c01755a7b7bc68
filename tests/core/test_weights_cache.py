"""Pretrained weights are reused only for the same data, settings, seed and thread count."""
import numpy as np
import torch

from core import Context, get_method
from core.weights_cache import weights_path


def test_the_key_is_data_settings_seed_and_threads(tmp_path):
    data = torch.arange(12.0).reshape(3, 4)
    path = weights_path(str(tmp_path), "ae", data, {"epochs": 2}, seed=0)
    assert path.parent == tmp_path and path.name.startswith("ae-")
    assert weights_path(str(tmp_path), "ae", data.numpy(), {"epochs": 2}, seed=0) == path  # tensor or array
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
    first, second = Context(seed=0, device="cpu", cache_dir=str(tmp_path)), Context(seed=0, device="cpu",
                                                                                   cache_dir=str(tmp_path))
    a, b = method.fit(X, 5, params, first), method.fit(X, 5, params, second)
    assert not any("reused_weights" in h for h in first.history)
    assert any("reused_weights" in h for h in second.history) and len(list(tmp_path.iterdir())) == 1
    np.testing.assert_array_equal(a.embedding, b.embedding)
