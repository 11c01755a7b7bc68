"""The MLP autoencoder of DEC/IDEC (d-500-500-2000-10) and its reconstruction pretraining.

Shared by ae_kmeans, dec, idec and the methods built on them (DCCF).
"""
from __future__ import annotations

import math
from itertools import pairwise
from typing import Callable

import numpy as np
import torch
from pydantic import Field
from torch import nn

from core.engine import Batch, Batches, run_epochs
from core.interface import Context, LayerWidth, MethodParams, TrainingFailed
from core.resources import FLOAT, mlp_activation_floats, mlp_parameters
from core.training import (
    InputScaling,
    OptimizerName,
    as_vectors,
    make_optimizer,
    map_in_chunks,
    seed_everything,
)
from core.weights_cache import ShapesWeights, cached_pretraining


class AutoencoderParams(MethodParams):
    """Architecture and pretraining of the MLP autoencoder (DEC-keras defaults)."""

    hidden_dims: ShapesWeights[tuple[LayerWidth, ...]] = Field(
        (500, 500, 2000), min_length=1, max_length=8,
        description="encoder hidden layer widths; the decoder mirrors them")
    embedding_dim: ShapesWeights[int] = Field(10, ge=1, le=1024,
                                              description="size of the linear latent layer z")
    batch_size: ShapesWeights[int] = Field(256, ge=8, le=65536,
                                           description="mini-batch size (DEC/IDEC: 256)")
    pretrain_epochs: ShapesWeights[int] = Field(
        200, ge=0, le=5000,
        description="end-to-end reconstruction pretraining epochs (DEC-keras: USPS 50, MNIST 300)")
    pretrain_optimizer: ShapesWeights[OptimizerName] = Field(
        "adam", description="DEC-keras: adam for USPS, sgd for MNIST")
    pretrain_lr: ShapesWeights[float] = Field(
        1e-3, gt=0, le=10, description="DEC-keras: adam 1e-3; sgd 1.0 with momentum 0.9")
    pretrain_momentum: ShapesWeights[float] = Field(
        0.9, ge=0, lt=1, description="momentum when pretrain_optimizer is sgd")
    input_scaling: ShapesWeights[InputScaling] = Field(
        "minmax", description="'minmax': global scale to [0, 1] (pixels/255); 'none'")


def autoencoder_memory_bytes(shape: tuple[int, ...], hidden_dims: tuple[int, ...],
                             embedding_dim: int, batch_size: int, extra_parameters: int = 0) -> int:
    """Tensor bytes of training the MLP autoencoder on n samples (no slack added):
    the data (the caller's array, its scaled float32 copy and one more during scaling), weights
    with gradients and two Adam moments (of the autoencoder plus `extra_parameters`, e.g. a
    critic), a batch's activations through encoder and decoder (twice: ACAI and DCCF run more
    than one pass), and a full-data encoding in 8192-row chunks."""
    n, d = shape[0], math.prod(shape[1:])
    widths = [d, *hidden_dims, embedding_dim]
    parameters = 2 * mlp_parameters(widths) + extra_parameters
    batch = min(batch_size, n)
    activations = 2 * batch * (2 * mlp_activation_floats(widths) + d)
    encoding = min(8192, n) * 2 * max(widths) + 2 * n * embedding_dim
    return FLOAT * (3 * n * d + 4 * parameters + activations + encoding)


class MLPAutoencoder(nn.Module):
    """ReLU hidden layers, linear embedding and linear reconstruction (DEC-keras)."""

    def __init__(self, input_dim: int, hidden_dims: tuple[int, ...], embedding_dim: int):
        super().__init__()
        widths = [input_dim, *hidden_dims, embedding_dim]
        self.encoder = _mlp(widths)
        self.decoder = _mlp(widths[::-1])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)

    def encode(self, x: torch.Tensor, check: Callable[[], None] | None = None) -> torch.Tensor:
        """The codes of all of x, in chunks; `check` (a cancellation check) runs per chunk."""
        return map_in_chunks(self.encoder, x, check=check)


def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def vectors_and_pretrained_autoencoder(X: np.ndarray, p: AutoencoderParams, ctx: Context,
                                       embedding_dim: int | None = None,
                                       ) -> tuple[torch.Tensor, MLPAutoencoder]:
    """The first phase of every autoencoder method: seed, scale the data onto the device, pretrain.
    `embedding_dim` overrides p.embedding_dim (DCCF sizes its embedding by n_clusters)."""
    generator = seed_everything(ctx.seed)
    data = torch.from_numpy(as_vectors(X, p.input_scaling)).to(ctx.device)
    if embedding_dim is not None:
        p = p.model_copy(update={"embedding_dim": embedding_dim})
    return data, pretrained_autoencoder(data, p, ctx, generator)


def pretrained_autoencoder(X: torch.Tensor, p: AutoencoderParams, ctx: Context,
                           generator: torch.Generator) -> MLPAutoencoder:
    """Build the autoencoder and pretrain it on reconstruction (MSE, shuffled batches), or
    reuse the weights from `ctx.cache_dir` (shared by ae_kmeans, dec and idec)."""
    model = MLPAutoencoder(X.shape[1], p.hidden_dims, p.embedding_dim).to(ctx.device)

    def train(model: MLPAutoencoder) -> MLPAutoencoder:
        optimizer = make_optimizer(p.pretrain_optimizer, model.parameters(), p.pretrain_lr,
                                   p.pretrain_momentum)

        def step(batch: Batch) -> dict[str, torch.Tensor]:
            x = X[batch]
            return {"reconstruction": nn.functional.mse_loss(model(x)[1], x)}

        run_epochs(ctx, "pretrain", p.pretrain_epochs,
                   Batches(len(X), p.batch_size, generator=generator, device=ctx.device), step,
                   {"reconstruction": optimizer})
        check_codes(model, X, p)  # before the weights are cached
        return model

    return cached_pretraining(model, train, ctx, "ae", X, p, phase="pretrain",
                              total=p.pretrain_epochs)


def check_codes(model: MLPAutoencoder, X: torch.Tensor, p: AutoencoderParams,
                rows: int = 4096) -> None:
    """Fail clearly rather than cluster codes that carry nothing. With Adam at a learning rate
    too large for the input's width, the first steps can push every first-layer ReLU below zero
    for every sample (seen on ORL, 1024 pixels, 2 batches an epoch, seed 0): every code is then
    the same and k-means returns one cluster."""
    with torch.no_grad():
        x = X[:rows]
        z = model.encoder(x)
    advice = f"lower pretrain_lr (now {p.pretrain_lr:g}) or try another seed"
    if not torch.isfinite(z).all():
        raise TrainingFailed(f"the autoencoder diverged in pretraining (its codes are not "
                             f"finite): {advice}")
    if len(z) > 1 and bool((z == z[0]).all()) and not bool((x == x[0]).all()):
        raise TrainingFailed(f"the autoencoder collapsed in pretraining: every sample gets the "
                             f"same code (its ReLUs are off for every input), so there is "
                             f"nothing to cluster: {advice}")
