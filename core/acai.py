"""Adversarially constrained autoencoder interpolation (ACAI; Berthelot et al. 2019) as
DynAE and R-DC pretrain their MLP autoencoder (docs/methods/rdc.md, Eq. 1-2).

A critic (the encoder's MLP shape, then the mean of its outputs) regresses the mixing
coefficient of decoded latent interpolations; the autoencoder learns to reconstruct and
to make its interpolations look like alpha = 0 to the critic. One autoencoder step
(critic frozen) alternates with one critic step (inputs detached).
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from core.autoencoder import AutoencoderParams, MLPAutoencoder, _mlp
from core.images import random_shift_rotate
from core.interface import MAX_LOSS_WEIGHT, Context
from core.weights_cache import weights_path


class ACAIParams(AutoencoderParams):
    """MLP autoencoder with ACAI pretraining (DynAE defaults: Adam 1e-4, batch 256, lambda 0.5)."""

    pretrain_epochs: int = Field(200, ge=0, le=5000,
                                 description="ACAI pretraining epochs (one AE and one critic step per batch). "
                                             "DynAE ran 130k iterations on MNIST (~475 epochs); 200 epochs is "
                                             "~55k iterations there, in the spec's 50k-130k range")
    pretrain_optimizer: Literal["adam"] = Field("adam", description="ACAI trains autoencoder and critic with Adam")
    pretrain_lr: float = Field(1e-4, gt=0, le=10, description="Adam learning rate of autoencoder and critic (DynAE)")
    acai_lambda: float = Field(0.5, ge=0, le=MAX_LOSS_WEIGHT,
                               description="weight of the critic term in the autoencoder loss (DynAE 0.5)")
    augment: bool = Field(True, description="random shifts (10%) and rotations (10 deg) of image inputs in both "
                                            "phases (Keras ImageDataGenerator); ignored for non-image vectors")


def critic_network(input_dim: int, p: AutoencoderParams) -> torch.nn.Module:
    """The encoder's MLP shape; the critic's score is the mean of its outputs."""
    return _mlp([input_dim, *p.hidden_dims, p.embedding_dim])


def acai_losses(model: MLPAutoencoder, critic: torch.nn.Module, x: torch.Tensor, alpha: torch.Tensor,
                gamma: float, acai_lambda: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """(autoencoder loss, critic loss, logged terms) for one batch; x is paired with x reversed.
    The critic loss sees detached inputs; the autoencoder loss backpropagates through the critic
    (only the autoencoder's optimizer steps on it)."""
    z, x_hat = model(x)
    mixed = model.decoder(alpha[:, None] * z + (1 - alpha[:, None]) * z.flip(0))
    score_mixed = critic(mixed).mean(1)
    reconstruction = (x_hat - x).pow(2).mean()
    adversarial = score_mixed.pow(2).mean()
    ae_loss = reconstruction + acai_lambda * adversarial
    blend = gamma * x + (1 - gamma) * x_hat.detach()
    critic_loss = ((critic(mixed.detach()).mean(1) - alpha).pow(2).mean() + critic(blend).mean(1).pow(2).mean())
    return ae_loss, critic_loss, {"reconstruction": reconstruction.item(), "adversarial": adversarial.item(),
                                  "critic": critic_loss.item()}


def acai_pretrained_autoencoder(X: torch.Tensor, p: ACAIParams, ctx: Context, generator: torch.Generator,
                                shape: tuple[int, int, int] | None) -> MLPAutoencoder:
    """Build the autoencoder and pretrain it with ACAI (augmenting images when p.augment and
    `shape` is known). With ctx.cache_dir the weights are reused for the same data, params, seed."""
    model = MLPAutoencoder(X.shape[1], p.hidden_dims, p.embedding_dim).to(ctx.device)
    fields = ("hidden_dims", "embedding_dim", "batch_size", "pretrain_epochs", "pretrain_lr", "acai_lambda",
              "augment", "input_scaling")
    cache = weights_path(ctx.cache_dir, "acai", X, {f: getattr(p, f) for f in fields} | {"shape": shape}, ctx.seed)
    if cache is not None and cache.exists():
        model.load_state_dict(torch.load(cache, map_location=ctx.device, weights_only=True))
        ctx.report("pretrain", p.pretrain_epochs, p.pretrain_epochs, reused_weights=str(cache.name))
        return model
    critic = critic_network(X.shape[1], p).to(ctx.device)
    ae_opt = torch.optim.Adam(model.parameters(), lr=p.pretrain_lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=p.pretrain_lr)
    n = len(X)
    for epoch in range(1, p.pretrain_epochs + 1):
        sums, steps = {}, 0
        order = torch.randperm(n, generator=generator).to(ctx.device)
        for start in range(0, n, p.batch_size):
            ctx.check_cancelled()
            x = X[order[start:start + p.batch_size]]
            if len(x) < 2:
                continue
            if p.augment and shape is not None:
                x = random_shift_rotate(x, shape, generator=generator)
            alpha = torch.rand(len(x), generator=generator).to(ctx.device)
            gamma = 0.5 - abs(torch.rand(1, generator=generator).item() - 0.5)
            ae_loss, critic_loss, terms = acai_losses(model, critic, x, alpha, gamma, p.acai_lambda)
            ae_opt.zero_grad(set_to_none=True)
            ae_loss.backward(inputs=list(model.parameters()))
            ae_opt.step()
            critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward(inputs=list(critic.parameters()))
            critic_opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
        ctx.report("pretrain", epoch, p.pretrain_epochs, losses={k: v / steps for k, v in sums.items()})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cache)
    return model
