"""Memory limits: every method states its peak memory through `Method.memory_bytes`
(parameters, optimiser state, a batch's activations, the data, n x k / n x n / kNN buffers).
The API and the CLI refuse a job that cannot fit the worker's budget (422, naming the largest
n that fits, or the parameter that makes the model too large at any n), and DSCNSS checks
again on its device before allocating, so a worker never dies of out-of-memory.

The helpers below are the shared arithmetic of those estimates; they over-count on purpose.
"""
from __future__ import annotations

import math
from itertools import pairwise
from typing import Any, Callable

FLOAT = 4  # bytes of a float32
# Allocator slack and library workspaces (BLAS, OpenMP, sklearn's chunks) on top of the tensors.
RUNTIME_SLACK = 32 << 20
# The largest chunk of squared distances core.knn allocates (its GPU chunk; 16 MiB on a CPU).
KNN_CHUNK_FLOATS = 64 * 2**20


def mlp_parameters(widths: list[int] | tuple[int, ...]) -> int:
    """Weights and biases of the Linear layers between consecutive widths."""
    return sum(a * b + b for a, b in pairwise(widths))


def mlp_activation_floats(widths: list[int] | tuple[int, ...]) -> int:
    """Floats one sample keeps for backward through such an MLP and its gradient's peak:
    each layer's output and ReLU output (2 per width), plus the gradients of the widest pair."""
    return 2 * sum(widths[1:]) + 2 * max(widths)


def knn_bytes(n: int, k: int) -> int:
    """core.knn on n points: one chunk of squared distances, its top-k, and the (n, k) results."""
    return FLOAT * min(KNN_CHUNK_FLOATS, n * n) * 2 + n * k * (FLOAT + 8) * 3


def kmeans_bytes(n: int, d: int, k: int) -> int:
    """sklearn KMeans (one restart alive at a time): its float32 copy of the data, the centred copy
    it works on, norms, labels and its k-means++ candidate distances."""
    return FLOAT * n * d * 2 + n * (8 + FLOAT * (3 + int(math.log(max(k, 2))) + k))


def with_slack(n_bytes: float) -> int:
    """A tensor count turned into a conservative peak: 25% for temporaries the count misses
    (gradient buffers, casts, allocator rounding), plus RUNTIME_SLACK."""
    return int(1.25 * n_bytes) + RUNTIME_SLACK


class MemoryBudgetError(ValueError):
    """The job needs more memory than its device has free."""


def free_memory_bytes(device: str) -> int:
    """Free memory of a CUDA device, or the host's available RAM for the CPU."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.2f} GiB"


def largest_n(needed: Callable[[int], int], budget: int, upper: int = 10**8) -> int:
    """The largest n with needed(n) <= budget; `needed` grows with n. 0 if none fits."""
    low, high = 0, 1
    while high < upper and needed(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if needed(mid) <= budget else (low, mid)
    return low


def size_problem(memory_bytes: Callable[[tuple[int, ...]], int | None], shape: tuple[int, ...],
                 budget: int, where: str, min_n: int = 1,
                 blame: Callable[[], str | None] | None = None) -> str | None:
    """Why data of `shape` cannot fit `budget` bytes, naming the largest n that can; None if it
    fits. `memory_bytes(shape)` is the method's estimate for its parameters and cluster count;
    `blame()` names what makes the model large (called only when the job does not fit)."""
    needed = memory_bytes(shape)
    if needed is None or needed <= budget:
        return None
    limit = largest_n(lambda n: memory_bytes((n, *shape[1:])) or 0, budget)
    culprit = blame() if blame is not None else None
    if limit < min_n:
        smallest = memory_bytes((min_n, *shape[1:])) or 0
        return (f"this method needs about {gib(needed)} for {shape[0]} samples, and about "
                f"{gib(smallest)} even for {min_n}: the model itself does not fit in {where} "
                f"({gib(budget)})"
                + (f"; {culprit}" if culprit else "; the input has too many features per sample"))
    return (f"this method needs about {gib(needed)} for {shape[0]} samples of this shape, "
            f"but {where} has {gib(budget)}: at most {limit} samples of this shape fit"
            + (f"; {culprit}" if culprit else ""))


def largest_parameter(memory_bytes: Callable[[Any], int | None], params: Any) -> str | None:
    """Which non-default parameter, put back to its default, lowers `memory_bytes(params)` the most:
    'hidden_dims=[100000, 100000] makes it large (the default [500, 500, 2000] needs 0.31 GiB)'.
    None when every parameter is at its default or none lowers the estimate."""
    needed = memory_bytes(params) or 0
    best: tuple[int, str, Any, Any] | None = None
    for name, info in type(params).model_fields.items():
        value = getattr(params, name)
        if value == info.default:
            continue
        try:
            lowered = memory_bytes(params.model_copy(update={name: info.default})) or 0
        except (TypeError, ValueError):  # a default that only works with another parameter
            continue
        if lowered < needed and (best is None or lowered < best[0]):
            best = (lowered, name, value, info.default)
    if best is None:
        return None
    lowered, name, value, default = best
    return (f"{name}={_show(value)} makes it large (the default {_show(default)} needs about "
            f"{gib(lowered)})")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return str(list(value))
    return repr(value) if isinstance(value, str) else str(value)


def ensure_fits(needed: int | None, device: str) -> None:
    """Raise MemoryBudgetError before allocating when `device` has less than `needed` bytes free."""
    if needed is None:
        return
    free = free_memory_bytes(device)
    if needed > free:
        raise MemoryBudgetError(f"this job needs about {gib(needed)} on {device}, "
                                f"but only {gib(free)} is free; use fewer samples")


def job_memory_problem(method: Any, shape: tuple[int, ...], n_clusters: int | None, params: Any,
                       budget: int, where: str) -> str | None:
    """The memory check of a job, shared by the API and the CLI: None when `method` (a Method)
    fits `budget` for data of `shape`, else a message naming the largest n or the parameter."""
    def estimate(s: tuple[int, ...], p: Any = params) -> int | None:
        return method.memory_bytes(tuple(s), n_clusters, p)

    return size_problem(estimate, tuple(shape), budget, where, method.accepts.min_n,
                        blame=lambda: largest_parameter(lambda p: estimate(shape, p), params))
