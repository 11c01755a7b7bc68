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
from core.engine import Batch, Batches, run_epochs
from core.images import random_shift_rotate
from core.interface import MAX_LOSS_WEIGHT, Context
from core.weights_cache import ShapesWeights, cached_pretraining


class ACAIParams(AutoencoderParams):
    """MLP autoencoder with ACAI pretraining (DynAE defaults: Adam 1e-4, batch 256, lambda 0.5)."""

    pretrain_epochs: ShapesWeights[int] = Field(200, ge=0, le=5000, description=(
        "ACAI pretraining epochs (one AE and one critic step per batch). DynAE ran 130k "
        "iterations on MNIST (~475 epochs); 200 epochs is ~55k iterations there, in the spec's "
        "50k-130k range"))
    pretrain_optimizer: ShapesWeights[Literal["adam"]] = Field(
        "adam", description="ACAI trains autoencoder and critic with Adam")
    pretrain_lr: ShapesWeights[float] = Field(
        1e-4, gt=0, le=10, description="Adam learning rate of autoencoder and critic (DynAE)")
    acai_lambda: ShapesWeights[float] = Field(
        0.5, ge=0, le=MAX_LOSS_WEIGHT,
        description="weight of the critic term in the autoencoder loss (DynAE 0.5)")
    augment: ShapesWeights[bool] = Field(
        True, description="random shifts (10%) and rotations (10 deg) of image inputs in both "
                          "phases (Keras ImageDataGenerator); ignored for non-image vectors")
    interpolation_range: ShapesWeights[Literal["half", "unit"]] = Field("half", description=(
        "where the mixing coefficient alpha is drawn: 'half' folds U(0, 1) into [0, 1/2], as the "
        "ACAI authors' code does; 'unit' keeps U(0, 1) (DynAE's code). Each pair is mixed in "
        "both orders, so with 'unit' one decoded mix has targets alpha and 1 - alpha, the "
        "critic's best answer is 1/2 and it teaches the autoencoder nothing "
        "(docs/wip/rdc-phase1.md)"))


def critic_network(input_dim: int, p: AutoencoderParams) -> torch.nn.Module:
    """The encoder's MLP shape; the critic's score is the mean of its outputs."""
    return _mlp([input_dim, *p.hidden_dims, p.embedding_dim])


def acai_losses(model: MLPAutoencoder, critic: torch.nn.Module, x: torch.Tensor,
                alpha: torch.Tensor, gamma: float, acai_lambda: float) -> dict[str, torch.Tensor]:
    """The terms of one batch, x paired with x reversed: "total" is the autoencoder's loss,
    "critic" the critic's. The critic loss sees detached inputs; the autoencoder loss
    backpropagates through the critic (only the autoencoder's optimizer steps on it)."""
    z, x_hat = model(x)
    mixed = model.decoder(alpha[:, None] * z + (1 - alpha[:, None]) * z.flip(0))
    score_mixed = critic(mixed).mean(1)
    reconstruction = (x_hat - x).pow(2).mean()
    adversarial = score_mixed.pow(2).mean()
    blend = gamma * x + (1 - gamma) * x_hat.detach()
    critic_loss = ((critic(mixed.detach()).mean(1) - alpha).pow(2).mean()
                   + critic(blend).mean(1).pow(2).mean())
    return {"reconstruction": reconstruction, "adversarial": adversarial,
            "total": reconstruction + acai_lambda * adversarial, "critic": critic_loss}


def acai_pretrained_autoencoder(X: torch.Tensor, p: ACAIParams, ctx: Context,
                                generator: torch.Generator,
                                shape: tuple[int, int, int] | None) -> MLPAutoencoder:
    """Build the autoencoder and pretrain it with ACAI (augmenting images when p.augment and
    `shape` is known), or reuse its weights from ctx.cache_dir."""
    model = MLPAutoencoder(X.shape[1], p.hidden_dims, p.embedding_dim).to(ctx.device)

    def train(model: MLPAutoencoder) -> MLPAutoencoder:
        critic = critic_network(X.shape[1], p).to(ctx.device)
        optimizers = {"total": torch.optim.Adam(model.parameters(), lr=p.pretrain_lr),
                      "critic": torch.optim.Adam(critic.parameters(), lr=p.pretrain_lr)}

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            x = X[batch]
            if p.augment and shape is not None:
                x = random_shift_rotate(x, shape, generator=generator)
            alpha = torch.rand(len(x), generator=generator).to(ctx.device)
            if p.interpolation_range == "half":
                alpha = 0.5 - (alpha - 0.5).abs()
            gamma = 0.5 - abs(torch.rand(1, generator=generator).item() - 0.5)
            return acai_losses(model, critic, x, alpha, gamma, p.acai_lambda)

        # a batch of one has no partner to interpolate with: skipped
        batches = Batches(len(X), p.batch_size, generator=generator, device=ctx.device, min_size=2)
        run_epochs(ctx, "pretrain", p.pretrain_epochs, batches, step, optimizers)
        return model

    return cached_pretraining(model, train, ctx, "acai", X, p, {"shape": shape}, phase="pretrain",
                              total=p.pretrain_epochs)
