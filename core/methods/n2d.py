"""N2D (McConville et al., ICPR 2020): cluster the local manifold of an autoencoded embedding.

Three phases (docs/methods/n2d.md): the d-500-500-2000-K autoencoder, pretrained on
reconstruction with the cache ae_kmeans, dec and idec share (equal params and seed: equal
weights); UMAP of its codes down to K dimensions with min_dist 0; a full-covariance Gaussian
mixture on that manifold, whose largest posterior is the confidence.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from core.autoencoder import (
    AutoencoderParams,
    autoencoder_memory_bytes,
    vectors_and_pretrained_autoencoder,
)
from core.interface import ClusteringResult, Context, Method
from core.registry import register
from core.resources import FLOAT, with_slack
from core.weights_cache import ShapesWeights

# umap-learn computes exact pairwise distances below this many samples, NN-descent above
_UMAP_EXACT_BELOW = 4096


class N2DParams(AutoencoderParams):
    embedding_dim: ShapesWeights[int | None] = Field(
        None, ge=1, le=1024,
        description="size of the autoencoder's code; None: n_clusters (N2D's d-500-500-2000-K; "
                    "with K = 10 it is ae_kmeans' autoencoder and shares its cached weights)")
    umap_neighbors: int = Field(
        20, ge=2, le=200,
        description="UMAP n_neighbors (authors' run.sh: 20 for every image set); larger keeps "
                    "more global structure")
    umap_min_dist: float = Field(0.0, ge=0, le=1,
                                 description="UMAP min_dist (N2D: 0, so clusters stay dense)")
    umap_dims: int | None = Field(
        None, ge=1, le=256, description="dimensions of the UMAP manifold; None: n_clusters (N2D)")
    umap_metric: Literal["euclidean", "cosine", "manhattan"] = Field(
        "euclidean", description="UMAP's metric on the codes (N2D: euclidean)")
    gmm_covariance: Literal["full", "tied", "diag", "spherical"] = Field(
        "full", description="GaussianMixture covariance_type (N2D: full)")
    gmm_n_init: int = Field(
        10, ge=1, le=100,
        description="GaussianMixture restarts; the one of highest likelihood is kept (N2D's "
                    "code: scikit-learn's 1, which on USPS lands in a split-and-merged mixture on "
                    "2 seeds of 3)")
    gmm_max_iter: int = Field(100, ge=1, le=10000, description="EM iterations per restart")


def umap_bytes(n: int, dims_in: int, dims_out: int, neighbors: int) -> int:
    """UMAP on n codes: the kNN graph and its fuzzy union (a sparse matrix of up to
    2 * n * neighbors entries, held in a few copies while symmetrised), the exact distance matrix
    umap-learn builds for small n, and the layout with its spectral start."""
    graph = n * neighbors * (8 + FLOAT) * 8
    exact = min(n, _UMAP_EXACT_BELOW) ** 2 * 8
    return graph + exact + FLOAT * 4 * n * (dims_in + dims_out)


def gmm_bytes(n: int, dims: int, k: int) -> int:
    """scikit-learn's GaussianMixture in float64: the data, the (n, k) log-responsibilities and
    responsibilities, a centred copy per component and the k covariances."""
    return 8 * (2 * n * dims + 3 * n * k + n * dims + 2 * k * dims * dims)


@register
class N2DMethod(Method):
    name = "n2d"
    summary = ("Autoencoder, then UMAP of its codes to K dimensions, then a Gaussian mixture on "
               "that manifold (N2D).")
    reference = ("McConville, Santos-Rodriguez, Piechocki, Craddock. N2D: (Not Too) Deep "
                 "Clustering via Clustering the Local Manifold of an Autoencoded Embedding. "
                 "ICPR 2020")
    Params = N2DParams
    suits = ("images or dense vectors, n from ~500 to ~200k; the `auto` default: the paper's "
             "figures on USPS (95.9 / 90.4) and MNIST (97.9 / 94.4), 3 seeds each")
    cost = ("the shared autoencoder pretraining (as ae_kmeans), then UMAP and the mixture: "
            "~90 s on USPS (n=9298) on one CPU thread; MNIST ~20 min with 50 pretraining epochs")

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: N2DParams) -> int:
        n, k = shape[0], n_clusters or 1
        codes, dims = params.embedding_dim or k, params.umap_dims or k
        neighbors = min(params.umap_neighbors, n - 1)
        return with_slack(
            autoencoder_memory_bytes(shape, params.hidden_dims, codes, params.batch_size)
            + umap_bytes(n, codes, dims, neighbors) + gmm_bytes(n, dims, k))

    def fit(self, X: np.ndarray, n_clusters: int, params: N2DParams,
            ctx: Context) -> ClusteringResult:
        data, model = vectors_and_pretrained_autoencoder(
            X, params, ctx, embedding_dim=params.embedding_dim or n_clusters)
        codes = model.encode(data, ctx.check_cancelled).cpu().numpy()
        del data, model
        ctx.check_cancelled()
        manifold = local_manifold(codes, params, params.umap_dims or n_clusters, ctx.seed)
        ctx.report("umap", 1, 1, dims=int(manifold.shape[1]))
        return mixture_clusters(manifold, n_clusters, params, ctx)


def local_manifold(codes: np.ndarray, p: N2DParams, dims: int, seed: int) -> np.ndarray:
    """UMAP of the codes. Seeded, umap-learn lays out on one thread, reproducibly."""
    import umap  # lazily: importing numba takes seconds, and only this method needs it

    # UMAP's spectral start needs more points than dimensions; tiny data gets a random one
    init = "spectral" if len(codes) > dims + 1 else "random"
    reducer = umap.UMAP(n_neighbors=min(p.umap_neighbors, len(codes) - 1), n_components=dims,
                        min_dist=p.umap_min_dist, metric=p.umap_metric,
                        random_state=seed % 2**32, init=init, n_jobs=1)
    # numba's OpenMP layer resets the thread count torch shares with it: restore it, or the
    # next fit in this process runs (and keys its cached weights) with another count
    threads = torch.get_num_threads()
    try:
        return reducer.fit_transform(codes).astype(np.float32)
    finally:
        torch.set_num_threads(threads)


def mixture_clusters(manifold: np.ndarray, n_clusters: int, p: N2DParams,
                     ctx: Context) -> ClusteringResult:
    """The Gaussian mixture on the manifold: labels are its argmax, confidence its posterior."""
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=n_clusters, covariance_type=p.gmm_covariance,
                          n_init=p.gmm_n_init, max_iter=p.gmm_max_iter,
                          random_state=ctx.seed % 2**32)
    points = manifold.astype(np.float64)
    posterior = gmm.fit(points).predict_proba(points)
    labels = posterior.argmax(axis=1).astype(np.int64)
    ctx.report("gmm", 1, 1, labels=labels, converged=bool(gmm.converged_),
               losses={"neg_log_likelihood": -float(gmm.lower_bound_)})
    return ClusteringResult(
        labels=labels, confidence=posterior.max(axis=1).astype(np.float32), embedding=manifold,
        diagnostics={"gmm_converged": bool(gmm.converged_), "gmm_iterations": int(gmm.n_iter_)})
