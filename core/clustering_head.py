"""The DEC clustering head: Student-t soft assignment, target distribution, k-means init.

Xie et al. 2016 (DEC) Eq. 1-3; shared by dec, idec and dccf.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from core.resources import FLOAT

EPS = 1e-12  # clusters can empty out on small data: guard f_j -> 0 (dec.md pitfall 6)


def soft_assignment(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """q_ij: Student-t kernel between embeddings and centroids, normalised over clusters."""
    # (n, K); exact gradient at 0, unlike cdist
    squared = (z.unsqueeze(1) - centers).pow(2).sum(dim=2)
    kernel = (1.0 + squared / alpha).pow(-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij. A constant: no
    gradient."""
    weight = q.pow(2) / (q.sum(dim=0) + EPS)
    return (weight / weight.sum(dim=1, keepdim=True)).detach()


def kl_clustering_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q), summed over clusters and averaged over the batch (Keras `kld`)."""
    return nn.functional.kl_div(q.clamp_min(EPS).log(), p, reduction="batchmean")


def kmeans_restarts(X: np.ndarray, n_clusters: int, seed: int, n_init: int = 20,
                    max_iter: int = 300, check: Callable[[], None] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, float]:
    """(centers, labels, inertia) of KMeans(n_init, random_state=seed), run one restart at a time so
    that `check` (a cancellation check) runs between restarts. The same restarts as sklearn's loop
    (one RandomState drawn in sequence) and the same choice: a lower inertia wins unless it is the
    same partition (rounding)."""
    random_state = np.random.RandomState(seed)
    best: KMeans | None = None
    for _ in range(n_init):
        if check is not None:
            check()
        km = KMeans(n_clusters=n_clusters, n_init=1, max_iter=max_iter, random_state=random_state)
        km.fit(X)
        if best is None or (km.inertia_ < best.inertia_
                            and not same_partition(km.labels_, best.labels_)):
            best = km
    centers, labels = best.cluster_centers_.astype(np.float32), best.labels_.astype(np.int64)
    return centers, labels, float(best.inertia_)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two labelings differ only by the names of their clusters."""
    pairs = len(np.unique(np.stack([a, b]), axis=1).T)
    return pairs == len(np.unique(a)) == len(np.unique(b))


def kmeans_centers(z: np.ndarray, n_clusters: int, seed: int, n_init: int = 20,
                   check: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-means (n_init restarts) on the embedding: initial centroids and labels."""
    centers, labels, _ = kmeans_restarts(z, n_clusters, seed, n_init, check=check)
    return centers, labels


class ClusteringHead(nn.Module):
    """K trainable centroids in the embedding space."""

    def __init__(self, centers: np.ndarray, alpha: float = 1.0):
        super().__init__()
        self.centers = nn.Parameter(torch.as_tensor(centers, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return soft_assignment(z, self.centers, self.alpha)


# soft_assignment broadcasts (rows, k, d) differences: a chunk holds at most this many floats
_CONFIDENCE_CHUNK_FLOATS = 2**22


def student_t_confidence(z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """max_j q_ij under the Student-t kernel (the same soft assignment DEC uses), in chunks."""
    rows = max(1, _CONFIDENCE_CHUNK_FLOATS // centers.size)
    with torch.no_grad():
        q = torch.cat([soft_assignment(torch.from_numpy(z[i:i + rows]), torch.from_numpy(centers))
                       for i in range(0, len(z), rows)])
    return q.max(dim=1).values.numpy().astype(np.float32)


def confidence_bytes(n: int, d: int, k: int) -> int:
    """student_t_confidence: one chunk's differences and squares, and the (n, k) assignment."""
    return FLOAT * (2 * min(_CONFIDENCE_CHUNK_FLOATS, n * k * d) + 2 * n * k)
