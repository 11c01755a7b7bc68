"""Baselines: k-means on the raw features, and k-means on a pretrained autoencoder's embedding."""
from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from core.autoencoder import AutoencoderParams, vectors_and_pretrained_autoencoder
from core.clustering_head import kmeans_centers, soft_assignment
from core.interface import ClusteringResult, Context, Method, MethodParams
from core.registry import register
from core.training import as_vectors, seed_everything


def _confidence(z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """max_j q_ij under the Student-t kernel (the same soft assignment DEC uses)."""
    with torch.no_grad():
        q = torch.cat([soft_assignment(torch.from_numpy(z[i:i + 8192]), torch.from_numpy(centers))
                       for i in range(0, len(z), 8192)])
    return q.max(dim=1).values.numpy().astype(np.float32)


class KMeansParams(MethodParams):
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts; the best inertia wins (DEC/IDEC: 20)")
    max_iter: int = Field(300, ge=1, le=10000, description="Lloyd iterations per restart")


@register
class KMeansMethod(Method):
    name = "kmeans"
    summary = "k-means on the raw (flattened) features: the baseline every method must beat."
    reference = "Lloyd 1982; scikit-learn KMeans (k-means++ init)"
    Params = KMeansParams

    def fit(self, X: np.ndarray, n_clusters: int, params: KMeansParams, ctx: Context) -> ClusteringResult:
        from sklearn.cluster import KMeans

        seed_everything(ctx.seed)
        flat = as_vectors(X, "none")
        km = KMeans(n_clusters=n_clusters, n_init=params.n_init, max_iter=params.max_iter,
                    random_state=ctx.seed).fit(flat)
        labels = km.labels_.astype(np.int64)
        ctx.report("kmeans", 1, 1, losses={"inertia": float(km.inertia_)}, labels=labels)
        return ClusteringResult(labels=labels, confidence=_confidence(flat, km.cluster_centers_.astype(np.float32)),
                                embedding=flat)


class AEKMeansParams(AutoencoderParams):
    n_init: int = Field(20, ge=1, le=100, description="k-means restarts on the embedding")


@register
class AEKMeansMethod(Method):
    name = "ae_kmeans"
    summary = "Pretrain the DEC autoencoder on reconstruction, then k-means on its embedding (DEC at iteration 0)."
    reference = "Xie et al., ICML 2016 (DEC), baseline AE+k-means"
    Params = AEKMeansParams

    def fit(self, X: np.ndarray, n_clusters: int, params: AEKMeansParams, ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(X, params, ctx)
        z = model.encode(data).cpu().numpy()
        centers, labels = kmeans_centers(z, n_clusters, ctx.seed, params.n_init)
        ctx.report("kmeans", 1, 1, labels=labels)
        return ClusteringResult(labels=labels, confidence=_confidence(z, centers), embedding=z)
