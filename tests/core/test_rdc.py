"""R-DC: its building blocks against independent computations (the method through the service:
tests/service/test_rdc_service.py)."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

import core.acai
from core.acai import ACAIParams, acai_losses, acai_pretrained_autoencoder, critic_network
from core.autoencoder import MLPAutoencoder
from core.geometry import cluster_geometry, neighbour_purity, pca_id, twonn
from core.images import image_shape, random_shift_rotate
from core.interface import Context
from core.methods.rdc import RDCParams, neighbour_centroids, proximity_filter, proximity_losses


def _embedded(n: int, dim: int, ambient: int = 10, seed: int = 0) -> np.ndarray:
    """n uniform points of a dim-dimensional cube, rotated into `ambient` dimensions."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(ambient, ambient)))[0][:, :dim]
    return rng.uniform(size=(n, dim)) @ basis.T


def test_twonn_finds_the_dimension_of_flat_manifolds():
    assert twonn(_embedded(2000, 1)) == pytest.approx(1.0, abs=0.15)
    assert twonn(_embedded(2000, 2)) == pytest.approx(2.0, abs=0.25)
    assert twonn(_embedded(2000, 3)) == pytest.approx(3.0, abs=0.4)


def test_twonn_matches_the_full_distance_matrix_reference():
    z = np.random.default_rng(1).normal(size=(300, 4))
    d = squareform(pdist(z))
    np.fill_diagonal(d, np.inf)
    r = np.sort(d, axis=1)[:, :2]
    mu = np.sort(r[:, 1] / r[:, 0])
    f = np.arange(1, len(mu) + 1) / len(mu)
    x, y = np.log(mu[:-2])[: int(0.9 * len(mu))], -np.log(1 - f[:-2])[: int(0.9 * len(mu))]
    assert twonn(z) == pytest.approx(float(x @ y / (x @ x)), rel=1e-9)


def test_pca_id_counts_components_as_sklearn():
    z = _embedded(500, 3) + 1e-6 * np.random.default_rng(2).normal(size=(500, 10))
    evr = PCA().fit(StandardScaler().fit_transform(z)).explained_variance_ratio_
    for threshold in (0.5, 0.9, 0.9999):
        assert pca_id(z, threshold) == int(np.argwhere(np.cumsum(evr) > threshold)[0][0]) + 1
    assert pca_id(_embedded(500, 10)) == 10


def test_cluster_geometry_averages_over_clusters():
    a, b = _embedded(1000, 1, seed=3), _embedded(1000, 2, seed=4) + 5
    geometry = cluster_geometry(np.vstack([a, b]), np.repeat([0, 1], 1000))
    assert geometry["id"] == pytest.approx((twonn(a, 1.0) + twonn(b, 1.0)) / 2)
    assert geometry["lid"] == pytest.approx((pca_id(a) + pca_id(b)) / 2)
    assert geometry["ft"] == pytest.approx(geometry["lid"] - geometry["id"])


def test_neighbour_purity():
    y = np.array([0, 0, 1, 1])
    idx = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    assert neighbour_purity(idx, np.ones((4, 2), bool), y) == 0.5
    assert neighbour_purity(idx, np.array([[1, 0], [1, 0], [1, 0], [1, 0]], bool), y) == 1.0
    assert neighbour_purity(idx, np.zeros((4, 2), bool), y) is None


def test_proximity_filter_rules_and_reliable_neighbours():
    dist = torch.tensor(
        [
            [1.0, 1.2, 1.5, 1.9],  # r = 0.53
            [0.1, 0.2, 0.9, 1.0],  # r = 0.10
            [0.5, 0.5, 0.6, 0.8],
        ]
    )  # r = 0.63
    core, kept = proximity_filter(dist, alpha_core=0.6, beta_nn=0.6, core_rule="below")
    assert core.tolist() == [True, True, False]
    # paper: D_j - D_1 < beta per point
    assert kept.tolist() == [
        [True, True, True, False],
        [True, True, False, False],
        [True, True, True, True],
    ]
    assert proximity_filter(dist, 0.6, 0.6, core_rule="above")[0].tolist() == [False, False, True]
    # code: D_1 replaced by a running minimum over core points, from the last point's D_1 (0.5)
    _, kept_code = proximity_filter(dist, 0.6, 0.6, filter_mode="code", core_rule="below")
    assert kept_code.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
    ]
    _, kept_median = proximity_filter(dist, 0.6, 0.6, beta_scale="median")  # beta = 0.6 * 0.5
    assert kept_median[0].tolist() == [True, True, False, False]


def test_neighbour_centroids_and_losses():
    z = torch.randn(6, 3)
    idx = torch.tensor([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    kept = torch.tensor(
        [[True, False], [True, True], [True, True], [False, False], [True, True], [True, False]]
    )
    c = neighbour_centroids(z, idx, kept)
    expected = [z[1], (z[0] + z[2]) / 2, (z[0] + z[1]) / 2, torch.zeros(3), (z[3] + z[5]) / 2, z[3]]
    assert torch.allclose(c, torch.stack(expected))
    x_hat, y, pull = torch.randn(6, 5), torch.randn(6, 5), torch.tensor([1.0, 1, 0, 0, 1, 1])
    latent, reconstruction = proximity_losses(z, x_hat, c, y, pull)
    assert latent == pytest.approx(
        sum(pull[i] * ((z[i] - c[i]) ** 2).mean() for i in range(6)).item() / 6
    )
    assert reconstruction == pytest.approx(((x_hat - y) ** 2).mean().item())


@pytest.mark.parametrize("interpolation_range,low,high", [("half", 0.0, 0.5), ("unit", 0.0, 1.0)])
def test_acai_mixes_with_alpha_folded_into_the_lower_half(monkeypatch, interpolation_range, low,
                                                          high):
    # Each pair is mixed in both orders: with alpha ~ U(0, 1) one decoded mix would have targets
    # alpha and 1 - alpha, and the critic's best answer would be 1/2 (docs/wip/rdc-phase1.md).
    drawn = []

    def spy(model, critic, x, alpha, gamma, acai_lambda):
        drawn.append(alpha.clone())
        return acai_losses(model, critic, x, alpha, gamma, acai_lambda)

    monkeypatch.setattr(core.acai, "acai_losses", spy)
    X = torch.rand(64, 6)
    p = ACAIParams(hidden_dims=(8,), embedding_dim=2, pretrain_epochs=3, batch_size=16,
                   interpolation_range=interpolation_range)
    acai_pretrained_autoencoder(X, p, Context(device="cpu"), torch.Generator().manual_seed(0), None)
    alphas = torch.cat(drawn)
    assert len(alphas) == 3 * 64 and low <= alphas.min() and alphas.max() <= high
    assert alphas.max() > high - 0.1 and alphas.min() < low + 0.1  # the whole range is used


def test_acai_losses_follow_the_equations():
    torch.manual_seed(0)
    model, critic = (
        MLPAutoencoder(6, (8,), 3).double(),
        critic_network(6, RDCParams(hidden_dims=(8,), embedding_dim=3)).double(),
    )
    x, alpha, gamma = torch.rand(4, 6, dtype=torch.float64), torch.rand(4, dtype=torch.float64), 0.3
    terms = acai_losses(model, critic, x, alpha, gamma, acai_lambda=0.5)
    ae_loss, critic_loss = terms["total"], terms["critic"]
    with torch.no_grad():
        z = model.encoder(x)
        x_hat = model.decoder(z)
        mixed = model.decoder(alpha[:, None] * z + (1 - alpha[:, None]) * z[[3, 2, 1, 0]])
        c_mixed, c_blend = critic(mixed).mean(1), critic(gamma * x + (1 - gamma) * x_hat).mean(1)
    assert ae_loss.item() == pytest.approx(
        (((x_hat - x) ** 2).mean() + 0.5 * (c_mixed**2).mean()).item()
    )
    assert critic_loss.item() == pytest.approx(
        (((c_mixed - alpha) ** 2).mean() + (c_blend**2).mean()).item()
    )


def test_shift_rotate_is_per_sample_and_identity_at_zero():
    assert image_shape((5, 784)) == (1, 28, 28) and image_shape((5, 10)) is None
    assert image_shape((5, 8, 8)) == (1, 8, 8) and image_shape((5, 8, 8, 3)) == (3, 8, 8)
    x = torch.rand(2, 8 * 8 * 3)
    assert torch.allclose(random_shift_rotate(x, (3, 8, 8), 0.0, 0.0), x, atol=1e-5)
    same = torch.rand(1, 64).repeat(4, 1)
    moved = random_shift_rotate(same, (1, 8, 8), generator=torch.Generator().manual_seed(0))
    assert moved.shape == same.shape and not torch.allclose(moved[0], moved[1])


def test_rdc_without_n_clusters_uses_dbscan_and_the_ablation_switches(digits):
    from core import Context, get_method

    X = digits[0][:400]
    method = get_method("rdc")
    tiny = {
        "hidden_dims": (32,),
        "pretrain_epochs": 2,
        "maxiter": 20,
        "refresh_interval": 10,
        "n_init": 2,
    }
    result = method.fit(X, None, method.Params(**tiny), Context(seed=0, device="cpu"))
    assert result.diagnostics["n_clusters_found"] == len(np.unique(result.labels)) >= 1
    assert "dbscan_eps" in result.diagnostics and result.labels.min() == 0
    ctx = Context(seed=0, device="cpu")
    none = method.fit(X, 5, method.Params(**tiny, phase2="none"), ctx)
    assert (
        not any(h["phase"] == "refresh" for h in ctx.history)
        and none.diagnostics["n_clusters_found"] == 5
    )
    ctx = Context(seed=0, device="cpu")
    method.fit(X, 5, method.Params(**tiny, phase2="dec"), ctx)
    assert any(h["phase"] == "cluster" and "delta_label" in h for h in ctx.history)
