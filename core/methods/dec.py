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
from pydantic import Field

from core.autoencoder import autoencoder_memory_bytes, vectors_and_pretrained_autoencoder
from core.interface import MAX_LOSS_WEIGHT, ClusteringResult, Context, Method
from core.registry import register
from core.resources import with_slack
from core.self_training import SelfTrainingParams, self_train, self_training_bytes
from core.training import OptimizerName


class DECParams(SelfTrainingParams):
    """DEC: the autoencoder and self-training with DEC-keras's defaults."""


class IDECParams(DECParams):
    gamma: float = Field(0.1, ge=0, le=MAX_LOSS_WEIGHT,
                         description="weight of the clustering loss: L = L_r + gamma * L_c")
    optimizer: OptimizerName = Field(
        "adam", description="IDEC: adam for MNIST; sgd (lr 0.1, momentum 0.99) for USPS")
    lr: float = Field(0.001, gt=0, le=10,
                      description="self-training learning rate (IDEC MNIST: adam 1e-3)")


def dec_memory_bytes(shape: tuple[int, ...], n_clusters: int | None, p: DECParams) -> int:
    """Pretraining (the autoencoder's) plus self-training, which keeps the same model and
    optimiser state."""
    return with_slack(autoencoder_memory_bytes(shape, p.hidden_dims, p.embedding_dim, p.batch_size)
                      + self_training_bytes(shape[0], p.embedding_dim, n_clusters or 1))


@register
class DECMethod(Method):
    name = "dec"
    summary = ("Deep Embedded Clustering: pretrained autoencoder, then KL self-training of encoder "
               "and centroids.")
    reference = ("Xie, Girshick, Farhadi. Unsupervised Deep Embedding for Clustering Analysis. "
                 "ICML 2016")
    Params = DECParams
    suits = "vectors or small grey images (flattened), n from ~500 to ~100k"
    cost = "USPS ~1 min on a CPU after the shared pretraining (~8 min with it); USPS ACC 75.7"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None, params: DECParams) -> int:
        return dec_memory_bytes(shape, n_clusters, params)

    def fit(self, X: np.ndarray, n_clusters: int, params: DECParams,
            ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        return self_train(data, model, n_clusters, params, ctx, reconstruction_weight=0.0,
                          clustering_weight=1.0)


@register
class IDECMethod(Method):
    name = "idec"
    summary = ("Improved DEC: DEC's KL self-training plus the reconstruction loss, keeping local "
               "structure.")
    reference = ("Guo, Gao, Liu, Yin. Improved Deep Embedded Clustering with Local Structure "
                 "Preservation. IJCAI 2017")
    Params = IDECParams
    suits = "vectors or small grey images (flattened), n from ~500 to ~100k"
    cost = "USPS ~50 s on a CPU after the shared pretraining (~8 min with it); USPS ACC 76.6"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: IDECParams) -> int:
        return dec_memory_bytes(shape, n_clusters, params)

    def fit(self, X: np.ndarray, n_clusters: int, params: IDECParams,
            ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        return self_train(data, model, n_clusters, params, ctx, reconstruction_weight=1.0,
                          clustering_weight=params.gamma)
