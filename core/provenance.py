"""What a run records about where it ran: library versions and peak memory."""
from __future__ import annotations

import platform
import resource


def library_versions() -> dict:
    import numpy
    import sklearn
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__,
            "cuda": torch.version.cuda if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads(),  # CPU timings depend on it
            "cpu": cpu_model()}  # so do float results: kernels differ between CPUs


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_mb(device: str) -> float:
    """GPU: peak allocated tensor memory. CPU: the process's peak resident set size."""
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
