"""Memory limits of methods that hold n x n matrices (DSCNSS's self-expression C).

A method that needs one states its peak memory through `Method.memory_bytes`. The API
refuses data that cannot fit the worker's budget (422, naming the limit) and the method
checks again on its device before allocating, so a worker never dies of out-of-memory.
"""
from __future__ import annotations

from typing import Callable


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
                 budget: int, where: str) -> str | None:
    """Why data of `shape` cannot fit `budget` bytes, naming the largest n that can; None if it fits.
    `memory_bytes(shape)` is the method's estimate for its parameters and cluster count."""
    needed = memory_bytes(shape)
    if needed is None or needed <= budget:
        return None
    limit = largest_n(lambda n: memory_bytes((n, *shape[1:])) or 0, budget)
    return (f"this method holds n x n matrices and needs about {gib(needed)} for {shape[0]} samples, "
            f"but {where} has {gib(budget)}: at most {limit} samples of this shape fit")


def ensure_fits(needed: int | None, device: str) -> None:
    """Raise MemoryBudgetError before allocating when `device` has less than `needed` bytes free."""
    if needed is None:
        return
    free = free_memory_bytes(device)
    if needed > free:
        raise MemoryBudgetError(f"this job needs about {gib(needed)} on {device}, "
                                f"but only {gib(free)} is free; use fewer samples")
