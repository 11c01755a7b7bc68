"""DCN (Yang et al., ICML 2017): a k-means-friendly latent space, learnt jointly with k-means.

After the shared autoencoder's pretraining and k-means on its codes, each shuffled mini-batch
(Algorithm 1 of the paper; docs/methods/dcn.md) takes a network step on
    reconstruction + lambda/2 * ||z - c_{s_i}||^2
with the assignments s and centres fixed, then re-encodes the batch, re-assigns it to the
nearest centre and moves each centre towards its new members with step 1/count_k (Eq. 8).
Defaults follow ClustPy's DCN (clustpy/deep/dcn.py), checked against its source: lambda 0.1,
reconstruction as the per-sample sum of squares, Adam 1e-4 for 150 epochs of batch 256, and
counts starting at 100 as in the authors' code.
"""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from core.autoencoder import (
    AutoencoderParams,
    MLPAutoencoder,
    autoencoder_memory_bytes,
    vectors_and_pretrained_autoencoder,
)
from core.clustering_head import confidence_bytes, kmeans_centers, student_t_confidence
from core.engine import Batch, Batches, run_epochs
from core.interface import MAX_LOSS_WEIGHT, ClusteringResult, Context, Method
from core.registry import register
from core.resources import FLOAT, kmeans_bytes, with_slack
from core.training import OptimizerName, make_optimizer


class DCNParams(AutoencoderParams):
    cluster_lambda: float = Field(
        0.1, ge=0, le=MAX_LOSS_WEIGHT,
        description="lambda: loss = reconstruction + lambda/2 * ||z - c||^2 "
                    "(ClustPy: clustering_loss_weight 0.1)")
    epochs: int = Field(150, ge=0, le=10000, description="clustering epochs (ClustPy: 150)")
    optimizer: OptimizerName = Field("adam", description="clustering optimizer (ClustPy: adam)")
    lr: float = Field(1e-4, gt=0, le=10, description="clustering learning rate (ClustPy: 1e-4)")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum when optimizer is sgd")
    center_count_init: int = Field(
        100, ge=1, le=1_000_000,
        description="each centre's starting count: its first step is 1/(count+1) "
                    "(the authors' code and ClustPy: 100)")
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts for the first centres")


def nearest_center(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    return torch.cdist(z, centers).argmin(dim=1)


def update_centers(centers: torch.Tensor, counts: torch.Tensor, z: torch.Tensor,
                   assigned: torch.Tensor) -> None:
    """Eq. 8, in place: c_k <- c_k - (c_k - z_i) / count_k with count_k += 1 first, for the
    batch's members one by one, is the running mean (count * c + sum z_i) / (count + m),
    computed here in one step per cluster."""
    # one-hot products rather than index_add_, whose CUDA atomics would make runs irreproducible
    onehot = nn.functional.one_hot(assigned, len(centers)).to(centers.dtype)
    new_counts = counts + onehot.sum(dim=0)
    centers.copy_((counts[:, None] * centers + onehot.T @ z) / new_counts[:, None])
    counts.copy_(new_counts)


@register
class DCNMethod(Method):
    name = "dcn"
    summary = ("Deep Clustering Network: the autoencoder trained jointly with hard k-means in its "
               "code space (reconstruction + lambda/2 * squared distance to the assigned centre).")
    reference = ("Yang, Fu, Sidiropoulos, Hong. Towards K-means-friendly Spaces: Simultaneous "
                 "Deep Learning and Clustering. ICML 2017")
    Params = DCNParams
    suits = "vectors or small grey images with roughly spherical clusters, n from ~500"
    cost = ("the shared autoencoder pretraining (as ae_kmeans), then 150 epochs: USPS ~15 min "
            "on one CPU thread with the pretraining, as ClustPy's DCN; USPS ACC 71.9")

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: DCNParams) -> int:
        n, e, k = shape[0], params.embedding_dim, n_clusters or 1
        return with_slack(
            autoencoder_memory_bytes(shape, params.hidden_dims, e, params.batch_size)
            + kmeans_bytes(n, e, k) + confidence_bytes(n, e, k) + FLOAT * 3 * n * (e + k))

    def fit(self, X: np.ndarray, n_clusters: int, params: DCNParams,
            ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        z = model.encode(data, ctx.check_cancelled).cpu().numpy()
        centers, labels = kmeans_centers(z, n_clusters, ctx.seed, params.n_init,
                                         check=ctx.check_cancelled)
        ctx.report("kmeans_init", 0, params.epochs, labels=labels)
        centers = torch.as_tensor(centers, dtype=torch.float32, device=ctx.device)
        assignments = torch.as_tensor(labels, device=ctx.device)
        joint_training(data, model, centers, assignments, params, ctx)
        z = model.encode(data, ctx.check_cancelled)
        final = nearest_center(z, centers).cpu().numpy().astype(np.int64)
        z_np = z.cpu().numpy()
        return ClusteringResult(labels=final,
                                confidence=student_t_confidence(z_np, centers.cpu().numpy()),
                                embedding=z_np)


def joint_training(data: torch.Tensor, model: MLPAutoencoder, centers: torch.Tensor,
                   assignments: torch.Tensor, p: DCNParams, ctx: Context) -> None:
    """Algorithm 1's epochs: network step, then assignment and centre updates, per batch.
    `centers` and `assignments` are updated in place."""
    counts = torch.full((len(centers),), float(p.center_count_init), device=ctx.device)
    optimizer = make_optimizer(p.optimizer, model.parameters(), p.lr, p.momentum)
    generator = torch.Generator().manual_seed(ctx.seed + 1)  # apart from the pretraining's
    last: dict[str, Batch] = {}
    previous = assignments.clone()

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        last["batch"] = batch
        x = data[batch]
        z, x_hat = model(x)
        # the paper's least squares per sample, as ClustPy: summed over features
        reconstruction = (x_hat - x).pow(2).sum(dim=1).mean()
        pull = (z - centers[assignments[batch]]).pow(2).sum(dim=1).mean()
        return {"reconstruction": reconstruction, "cluster": pull,
                "total": reconstruction + p.cluster_lambda / 2 * pull}

    def assign_and_update_centers(_terms) -> bool:
        batch = last["batch"]
        with torch.no_grad():
            z = model.encoder(data[batch])
            assignments[batch] = nearest_center(z, centers)
            update_centers(centers, counts, z, assignments[batch])
        return False

    def label_change(_means) -> dict:
        changed = (assignments != previous).float().mean().item()
        previous.copy_(assignments)
        return {"delta_label": changed, "labels": assignments.cpu().numpy()}

    run_epochs(ctx, "cluster", p.epochs,
               Batches(len(data), p.batch_size, generator=generator, device=ctx.device),
               step, {"total": optimizer}, after_step=assign_and_update_centers,
               describe=label_change)
