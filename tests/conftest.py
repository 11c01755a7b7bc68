"""Fixtures both test folders use: the real digits and an in-memory .npz. Nothing here touches
PostgreSQL or Redis; the services' settings and fixtures are in tests/service/conftest.py.
"""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def digits():
    """scikit-learn's bundled handwritten digits: 1797 real 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


def deepclust(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """The `deepclust` command line (core/cli.py) in a fresh process, from the repo root."""
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_torch_thread():
    """For a fixture (`yield from one_torch_thread()`): torch on one thread while it lasts.
    Float sums depend on the thread count, and on a shared machine spinning OpenMP threads make
    step times erratic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
