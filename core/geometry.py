"""Geometry of a latent space (docs/metrics.md): TwoNN intrinsic dimension,
PCA linear intrinsic dimension, their per-cluster averages, and kNN purity.

Used by R-DC's monitors (the Feature Twist argument) and its benchmark.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from core.knn import knn


def twonn(z: np.ndarray | torch.Tensor, fraction: float = 0.9,
          check: Callable[[], None] | None = None) -> float | None:
    """TwoNN (Facco et al. 2017): slope through the origin of -log(1 - F(mu)) on log(mu),
    mu = r2 / r1, dropping the last two sorted points and keeping the first `fraction`.
    None when too few usable points."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float64) if not torch.is_tensor(z) else z.double())
    if len(z) < 4:
        return None
    d, _ = knn(z, 2, check=check)
    r1, r2 = d[:, 0].cpu().numpy(), d[:, 1].cpu().numpy()
    ok = (r1 > 0) & (r2 > r1)
    mu = np.sort(r2[ok] / r1[ok])
    m = len(mu)
    if m < 4:
        return None
    f_emp = np.arange(1, m + 1) / m
    x, y = np.log(mu[:-2]), -np.log(1 - f_emp[:-2])
    keep = int(np.floor(fraction * m))
    x, y = x[:keep], y[:keep]
    return float((x * y).sum() / (x * x).sum())


def pca_id(z: np.ndarray, threshold: float = 0.9999) -> int | None:
    """Number of principal components of the standardised z whose cumulative explained
    variance first exceeds `threshold` (Ansuini's 0-based index + 1)."""
    z = np.asarray(z, dtype=np.float64)
    if len(z) < 2:
        return None
    std = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(std > 0, std, 1)
    var = np.linalg.svd(z, compute_uv=False) ** 2
    if var.sum() <= 0:
        return None
    cumulative = np.cumsum(var) / var.sum()
    above = np.flatnonzero(cumulative > threshold)
    return int(above[0]) + 1 if len(above) else len(var)


def cluster_geometry(z: np.ndarray, labels: np.ndarray, lid_threshold: float = 0.9999,
                     check: Callable[[], None] | None = None) -> dict:
    """ID (TwoNN, fraction 1 as R-DC's computeID) and LID (PCA) on each cluster, averaged:
    the cluster-wise curvature gap FT = LID - ID. `check` (a cancellation check) runs per
    cluster."""
    ids, lids = [], []
    for cluster in np.unique(labels):
        if check is not None:
            check()
        members = z[labels == cluster]
        i, lid = twonn(members, fraction=1.0, check=check), pca_id(members, lid_threshold)
        if i is not None:
            ids.append(i)
        if lid is not None:
            lids.append(lid)
    out = {"id": float(np.mean(ids)) if ids else None,
           "id_std": float(np.std(ids)) if ids else None,
           "lid": float(np.mean(lids)) if lids else None}
    out["ft"] = out["lid"] - out["id"] if ids and lids else None
    return out


def neighbour_purity(knn_idx: np.ndarray, kept_mask: np.ndarray, y: np.ndarray) -> float | None:
    """Share of kept neighbour entries (kept_mask[i, j] for neighbour knn_idx[i, j]) whose
    label equals the label of point i. Labels: evaluation only."""
    knn_idx, kept_mask, y = np.asarray(knn_idx), np.asarray(kept_mask, dtype=bool), np.asarray(y)
    if not kept_mask.any():
        return None
    same = y[knn_idx] == y[:, None]
    return float(same[kept_mask].mean())
