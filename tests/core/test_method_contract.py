"""The contract every registered method keeps, after ClustPy's `check_clustpy_estimator`: run
in-process on scikit-learn's digits (no services), each method with a small preset.

Adding a method is one file in core/methods plus its entry in CONTRACT below; a registered
method without one fails `test_every_registered_method_has_an_entry`.

Cancellation: README "Limits and guarantees" promises a cancel takes effect within a few
seconds, every method checking between mini-batches, restarts and chunks. BOUND_S is that
bound here: CANCEL_POLL_S between polls plus the longest unchecked step (a mini-batch, a kNN
chunk, a k-means restart, a full-batch epoch; each well under a second), with room for a
loaded 2-core CI machine. In the service the worker's heartbeat thread sets the flag every
DEEPCLUST_HEARTBEAT_S, so a job stops within that plus the latency measured here.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from pydantic import ValidationError

from core.interface import CANCEL_POLL_S, Context, JobCancelled
from core.registry import get_method, method_names
from tests.conftest import one_torch_thread

BOUND_S = 5.0
N, K = 300, 10  # the first 300 digits (8 x 8 images), 10 clusters
SMALL_AE = {"hidden_dims": [64, 64, 128], "batch_size": 64, "n_init": 2}


@dataclass(frozen=True)
class LongPhase:
    """A cancel set `delay` s after the first progress record of `after_phase` (None: after
    fit starts) inside a phase that would run tens of seconds or more before its next
    report, on the digits repeated `copies` times with a little noise."""

    params: dict
    after_phase: str | None = None
    delay: float = 0.5
    copies: int = 1


@dataclass(frozen=True)
class Entry:
    smoke: dict  # params that run on N digits in a few seconds
    long_phases: tuple[LongPhase, ...] = field(default=())


CONTRACT: dict[str, Entry] = {
    "kmeans": Entry({"n_init": 2}, (
        # 100 restarts on 18,000 x 64: tens of seconds without a check between restarts
        LongPhase({"n_init": 100}, copies=10),)),
    "ae_kmeans": Entry({**SMALL_AE, "pretrain_epochs": 3}, (
        # one pretraining epoch of 18,000 samples (70 batches): reported only at its end
        LongPhase({"pretrain_epochs": 5}, copies=10),)),
    "dec": Entry({**SMALL_AE, "pretrain_epochs": 3, "update_interval": 5, "maxiter": 20}),
    "idec": Entry({**SMALL_AE, "pretrain_epochs": 3, "update_interval": 5, "maxiter": 20}, (
        # self-training whose next target update (and report) is 100,000 iterations away
        LongPhase({"pretrain_epochs": 0, "n_init": 1, "update_interval": 100_000,
                   "maxiter": 1_000_000}, after_phase="kmeans_init"),)),
    "dccf": Entry({**SMALL_AE, "pretrain_epochs": 2, "epochs": 2}, (
        # one joint epoch of 54,000 samples with the exact Jacobian: tens of seconds to its report
        LongPhase({"pretrain_epochs": 0, "n_init": 1, "epochs": 100}, after_phase="kmeans_init",
                  copies=30),)),
    "n2d": Entry({"hidden_dims": [64, 64, 128], "batch_size": 64, "pretrain_epochs": 3}, (
        # one pretraining epoch of 18,000 samples; UMAP and the mixture are library calls,
        # checked around
        LongPhase({"pretrain_epochs": 5}, copies=10),)),
    "dcn": Entry({**SMALL_AE, "pretrain_epochs": 2, "epochs": 2}, (
        # one clustering epoch of 54,000 samples (211 batches): reported only at its end
        LongPhase({"pretrain_epochs": 0, "n_init": 1, "epochs": 100}, after_phase="kmeans_init",
                  copies=30),)),
    "rdc": Entry({**SMALL_AE, "pretrain_epochs": 2, "refresh_interval": 5, "maxiter": 20}, (
        LongPhase({"pretrain_epochs": 5}, copies=10),
        LongPhase({"pretrain_epochs": 0, "n_init": 1, "refresh_interval": 100_000,
                   "maxiter": 1_000_000}, after_phase="refresh"),)),
    "dscnss": Entry({"pretrain_epochs": 5, "j1_epochs_first": 20, "j1_epochs": 5, "rounds": 2,
                     "j2_epochs": 10, "j2_lr": 1e-3}, (
        # 20,000 J1 epochs: a progress record every 400 (about 10 s on digits)
        LongPhase({"pretrain_epochs": 0, "pretrain_restarts": 0, "j1_epochs_first": 20_000},
                  delay=1.0),)),
    "iciclegcn": Entry({"backbone": "resnet18", "backbone_width": 4, "batch_size": 64,
                        "warmup_epochs": 1, "stage1_epochs": 1, "stage2_epochs": 2,
                        "report_every": 1, "hidden_dims": [32, 32, 64], "n_init": 1}, (
        # stage 1: the first warm-up epoch (28 batches of two augmented views) reports at its end
        LongPhase({"backbone": "resnet18", "backbone_width": 8, "batch_size": 64,
                   "hidden_dims": [64, 64, 128], "n_init": 1, "warmup_epochs": 1000}),
        # stage 2: 10,000 full-batch epochs reporting every 10,000
        LongPhase({"backbone": "resnet18", "backbone_width": 8, "batch_size": 64,
                   "hidden_dims": [64, 64, 128], "n_init": 1, "mode": "features",
                   "features_pretrain_epochs": 0, "stage2_epochs": 10_000,
                   "report_every": 10_000}, after_phase="stage2_init"),)),
}
LONG_PHASES = [(name, case) for name, entry in CONTRACT.items() for case in entry.long_phases]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared machine, spinning OpenMP threads make step times erratic."""
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32)


def entry(name: str) -> Entry:
    assert name in CONTRACT, f"method {name!r} has no entry in tests/test_method_contract.py"
    return CONTRACT[name]


def longest_list(value) -> int:
    """The length of the longest list anywhere inside a JSON value."""
    if isinstance(value, dict):
        return max((longest_list(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return max([len(value), *(longest_list(v) for v in value)])
    return 0


def test_every_registered_method_has_an_entry():
    assert sorted(CONTRACT) == method_names()


# ---- the result --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", method_names())
def test_result_shapes_dtypes_ranges_progress_and_seed(name, digits):
    method, X = get_method(name), digits[:N]
    params = method.Params(**entry(name).smoke)
    runs = []
    for _ in range(2):
        ctx = Context(seed=0, device="cpu")
        runs.append((method.fit(X, K, params, ctx), ctx.history))
    (result, history), (again, _) = runs

    assert result.labels.shape == (N,) and result.labels.dtype == np.int64
    assert result.confidence.shape == (N,) and result.confidence.dtype == np.float32
    assert np.all((result.confidence >= 0) & (result.confidence <= 1))
    assert result.embedding.ndim == 2 and result.embedding.shape[0] == N
    assert result.embedding.dtype == np.float32 and np.all(np.isfinite(result.embedding))
    # diagnostics go into the job's JSON: small values only; arrays belong in the artifacts
    assert longest_list(json.loads(json.dumps(result.diagnostics))) < N
    assert all(isinstance(v, np.ndarray) and v.ndim >= 1 for v in result.artifacts.values())
    assert history and all({"phase", "step", "total"} <= set(r) for r in history)
    assert np.array_equal(result.labels, again.labels), "the same seed gave other labels"


@pytest.mark.parametrize("name", method_names())
def test_unknown_params_are_refused(name):
    Params = get_method(name).Params
    with pytest.raises(ValidationError, match="no_such_knob"):
        Params(**entry(name).smoke, no_such_knob=1)
    with pytest.raises(ValidationError):
        Params.model_validate({"no_such_knob": 1})


# ---- cancellation ------------------------------------------------------------------------------
def cancel_latency(name: str, X: np.ndarray, params: dict, after_phase: str | None = None,
                   delay: float = 0.3, first_record: bool = False) -> float:
    """Seconds from the cancel flag being set to JobCancelled leaving fit. The flag is set
    `delay` s after the first progress record of `after_phase` (or after fit starts), or at
    once in the first progress record when `first_record`."""
    flag, set_at = threading.Event(), []

    def cancel() -> None:
        set_at.append(time.perf_counter())
        flag.set()

    timer = threading.Timer(delay, cancel)

    def on_progress(record: dict) -> None:
        if first_record and not set_at:
            cancel()
        elif record["phase"] == after_phase and not timer.is_alive() and not set_at:
            timer.start()

    method = get_method(name)
    ctx = Context(seed=0, device="cpu", on_progress=on_progress, is_cancelled=flag.is_set)
    started = time.perf_counter()
    if after_phase is None and not first_record:
        timer.start()
    with pytest.raises(JobCancelled):
        method.fit(X, K, method.Params(**params), ctx)
    timer.cancel()
    assert set_at, f"{name} finished or was cancelled before the flag was set"
    latency = time.perf_counter() - set_at[0]
    print(f"{name} after {after_phase or 'start'}: cancelled {latency:.2f} s after the flag "
          f"({time.perf_counter() - started:.1f} s in fit)")
    return latency


def noisy_copies(images: np.ndarray, copies: int) -> np.ndarray:
    """Bigger data of the same kind: digits repeated with a little pixel noise."""
    if copies == 1:
        return images
    rng = np.random.default_rng(0)
    X = np.tile(images.reshape(len(images), -1), (copies, 1))
    return np.clip(X + rng.normal(0, 0.5, X.shape), 0, 16).astype(np.float32)


@pytest.mark.parametrize("name", method_names())
def test_cancel_after_the_first_progress_record(name, digits):
    latency = cancel_latency(name, digits[:N], entry(name).smoke, first_record=True)
    assert latency < BOUND_S


LONG_PHASE_IDS = [f"{name}-{case.after_phase or 'start'}" for name, case in LONG_PHASES]


@pytest.mark.parametrize("name, case", LONG_PHASES, ids=LONG_PHASE_IDS)
def test_cancel_inside_a_long_phase(name, case, digits):
    X = noisy_copies(digits, case.copies)
    assert cancel_latency(name, X, case.params, case.after_phase, case.delay) < BOUND_S


def test_cancel_check_is_throttled():
    calls = []
    ctx = Context(seed=0, device="cpu", is_cancelled=lambda: calls.append(1) or False)
    started = time.perf_counter()
    for _ in range(10_000):
        ctx.check_cancelled()  # the first call polls; the rest fall inside CANCEL_POLL_S
    assert len(calls) == 1 and time.perf_counter() - started < CANCEL_POLL_S
    ctx.report("pretrain", 3, 10)  # a progress report always polls
    assert len(calls) == 2


def test_report_and_check_raise_once_the_flag_is_set():
    flag = threading.Event()
    ctx = Context(seed=0, device="cpu", is_cancelled=flag.is_set)
    ctx.report("train", 1, 5)
    flag.set()
    time.sleep(CANCEL_POLL_S)
    with pytest.raises(JobCancelled, match="cancelled during train"):
        ctx.check_cancelled()
