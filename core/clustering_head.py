"""The DEC clustering head: Student-t soft assignment, target distribution, k-means init.

Xie et al. 2016 (DEC) Eq. 1-3; shared by dec, idec and dccf.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

EPS = 1e-12  # clusters can empty out on small data: guard f_j -> 0 (dec.md pitfall 6)


def soft_assignment(z: torch.Tensor, centers: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """q_ij: Student-t kernel between embeddings and centroids, normalised over clusters."""
    squared = (z.unsqueeze(1) - centers).pow(2).sum(dim=2)  # (n, K); exact gradient at 0, unlike cdist
    kernel = (1.0 + squared / alpha).pow(-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j'), f_j = sum_i q_ij. A constant: no gradient."""
    weight = q.pow(2) / (q.sum(dim=0) + EPS)
    return (weight / weight.sum(dim=1, keepdim=True)).detach()


def kl_clustering_loss(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q), summed over clusters and averaged over the batch (Keras `kld`)."""
    return nn.functional.kl_div(q.clamp_min(EPS).log(), p, reduction="batchmean")


def kmeans_centers(z: np.ndarray, n_clusters: int, seed: int, n_init: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """k-means (n_init restarts) on the embedding: initial centroids and labels."""
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


class ClusteringHead(nn.Module):
    """K trainable centroids in the embedding space."""

    def __init__(self, centers: np.ndarray, alpha: float = 1.0):
        super().__init__()
        self.centers = nn.Parameter(torch.as_tensor(centers, dtype=torch.float32))
        self.alpha = alpha

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return soft_assignment(z, self.centers, self.alpha)
