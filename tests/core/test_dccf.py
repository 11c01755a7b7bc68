"""DCCF's loss terms against independent computations."""

import pytest
import torch

from core.autoencoder import MLPAutoencoder
from core.methods.dccf import contractive_penalty, focal_loss


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return MLPAutoencoder(12, (9, 7), 4).encoder.double()


def test_exact_contractive_penalty_equals_the_autograd_jacobian(encoder):
    x = torch.randn(5, 12, dtype=torch.float64)
    h, penalty = contractive_penalty(encoder, x, "exact")
    jacobians = torch.func.vmap(torch.func.jacrev(encoder))(x)  # (5, 4, 12)
    assert torch.allclose(h, encoder(x))
    assert torch.allclose(penalty, jacobians.pow(2).sum(dim=(1, 2)))


def test_hutchinson_estimate_is_unbiased(encoder):
    x = torch.randn(3, 12, dtype=torch.float64)
    exact = contractive_penalty(encoder, x, "exact")[1]
    torch.manual_seed(1)
    estimate = contractive_penalty(encoder, x, "hutchinson", projections=4000)[1]
    assert torch.allclose(estimate, exact, rtol=0.1)


def test_penalty_gradient_reaches_every_encoder_layer(encoder):
    _, penalty = contractive_penalty(encoder, torch.randn(4, 12, dtype=torch.float64), "exact")
    penalty.sum().backward()
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters() if p.dim() == 2
    )


def test_focal_loss_hard_and_soft_targets():
    s = torch.tensor([[0.9, 0.1], [0.4, 0.6]])
    t = torch.tensor([[0.8, 0.2], [0.7, 0.3]])
    # hard: p_t = s[i, argmax t_i] = 0.9 and 0.4
    expected_hard = (
        -(0.1**2) * torch.log(torch.tensor(0.9)) - (0.6**2) * torch.log(torch.tensor(0.4))
    ) / 2
    assert focal_loss(s, t, 2.0, "hard") == pytest.approx(expected_hard.item())
    expected_soft = -(t * (1 - s) ** 2 * s.log()).sum(dim=1).mean()
    assert focal_loss(s, t, 2.0, "soft") == pytest.approx(expected_soft.item())
    assert focal_loss(s, t, 0.0, "hard") == pytest.approx(
        -(torch.log(torch.tensor([0.9, 0.4]))).mean().item()
    )


def test_dccf_ablation_switches_turn_terms_off(digits):
    import numpy as np

    from core import Context, get_method

    X = digits[0][:300]
    method = get_method("dccf")
    params = method.Params(
        pretrain_epochs=1, epochs=2, contractive=False, focal=False, hidden_dims=(32,)
    )
    ctx = Context(seed=0, device="cpu")
    result = method.fit(X, 5, params, ctx)
    losses = [h["losses"] for h in ctx.history if h["phase"] == "train" and "losses" in h]
    assert losses and all(t["contractive"] == 0 and t["focal"] == 0 and t["kl"] > 0 for t in losses)
    assert result.embedding.shape == (300, 5) and set(np.unique(result.labels)) <= set(range(5))
