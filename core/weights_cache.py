"""Where pretrained weights are reused from (`Context.cache_dir`, the benchmarks' bench/cache).

One key for every method: the data's bytes, the settings that shape the weights, the seed
and torch's thread count. Methods that share a pretraining (ae_kmeans, dec, idec; DSCNSS and
DSC-Net alone; IcicleGCN stage 1 and stage 1+2) then share the same trained weights per seed.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch


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
    digest.update(f"threads={torch.get_num_threads()}".encode())  # CPU weights differ with the thread count
    return Path(cache_dir) / f"{kind}-{digest.hexdigest()[:20]}.pt"
