"""DEC's self-training (Xie et al. 2016, Sec. 3.1), shared by dec, idec, DCCF and R-DC's
'dec' ablation: a clustering head initialised by k-means on the embedding, trained on
KL(P || Q) against a target P that is recomputed on all data at intervals and held fixed in
between; training stops when fewer than `tol` of the labels change between two targets.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pydantic import Field
from torch import nn

from core.autoencoder import AutoencoderParams, MLPAutoencoder
from core.clustering_head import (
    ClusteringHead,
    kl_clustering_loss,
    kmeans_centers,
    target_distribution,
)
from core.engine import Batch, Batches, run_iterations
from core.interface import ClusteringResult, Context
from core.resources import FLOAT, kmeans_bytes
from core.training import OptimizerName, make_optimizer, map_in_chunks


class SelfTrainingParams(AutoencoderParams):
    """The autoencoder, then DEC's self-training (DEC-keras defaults)."""

    alpha: float = Field(1.0, gt=0, le=1000, description="Student-t degrees of freedom (Eq. 1)")
    update_interval: int = Field(
        140, ge=1, le=100000,
        description="iterations between target-distribution updates (MNIST 140, USPS 30)")
    tol: float = Field(0.001, ge=0, le=1,
                       description="stop when fewer than this fraction of labels change")
    maxiter: int = Field(20000, ge=1, le=1_000_000,
                         description="maximum self-training iterations (mini-batches)")
    optimizer: OptimizerName = Field("sgd", description="self-training optimizer (DEC-keras: SGD)")
    lr: float = Field(0.01, gt=0, le=10, description=(
        "self-training learning rate (DEC-keras: 0.01)"))
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum when optimizer is sgd")
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts for the initial centroids")


def self_training_bytes(n: int, embedding_dim: int, n_clusters: int) -> int:
    """Tensor bytes of the clustering phase beyond the autoencoder: k-means on z, the (n, k) Q, P
    and labels, and the final soft assignment's (n, k, d') differences (Student-t on every row)."""
    k = n_clusters
    e = embedding_dim
    return kmeans_bytes(n, e, k) + FLOAT * (2 * n * e + 4 * n * k + 2 * n * k * e)


class TargetDistribution:
    """The self-training target: Q of all data under `assign`, P from it (Eq. 3), held until
    the next `refresh`; the share of labels that changed since the previous one; the stop."""

    def __init__(self, assign: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor,
                 labels: np.ndarray, tol: float, ctx: Context, inclusive: bool = False):
        self.assign, self.data, self.tol, self.ctx = assign, data, tol, ctx
        self.inclusive = inclusive  # stop at changed <= tol (DCCF's delta), else < tol (DEC)
        self.labels = torch.as_tensor(labels, device=ctx.device)
        self.changed = 1.0
        self.target: torch.Tensor | None = None

    def refresh(self) -> float:
        q = map_in_chunks(self.assign, self.data, check=self.ctx.check_cancelled)
        self.target = target_distribution(q)
        current = q.argmax(dim=1)
        self.changed = (current != self.labels).float().mean().item()
        self.labels = current
        return self.changed

    def stable(self) -> bool:
        return self.changed <= self.tol if self.inclusive else self.changed < self.tol


def initial_centroids(model: MLPAutoencoder, data: torch.Tensor, n_clusters: int, alpha: float,
                      n_init: int, ctx: Context) -> tuple[ClusteringHead, np.ndarray]:
    """k-means on the embedding: the clustering head's centroids and the initial labels."""
    z = model.encode(data, ctx.check_cancelled)
    centers, labels = kmeans_centers(z.cpu().numpy(), n_clusters, ctx.seed, n_init,
                                     check=ctx.check_cancelled)
    ctx.report("kmeans_init", 1, 1, labels=labels)
    return ClusteringHead(centers, alpha).to(ctx.device), labels


def self_train(data: torch.Tensor, model: MLPAutoencoder, n_clusters: int, p: SelfTrainingParams,
               ctx: Context, reconstruction_weight: float,
               clustering_weight: float) -> ClusteringResult:
    """The DEC/IDEC clustering phase, on in-order mini-batches as in the Keras code;
    DEC drops the decoder (reconstruction_weight 0)."""
    head, labels = initial_centroids(model, data, n_clusters, p.alpha, p.n_init, ctx)
    modules = [model.encoder, head] + ([model.decoder] if reconstruction_weight > 0 else [])
    optimizer = make_optimizer(p.optimizer, [w for m in modules for w in m.parameters()], p.lr,
                               p.momentum)
    targets = TargetDistribution(lambda x: head(model.encoder(x)), data, labels, p.tol, ctx)

    def refresh(iteration: int) -> tuple[bool, dict]:
        changed = targets.refresh()
        stop = iteration > 0 and targets.stable()
        return stop, {"labels": targets.labels.cpu().numpy(), "delta_label": changed}

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        x = data[batch]
        z, x_hat = model(x)
        clustering = kl_clustering_loss(targets.target[batch], head(z))
        reconstruction = (nn.functional.mse_loss(x_hat, x) if reconstruction_weight > 0
                          else torch.zeros(()))
        total = clustering_weight * clustering + reconstruction_weight * reconstruction
        return {"clustering": clustering, "reconstruction": reconstruction, "total": total}

    iterations = run_iterations(ctx, "cluster", p.maxiter,
                                Batches(len(data), p.batch_size, "in_order"), step,
                                {"total": optimizer}, refresh_every=p.update_interval,
                                refresh=refresh)
    return head_result(model, head, data, {"iterations": iterations,
                                           "final_delta_label": targets.changed})


def head_result(model: MLPAutoencoder, head: ClusteringHead, data: torch.Tensor,
                diagnostics: dict) -> ClusteringResult:
    """Labels and confidence from the head's soft assignment of the final embedding."""
    z = model.encode(data)
    with torch.no_grad():
        confidence, final = head(z).max(dim=1)
    return ClusteringResult(labels=final.cpu().numpy().astype(np.int64),
                            confidence=confidence.cpu().numpy().astype(np.float32),
                            embedding=z.cpu().numpy(), diagnostics=diagnostics)
