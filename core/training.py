"""Small shared pieces of every training phase: seeding, input scaling, optimizers, chunked
passes (the loop itself is core/engine.py)."""
from __future__ import annotations

import random
from typing import Callable, Literal

import numpy as np
import torch

OptimizerName = Literal["adam", "sgd"]
InputScaling = Literal["minmax", "none"]


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def as_vectors(X: np.ndarray, scaling: InputScaling) -> np.ndarray:
    """Flatten images to vectors and scale them.

    'minmax' maps the whole array (one global min and max, not per feature) to [0, 1]:
    8-bit pixels become x/255 as in DEC's code, and data already in [0, 1] stays as it is.
    """
    flat = X.reshape(len(X), -1).astype(np.float32, copy=False)
    if scaling == "minmax":
        low, high = float(flat.min()), float(flat.max())
        if high > low and (low, high) != (0.0, 1.0):
            flat = (flat - low) / (high - low)
    return flat


def make_optimizer(name: OptimizerName, params, lr: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=momentum)


@torch.no_grad()
def map_in_chunks(fn, X: torch.Tensor, chunk: int = 8192,
                  check: Callable[[], None] | None = None) -> torch.Tensor:
    """fn over X in chunks, so a full-data pass never holds every activation at once.
    `check` (a cancellation check) runs before every chunk."""
    outputs = []
    for i in range(0, len(X), chunk):
        if check is not None:
            check()
        outputs.append(fn(X[i:i + chunk]))
    return torch.cat(outputs)
