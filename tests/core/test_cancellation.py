"""A cancel takes effect within seconds inside every method's long phases, not at its next progress step.

Pure core tests: the flag is a threading.Event set from a timer thread at a point inside a long phase
(one that reports rarely or never), and fit must raise JobCancelled soon after. In the service the
worker's heartbeat thread sets the same kind of Event every DEEPCLUST_HEARTBEAT_S (2 s), so a
job stops within heartbeat + the latency measured here.
"""
import threading
import time

import numpy as np
import pytest

from core.interface import CANCEL_POLL_S, Context, JobCancelled
from core.registry import get_method

# CANCEL_POLL_S between polls, plus the longest unchecked step (a mini-batch, a kNN chunk, a k-means
# restart, a full-batch epoch; each well under a second here), with room for a loaded 2-core CI
# machine. Every phase below would run tens of seconds or more before its next progress report.
BOUND_S = 5.0


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared machine, spinning OpenMP threads make step times erratic."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cancel_latency(method: str, X: np.ndarray, params: dict, after_phase: str | None = None,
                   delay: float = 0.3, n_clusters: int = 10) -> float:
    """Seconds from the cancel flag being set (`delay` s after the first progress record of
    `after_phase`, or after fit starts) to JobCancelled leaving fit."""
    flag, set_at = threading.Event(), []

    def cancel() -> None:
        set_at.append(time.perf_counter())
        flag.set()

    timer = threading.Timer(delay, cancel)

    def on_progress(record: dict) -> None:
        if record["phase"] == after_phase and not timer.is_alive() and not set_at:
            timer.start()

    m = get_method(method)
    ctx = Context(seed=0, device="cpu", on_progress=on_progress, is_cancelled=flag.is_set)
    started = time.perf_counter()
    if after_phase is None:
        timer.start()
    with pytest.raises(JobCancelled):
        m.fit(X, n_clusters, m.Params(**params), ctx)
    timer.cancel()
    assert set_at, f"{method} finished or was cancelled before the flag was set"
    latency = time.perf_counter() - set_at[0]
    print(f"{method} after {after_phase or 'start'}: cancelled {latency:.2f} s after the flag "
          f"({time.perf_counter() - started:.1f} s in fit)")
    return latency


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32)


def noisy_copies(images: np.ndarray, copies: int) -> np.ndarray:
    """Bigger data of the same kind: digits repeated with a little pixel noise."""
    rng = np.random.default_rng(0)
    X = np.tile(images.reshape(len(images), -1), (copies, 1))
    return np.clip(X + rng.normal(0, 0.5, X.shape), 0, 16).astype(np.float32)


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


def test_kmeans_stops_between_restarts(digits):
    # 100 restarts on 18,000 x 64: tens of seconds without a check between restarts
    latency = cancel_latency("kmeans", noisy_copies(digits, 10), {"n_init": 100}, delay=0.5)
    assert latency < BOUND_S


def test_dec_family_stops_inside_a_pretraining_epoch_and_inside_self_training(digits):
    # one pretraining epoch of 18,000 samples (70 batches): reported only at its end
    big = noisy_copies(digits, 10)
    assert cancel_latency("ae_kmeans", big, {"pretrain_epochs": 5}, delay=0.5) < BOUND_S
    # self-training whose next target update (and report) is 100,000 iterations away
    params = {"pretrain_epochs": 0, "n_init": 1, "update_interval": 100_000, "maxiter": 1_000_000}
    assert cancel_latency("idec", digits, params, after_phase="kmeans_init") < BOUND_S


def test_dccf_stops_inside_a_joint_epoch(digits):
    # one joint epoch of 54,000 samples with the exact Jacobian: tens of seconds to its report
    params = {"pretrain_epochs": 0, "n_init": 1, "epochs": 100}
    assert cancel_latency("dccf", noisy_copies(digits, 30), params, after_phase="kmeans_init") < BOUND_S


def test_rdc_stops_inside_acai_and_between_refreshes(digits):
    assert cancel_latency("rdc", noisy_copies(digits, 10), {"pretrain_epochs": 5}, delay=0.5) < BOUND_S
    params = {"pretrain_epochs": 0, "n_init": 1, "refresh_interval": 100_000, "maxiter": 1_000_000}
    assert cancel_latency("rdc", digits, params, after_phase="refresh") < BOUND_S


def test_dscnss_stops_inside_the_self_expression_epochs(digits):
    # 20,000 J1 epochs: a progress record every 400 (about 10 s on digits)
    params = {"pretrain_epochs": 0, "pretrain_restarts": 0, "j1_epochs_first": 20_000}
    assert cancel_latency("dscnss", digits, params, delay=1.0) < BOUND_S


def test_iciclegcn_stops_inside_stage_1_and_stage_2(digits):
    small_net = {"backbone": "resnet18", "backbone_width": 8, "batch_size": 64, "hidden_dims": [64, 64, 128],
                 "n_init": 1}
    # stage 1: the first warm-up epoch (28 batches of two augmented views) reports only at its end
    assert cancel_latency("iciclegcn", digits, {**small_net, "warmup_epochs": 1000}, delay=0.5) < BOUND_S
    # stage 2: 10,000 full-batch epochs reporting every 10,000
    params = {**small_net, "mode": "features", "features_pretrain_epochs": 0, "stage2_epochs": 10_000,
              "report_every": 10_000}
    assert cancel_latency("iciclegcn", digits, params, after_phase="stage2_init") < BOUND_S
