"""IcicleGCN: loss terms, sparse graph and GCN layer against independent computations, and
backbones (the method through the service: tests/service/test_iciclegcn_service.py)."""

import math

import numpy as np
import pytest
import torch

from core.graph import GCNLayer, knn_adjacency
from core.image_backbones import (
    as_image_tensor,
    augment_batch,
    make_backbone,
    two_view_augmentation,
)
from core.methods.iciclegcn import (
    MGCN,
    IcicleGCNParams,
    SoftmaxAutoencoder,
    cluster_contrast,
    entropy_of_mean,
    feature_reconstruction,
    nt_xent,
    reconstruction_reduction,
)


def test_nt_xent_matches_the_written_out_formula():
    torch.manual_seed(0)
    a, b, tau = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64), 0.5
    views = [torch.nn.functional.normalize(v, dim=1) for v in (a, b)]
    total = 0.0
    for u in range(2):  # Eq. 2-3: l_i^a and l_i^b, averaged over the 2N anchors
        mine, other = views[u], views[1 - u]
        for i in range(5):
            positive = math.exp(float(mine[i] @ other[i]) / tau)
            negatives = sum(math.exp(float(mine[i] @ mine[j]) / tau) for j in range(5) if j != i)
            everything = negatives + sum(
                math.exp(float(mine[i] @ other[j]) / tau) for j in range(5)
            )
            total += -math.log(positive / everything)
    assert nt_xent(a, b, tau).item() == pytest.approx(total / 10, rel=1e-9)


def test_cluster_contrast_compares_columns_and_entropy_of_the_mean_assignment():
    torch.manual_seed(1)
    w_a, w_b = torch.randn(6, 3).softmax(1), torch.randn(6, 3).softmax(1)
    contrast, entropy = cluster_contrast(w_a, w_b, 1.0)
    assert contrast.item() == pytest.approx(nt_xent(w_a.T, w_b.T, 1.0).item())
    p_a, p_b = w_a.mean(0).numpy(), w_b.mean(0).numpy()
    expected = (p_a * np.log(p_a)).sum() + (p_b * np.log(p_b)).sum()  # -H(W_a) - H(W_b)
    assert entropy.item() == pytest.approx(expected, rel=1e-5)
    assert entropy_of_mean(torch.full((4, 5), 0.2)).item() == pytest.approx(math.log(5))


def test_reconstruction_is_summed_in_the_paper_averaged_in_the_code_unless_set():
    z, z_hat = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    summed, mean = feature_reconstruction(z, z_hat, "sum"), feature_reconstruction(z, z_hat, "mean")
    assert summed.item() == pytest.approx(((z - z_hat) ** 2).sum().item() / 6)  # ||Z - Z^||_F^2 / n
    assert mean.item() == pytest.approx(((z - z_hat) ** 2).mean().item())
    assert [reconstruction_reduction(IcicleGCNParams(), v) for v in ("paper", "code")] == [
        "sum",
        "mean",
    ]
    assert reconstruction_reduction(IcicleGCNParams(reconstruction="mean"), "paper") == "mean"


@pytest.mark.parametrize("normalization", ["sym", "row"])
def test_knn_adjacency_equals_the_dense_normalised_graph(digits, normalization):
    from sklearn.neighbors import NearestNeighbors

    # digits has tied distances (duplicate rows); a little noise makes the neighbour lists unique
    X = digits[0][:300].reshape(300, -1) + np.random.default_rng(0).normal(
        0, 1e-2, (300, 64)
    ).astype(np.float32)
    k = 4
    neighbours = (
        NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    )
    dense = np.zeros((300, 300))
    dense[np.repeat(np.arange(300), k), neighbours.ravel()] = 1
    dense = np.maximum(dense, dense.T) + np.eye(300)  # symmetrised, self-loops
    degree = dense.sum(1)
    expected = (
        dense / np.sqrt(np.outer(degree, degree))
        if normalization == "sym"
        else dense / degree[:, None]
    )
    adjacency = knn_adjacency(torch.from_numpy(X), k, normalization)
    assert adjacency.is_sparse and adjacency._nnz() == int((dense > 0).sum())
    np.testing.assert_allclose(adjacency.to_dense().numpy(), expected, rtol=1e-5, atol=1e-7)


def test_gcn_layer_is_relu_of_a_x_w_and_passes_gradients():
    torch.manual_seed(2)
    x = torch.randn(50, 6)
    adjacency = knn_adjacency(x, 3)
    layer = GCNLayer(6, 4)
    out = layer(x, adjacency)
    assert torch.allclose(out, torch.relu(adjacency.to_dense() @ x @ layer.weight), atol=1e-6)
    assert torch.allclose(
        layer(x, adjacency, active=False), adjacency.to_dense() @ x @ layer.weight, atol=1e-6
    )
    out.sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_mgcn_shares_or_separates_stream_weights_and_fuses_every_layer():
    ae = SoftmaxAutoencoder(8, (6, 5), 3)
    x = torch.randn(20, 8)
    adj_a, adj_b = knn_adjacency(x, 1), knn_adjacency(x, 4)
    shared, separate = (
        MGCN(ae, 8, (6, 5), 3, True, (0.5, 0.2, 0.5)),
        MGCN(ae, 8, (6, 5), 3, False, (0.4, 0.2, 0.4)),
    )
    assert shared.gcn_a is shared.gcn_b and separate.gcn_a is not separate.gcn_b
    assert len(shared.gcn_a) == 4  # 8-6-5-3(K)-3: one layer per AE layer plus the output layer
    z, x_hat, g_a, g_b = separate(x, adj_a, adj_b)
    assert z.shape == g_a.shape == g_b.shape == (20, 3) and x_hat.shape == x.shape
    assert torch.allclose(g_a.sum(1), torch.ones(20)) and torch.allclose(z.sum(1), torch.ones(20))


def test_backbones_small_stem_width_and_weight_files(tmp_path):
    net = make_backbone("resnet18", 1, (8, 8), width=4)
    assert net.rep_dim == 32 and net(torch.rand(3, 1, 8, 8)).shape == (3, 32)
    assert (
        make_backbone("resnet34", 3, (224, 224)).rep_dim == 512
    )  # the paper's trunk, standard stem
    torch.save({"net": {f"resnet.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "ok.pt")
    reloaded = make_backbone("resnet18", 1, (8, 8), width=4, weights=str(tmp_path / "ok.pt"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), reloaded.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="does not fit"):
        make_backbone("resnet34", 1, (8, 8), width=4, weights=str(tmp_path / "ok.pt"))
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable"):
        make_backbone("resnet18", 1, (8, 8), width=4, weights=str(tmp_path / "junk.pt"))


def test_augmentation_draws_per_image_parameters_on_grayscale(digits):
    images = as_image_tensor(digits[0][:16])
    assert images.shape == (16, 1, 8, 8) and images.max() == 1.0
    torch.manual_seed(3)
    views = augment_batch(
        two_view_augmentation((8, 8), 1, blur=True), torch.stack([images[0]] * 16)
    )
    assert views.shape == (16, 1, 8, 8)
    assert len({v.numpy().tobytes() for v in views}) > 8  # one image, different crops/jitters
