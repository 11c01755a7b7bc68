"""Exact k-nearest neighbours on the device, in row chunks: never an n x n matrix.

Shared by the methods that need neighbourhoods (R-DC's core points, IcicleGCN's kNN
graphs) and by the geometry monitors (TwoNN intrinsic dimension).
"""
from __future__ import annotations

import torch

# One chunk of squared distances is at most this many floats (256 MiB in float32).
_CHUNK_FLOATS = 64 * 2**20


@torch.no_grad()
def knn(points: torch.Tensor, k: int, queries: torch.Tensor | None = None,
        chunk_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (ascending) and indices of the k nearest `points` to every query.

    With `queries` None the points query themselves and each point is left out of its own
    neighbour list (duplicates of it are not). Euclidean distance; memory O(chunk x n).
    """
    self_query = queries is None
    queries = points if self_query else queries
    n = len(points)
    if not 1 <= k <= n - int(self_query):
        raise ValueError(f"k must be between 1 and {n - int(self_query)}, got {k}")
    rows = chunk_rows or max(1, _CHUNK_FLOATS // max(n, 1))
    points_sq = points.pow(2).sum(1)
    dists, idxs = [], []
    for start in range(0, len(queries), rows):
        q = queries[start:start + rows]
        # |q|^2 + |p|^2 - 2 q.p, clamped: rounding can make it slightly negative
        d2 = (q.pow(2).sum(1, keepdim=True) + points_sq - 2 * q @ points.T).clamp_min_(0)
        if self_query:
            own = torch.arange(start, start + len(q), device=points.device)
            d2[torch.arange(len(q), device=points.device), own] = float("inf")
        d, i = d2.topk(k, dim=1, largest=False)
        dists.append(d.sqrt_())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)
