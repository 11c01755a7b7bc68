"""Baselines: k-means on the raw features, and k-means on a pretrained autoencoder's embedding."""
from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from core.autoencoder import (
    AutoencoderParams,
    autoencoder_memory_bytes,
    vectors_and_pretrained_autoencoder,
)
from core.clustering_head import (
    confidence_bytes,
    kmeans_centers,
    kmeans_restarts,
    student_t_confidence,
)
from core.interface import ClusteringResult, Context, Method, MethodParams
from core.registry import register
from core.resources import FLOAT, kmeans_bytes, with_slack
from core.training import as_vectors, seed_everything


class KMeansParams(MethodParams):
    n_init: int = Field(20, ge=1, le=100, description=(
        "k-means restarts; the best inertia wins (DEC/IDEC: 20)"))
    max_iter: int = Field(300, ge=1, le=10000, description="Lloyd iterations per restart")


@register
class KMeansMethod(Method):
    name = "kmeans"
    summary = "k-means on the raw (flattened) features: the baseline every method must beat."
    reference = "Lloyd 1982; scikit-learn KMeans (k-means++ init)"
    Params = KMeansParams
    suits = "any numeric data; the baseline, and the pick for small n (< 500) or few features"
    cost = "seconds: USPS (n=9298) 3 s, MNIST (n=70000) 2.5 min on a CPU; USPS ACC 66.8"

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: KMeansParams) -> int:
        """The data (and its float32 copy), sklearn's copies and the confidence chunks."""
        n, d, k = shape[0], math.prod(shape[1:]), n_clusters or 1
        return with_slack(2 * FLOAT * n * d + kmeans_bytes(n, d, k) + confidence_bytes(n, d, k))

    def fit(self, X: np.ndarray, n_clusters: int, params: KMeansParams,
            ctx: Context) -> ClusteringResult:
        seed_everything(ctx.seed)
        flat = as_vectors(X, "none")
        # one restart at a time, so a cancel is seen between restarts
        centers, labels, inertia = kmeans_restarts(flat, n_clusters, ctx.seed, params.n_init,
                                                   params.max_iter, check=ctx.check_cancelled)
        ctx.report("kmeans", 1, 1, losses={"inertia": inertia}, labels=labels)
        return ClusteringResult(labels=labels, confidence=student_t_confidence(flat, centers),
                                embedding=flat)


class AEKMeansParams(AutoencoderParams):
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts on the embedding")


@register
class AEKMeansMethod(Method):
    name = "ae_kmeans"
    summary = ("Pretrain the DEC autoencoder on reconstruction, then k-means on its embedding "
               "(DEC at iteration 0).")
    reference = "Xie et al., ICML 2016 (DEC), baseline AE+k-means"
    Params = AEKMeansParams
    suits = "vectors or small grey images, n from ~500; very large n (cost linear in n)"
    cost = ("USPS ~70 s on a CPU (50 pretraining epochs, shared with dec/idec/n2d/dcn); USPS ACC "
            "70.6")

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: AEKMeansParams) -> int:
        n, e, k = shape[0], params.embedding_dim, n_clusters or 1
        return with_slack(autoencoder_memory_bytes(shape, params.hidden_dims, e, params.batch_size)
                          + kmeans_bytes(n, e, k) + confidence_bytes(n, e, k))

    def fit(self, X: np.ndarray, n_clusters: int, params: AEKMeansParams,
            ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        z = model.encode(data, ctx.check_cancelled).cpu().numpy()
        centers, labels = kmeans_centers(z, n_clusters, ctx.seed, params.n_init,
                                         check=ctx.check_cancelled)
        ctx.report("kmeans", 1, 1, labels=labels)
        return ClusteringResult(labels=labels, confidence=student_t_confidence(z, centers),
                                embedding=z)
