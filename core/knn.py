"""Exact k-nearest neighbours on the device, in row chunks: never an n x n matrix.

Shared by the methods that need neighbourhoods (R-DC's core points, IcicleGCN's kNN
graphs) and by the geometry monitors (TwoNN intrinsic dimension).
"""
from __future__ import annotations

from typing import Callable

import torch

# One chunk of squared distances is at most this many floats: 256 MiB on a GPU, where big
# chunks keep it busy; 16 MiB on a CPU, where a chunk that stays in cache is ~3x faster
# (70,000 x 10-d codes, one thread: 6 s instead of 32 s).
_CHUNK_FLOATS = {"cuda": 64 * 2**20, "cpu": 4 * 2**20}


@torch.no_grad()
def knn(points: torch.Tensor, k: int, queries: torch.Tensor | None = None,
        chunk_rows: int | None = None,
        check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances (ascending) and indices of the k nearest `points` to every query.

    With `queries` None the points query themselves and each point is left out of its own
    neighbour list (duplicates of it are not). Euclidean distance; memory O(chunk x n).
    `check` (a cancellation check) runs before every chunk.
    """
    self_query = queries is None
    queries = points if self_query else queries
    n = len(points)
    if not 1 <= k <= n - int(self_query):
        raise ValueError(f"k must be between 1 and {n - int(self_query)}, got {k}")
    rows = chunk_rows or max(
        1, _CHUNK_FLOATS.get(points.device.type, _CHUNK_FLOATS["cpu"]) // max(n, 1))
    points_sq = points.pow(2).sum(1)
    # One buffer for every chunk: a fresh 16 MiB block per chunk fragments glibc's heap on the
    # CPU until it grows by a block per chunk (measured: 18 GB for 70,000 points).
    buffer = torch.empty(min(rows, len(queries)), n, dtype=points.dtype, device=points.device)
    dists, idxs = [], []
    for start in range(0, len(queries), rows):
        if check is not None:
            check()
        q = queries[start:start + rows]
        # |p|^2 - 2 q.p + |q|^2 (addmm, then in place), clamped: rounding can make it negative
        d2 = torch.addmm(points_sq, q, points.T, alpha=-2, out=buffer[:len(q)])
        d2.add_(q.pow(2).sum(1, keepdim=True)).clamp_min_(0)
        if self_query:
            own = torch.arange(start, start + len(q), device=points.device)
            d2[torch.arange(len(q), device=points.device), own] = float("inf")
        d, i = d2.topk(k, dim=1, largest=False)
        dists.append(d.sqrt_())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)
