"""The shared autoencoder's pretraining fails clearly when its codes carry nothing."""
import pytest
import torch

from core import Context, get_method
from core.interface import TrainingFailed


def test_a_collapsed_autoencoder_fails_the_fit_with_advice_and_caches_nothing(tmp_path, digits):
    # Adam at 0.1 on digits' 64 pixels turns every first-layer ReLU off for every image within
    # the first epochs (so would 0.03; the default 1e-3 does not): every code is the same
    method = get_method("ae_kmeans")
    params = method.Params(pretrain_epochs=5, pretrain_lr=0.1, hidden_dims=(64, 64, 128),
                           batch_size=64)
    with pytest.raises(TrainingFailed, match=r"collapsed .* lower pretrain_lr \(now 0.1\)"):
        method.fit(digits[0][:500], 10, params, Context(seed=0, device="cpu",
                                                         cache_dir=str(tmp_path)))
    assert not list(tmp_path.iterdir())  # a later job with these settings trains afresh


def test_identical_rows_are_not_a_collapse():
    # nothing to learn from a constant input: the fit goes on and finds one cluster, as k-means
    method = get_method("ae_kmeans")
    X = torch.ones(50, 64).numpy()
    result = method.fit(X, 2, method.Params(pretrain_epochs=1, hidden_dims=(8,)),
                        Context(seed=0, device="cpu"))
    assert len(result.labels) == 50 and len(set(result.labels.tolist())) == 1
