"""Where pretrained weights are reused from (`Context.cache_dir`, the benchmarks' bench/cache).

One key for every pretraining: the data's bytes, the Params fields that shape the weights
(each declares it on itself: `x: ShapesWeights[int] = Field(...)`), whatever the method
derives from them (an architecture), the seed and torch's thread count. Methods that share
a pretraining (ae_kmeans, dec, idec; DSCNSS and DSC-Net alone; IcicleGCN stage 1 and stage
1+2) then share the same trained weights per seed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from core.interface import Context


class _ShapesWeightsMarker:
    """Marks a Params field whose value changes what a pretraining learns."""

    def __repr__(self) -> str:
        return "ShapesWeights"


SHAPES_WEIGHTS = _ShapesWeightsMarker()
T = TypeVar("T")
ShapesWeights = Annotated[T, SHAPES_WEIGHTS]  # a field type wrapper; the JSON schema is unchanged

Module = TypeVar("Module", bound=nn.Module)


def weights_fields(params: BaseModel) -> dict[str, Any]:
    """The values of the fields of `params` marked ShapesWeights."""
    return {name: getattr(params, name) for name, info in type(params).model_fields.items()
            if SHAPES_WEIGHTS in info.metadata}


def weights_path(cache_dir: str | None, kind: str, data: torch.Tensor | np.ndarray, fields: dict,
                 seed: int) -> Path | None:
    """bench/cache-style file for weights of `kind` trained on `data` with `fields` and `seed`;
    None when no cache dir is set."""
    if not cache_dir:
        return None
    array = data.cpu().numpy() if torch.is_tensor(data) else data
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(fields, sort_keys=True).encode())
    digest.update(f"seed={seed}".encode())
    # CPU weights differ with the thread count (float reductions)
    digest.update(f"threads={torch.get_num_threads()}".encode())
    return Path(cache_dir) / f"{kind}-{digest.hexdigest()[:20]}.pt"


def cached_pretraining(model: Module, train: Callable[[Module], Module], ctx: Context, kind: str,
                       data: torch.Tensor | np.ndarray, params: BaseModel,
                       derived: dict[str, Any] | None = None, *, phase: str, total: int,
                       **fields: Any) -> Module:
    """`train(model)`'s result, or, with `ctx.cache_dir` set and the same key seen before, the
    saved weights loaded into `model` (reported as step `total` of `phase`, with `fields`).
    `derived`: key values the method computes from params or data (architecture, K)."""
    key = weights_fields(params) | (derived or {})
    path = weights_path(ctx.cache_dir, kind, data, key, ctx.seed)
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, map_location=ctx.device, weights_only=True))
        ctx.report(phase, total, total, reused_weights=path.name, **fields)
        return model
    model = train(model)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model
