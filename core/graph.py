"""Sparse kNN graphs and the graph-convolution layer (Kipf & Welling; SDCN's GNNLayer).

The adjacency is a torch sparse tensor with O(n k) entries, built from `core.knn`
(chunked, never an n x n matrix), so 70,000 points fit.
"""
from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn

from core.knn import knn

Normalization = Literal["sym", "row"]


def knn_adjacency(features: torch.Tensor, k: int, normalization: Normalization = "sym",
                  check: Callable[[], None] | None = None) -> torch.Tensor:
    """Normalised adjacency of the unweighted, symmetrised kNN graph with self-loops.

    A_ij = 1 when j is among the k nearest neighbours of i (Euclidean) or i among j's,
    Ã = A + I, then 'sym': D^-1/2 Ã D^-1/2 (GCN, IcicleGCN Eq. 12-13) or 'row': D^-1 Ã
    (SDCN's code). Returned as a coalesced sparse COO tensor on the features' device.
    `check` (a cancellation check) runs inside the kNN search.
    """
    n = len(features)
    _, neighbours = knn(features, k, check=check)
    rows = torch.arange(n, device=features.device).repeat_interleave(k)
    cols = neighbours.reshape(-1)
    self_loops = torch.arange(n, device=features.device)
    index = torch.stack([torch.cat([rows, cols, self_loops]), torch.cat([cols, rows, self_loops])])
    ones = torch.ones(index.shape[1], device=features.device)
    # coalesce sums duplicate edges (i->j and j->i both found); max(A, A^T) keeps them at 1
    adjacency = torch.sparse_coo_tensor(index, ones, (n, n), check_invariants=True).coalesce()
    index, values = adjacency.indices(), adjacency.values().clamp(max=1.0)
    degree = torch.zeros(n, device=features.device).index_add_(0, index[0], values)
    if normalization == "sym":
        inv_sqrt = degree.rsqrt()
        values = values * inv_sqrt[index[0]] * inv_sqrt[index[1]]
    else:
        values = values / degree[index[0]]
    return torch.sparse_coo_tensor(index, values, (n, n), is_coalesced=True, check_invariants=False)


class GCNLayer(nn.Module):
    """phi(Â X W): no bias, Xavier-uniform weights, ReLU unless `active=False`."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor,
                active: bool = True) -> torch.Tensor:
        out = torch.sparse.mm(adjacency, x @ self.weight)
        return torch.relu(out) if active else out
