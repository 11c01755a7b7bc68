"""DEC (Xie et al., ICML 2016) and IDEC (Guo et al., IJCAI 2017).

Both: pretrain the autoencoder, k-means the embedding for the initial centroids, then
self-train on KL(P || Q) with the target P recomputed on all data every
`update_interval` iterations and held fixed in between. IDEC keeps the decoder and
adds the reconstruction loss (L = L_r + gamma * L_c). Mini-batches are taken in order,
as in the Keras reference code; training stops when fewer than `tol` of the labels
change between two target updates, or after `maxiter` iterations.
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
from core.clustering_head import (
    ClusteringHead,
    kl_clustering_loss,
    kmeans_centers,
    target_distribution,
)
from core.interface import MAX_LOSS_WEIGHT, ClusteringResult, Context, Method
from core.registry import register
from core.resources import FLOAT, kmeans_bytes, with_slack
from core.training import OptimizerName, make_optimizer, map_in_chunks


class DECParams(AutoencoderParams):
    alpha: float = Field(1.0, gt=0, le=1000, description="Student-t degrees of freedom (Eq. 1)")
    update_interval: int = Field(140, ge=1, le=100000,
                                 description="iterations between target-distribution updates (MNIST 140, USPS 30)")
    tol: float = Field(0.001, ge=0, le=1, description="stop when fewer than this fraction of labels change")
    maxiter: int = Field(20000, ge=1, le=1_000_000,
                         description="maximum self-training iterations (mini-batches)")
    optimizer: OptimizerName = Field("sgd", description="self-training optimizer (DEC-keras: SGD)")
    lr: float = Field(0.01, gt=0, le=10, description="self-training learning rate (DEC-keras: 0.01)")
    momentum: float = Field(0.9, ge=0, lt=1, description="momentum when optimizer is sgd")
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts for the initial centroids")


class IDECParams(DECParams):
    gamma: float = Field(0.1, ge=0, le=MAX_LOSS_WEIGHT,
                         description="weight of the clustering loss: L = L_r + gamma * L_c")
    optimizer: OptimizerName = Field("adam", description="IDEC: adam for MNIST; sgd (lr 0.1, momentum 0.99) for USPS")
    lr: float = Field(0.001, gt=0, le=10, description="self-training learning rate (IDEC MNIST: adam 1e-3)")


def self_training_bytes(n: int, embedding_dim: int, n_clusters: int) -> int:
    """Tensor bytes of the clustering phase beyond the autoencoder: k-means on z, the (n, k) Q, P and
    labels, and the final soft assignment's (n, k, d') differences (Student-t on every row)."""
    k = n_clusters
    e = embedding_dim
    return kmeans_bytes(n, e, k) + FLOAT * (2 * n * e + 4 * n * k + 2 * n * k * e)


def dec_memory_bytes(shape: tuple[int, ...], n_clusters: int | None, p: DECParams) -> int:
    """Pretraining (the autoencoder's) plus self-training, which keeps the same model and optimiser state."""
    return with_slack(autoencoder_memory_bytes(shape, p.hidden_dims, p.embedding_dim, p.batch_size)
                      + self_training_bytes(shape[0], p.embedding_dim, n_clusters or 1))


def self_train(data: torch.Tensor, model: MLPAutoencoder, n_clusters: int, p: DECParams, ctx: Context,
               reconstruction_weight: float, clustering_weight: float) -> ClusteringResult:
    """The DEC/IDEC self-training phase; DEC drops the decoder (reconstruction_weight 0)."""
    z = model.encode(data, ctx.check_cancelled)
    centers, labels = kmeans_centers(z.cpu().numpy(), n_clusters, ctx.seed, p.n_init,
                                     check=ctx.check_cancelled)
    ctx.report("kmeans_init", 1, 1, labels=labels)
    head = ClusteringHead(centers, p.alpha).to(ctx.device)
    modules = [model.encoder, head] + ([model.decoder] if reconstruction_weight > 0 else [])
    optimizer = make_optimizer(p.optimizer, [w for m in modules for w in m.parameters()], p.lr, p.momentum)

    n = len(data)
    previous = torch.as_tensor(labels, device=ctx.device)
    index, sums, steps = 0, {"clustering": 0.0, "reconstruction": 0.0, "total": 0.0}, 0
    for iteration in range(p.maxiter + 1):
        ctx.check_cancelled()
        if iteration % p.update_interval == 0 or iteration == p.maxiter:
            q = map_in_chunks(lambda x: head(model.encoder(x)), data, check=ctx.check_cancelled)
            target = target_distribution(q)
            current = q.argmax(dim=1)
            changed = (current != previous).float().mean().item()
            previous = current
            ctx.report("cluster", iteration, p.maxiter, labels=current.cpu().numpy(), delta_label=changed,
                       losses={k: v / steps for k, v in sums.items()} if steps else None)
            sums, steps = dict.fromkeys(sums, 0.0), 0
            if (iteration > 0 and changed < p.tol) or iteration == p.maxiter:
                break
        batch = slice(index * p.batch_size, min((index + 1) * p.batch_size, n))
        x = data[batch]
        z_batch, x_hat = model(x)
        clustering = kl_clustering_loss(target[batch], head(z_batch))
        loss = clustering_weight * clustering
        reconstruction = nn.functional.mse_loss(x_hat, x) if reconstruction_weight > 0 else torch.zeros(())
        loss = loss + reconstruction_weight * reconstruction
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        index = index + 1 if (index + 1) * p.batch_size <= n else 0
        sums["clustering"] += clustering.item()
        sums["reconstruction"] += reconstruction.item()
        sums["total"] += loss.item()
        steps += 1

    z = model.encode(data)
    with torch.no_grad():
        confidence, final = head(z).max(dim=1)
    return ClusteringResult(labels=final.cpu().numpy().astype(np.int64),
                            confidence=confidence.cpu().numpy().astype(np.float32),
                            embedding=z.cpu().numpy(),
                            diagnostics={"iterations": iteration, "final_delta_label": changed})


@register
class DECMethod(Method):
    name = "dec"
    summary = "Deep Embedded Clustering: pretrained autoencoder, then KL self-training of encoder and centroids."
    reference = "Xie, Girshick, Farhadi. Unsupervised Deep Embedding for Clustering Analysis. ICML 2016"
    Params = DECParams

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None, params: DECParams) -> int:
        return dec_memory_bytes(shape, n_clusters, params)

    def fit(self, X: np.ndarray, n_clusters: int, params: DECParams, ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        return self_train(data, model, n_clusters, params, ctx, reconstruction_weight=0.0, clustering_weight=1.0)


@register
class IDECMethod(Method):
    name = "idec"
    summary = "Improved DEC: DEC's KL self-training plus the reconstruction loss, keeping local structure."
    reference = "Guo, Gao, Liu, Yin. Improved Deep Embedded Clustering with Local Structure Preservation. IJCAI 2017"
    Params = IDECParams

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None, params: IDECParams) -> int:
        return dec_memory_bytes(shape, n_clusters, params)

    def fit(self, X: np.ndarray, n_clusters: int, params: IDECParams, ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        return self_train(data, model, n_clusters, params, ctx, reconstruction_weight=1.0,
                          clustering_weight=params.gamma)
