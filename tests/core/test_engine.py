"""The training engine: batching, updates, loss means, report cadence and cancellation."""
import math
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from core import Context, get_method
from core.engine import Batches, LossMeans, optimise, run_epochs, run_iterations
from core.interface import JobCancelled


def _rows(batches: Batches, batch) -> list[int]:
    return list(range(batches.n)[batch]) if isinstance(batch, slice) else batch.tolist()


@pytest.mark.parametrize("n", [512, 513, 600])
@pytest.mark.parametrize("order", ["in_order", "shuffled"])
def test_a_pass_takes_every_row_once_and_never_an_empty_batch(n, order):
    batches = Batches(n, 64, order, generator=torch.Generator().manual_seed(0))
    taken = [_rows(batches, b) for b in batches.one_pass()]
    assert all(taken) and sorted(sum(taken, [])) == list(range(n))
    assert [len(t) for t in taken[:-1]] == [64] * (len(taken) - 1)
    # iteration-based phases go on with the next pass, again without an empty batch
    stream = batches.forever()
    assert all(batches.rows(next(stream)) > 0 for _ in range(3 * len(taken)))


def test_drop_last_min_size_and_full_batch():
    assert [len(b) for b in Batches(10, 4, drop_last=True).one_pass()] == [4, 4]
    assert [len(b) for b in Batches(9, 4, min_size=2).one_pass()] == [4, 4]  # a lone row is skipped
    assert [len(b) for b in Batches(10, 4, min_size=2).one_pass()] == [4, 4, 2]
    assert list(Batches(10, None).one_pass()) == [slice(None)]
    with pytest.raises(ValueError, match="no batch"):
        next(Batches(3, 4, drop_last=True).forever())


def test_dec_takes_no_empty_batch_when_n_is_a_multiple_of_the_batch_size():
    """n = 512 = 8 x 64: the old in-order batching (`<=`) took a 9th, empty batch every pass,
    a NaN clustering loss in that interval's report (recorded as None)."""
    X = load_digits().data[:512].astype(np.float32)
    method = get_method("dec")
    params = method.Params(hidden_dims=(32,), batch_size=64, pretrain_epochs=1, n_init=1,
                           update_interval=3, maxiter=30, tol=0.0)
    ctx = Context(seed=0, device="cpu")
    method.fit(X, 10, params, ctx)
    reports = [h for h in ctx.history if h["phase"] == "cluster" and "losses" in h]
    assert len(reports) == 10  # one per 3 iterations, none at iteration 0
    assert all(v is not None and math.isfinite(v) for h in reports for v in h["losses"].values())


def test_loss_means_are_sample_weighted_and_skip_private_terms():
    means = LossMeans()
    means.add({"a": torch.tensor(1.0), "_sum": torch.tensor(9.0)}, rows=3)
    means.add({"a": torch.tensor(3.0), "_sum": torch.tensor(9.0)}, rows=1)
    assert means.pop() == {"a": pytest.approx(1.5)} and means.pop() is None


def test_two_optimisers_each_update_only_their_own_parameters():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizers = {"first": torch.optim.SGD([a], lr=0.1), "second": torch.optim.SGD([b], lr=0.1)}
    terms = {"first": (a * b).sum(), "second": (3 * a * b).sum()}
    optimise(terms, optimizers)
    assert torch.allclose(a.detach(), torch.full((2,), 0.9))  # d first / da = b = 1
    # d second / db = 3a, with a as it was before its own step
    assert torch.allclose(b.detach(), torch.full((2,), 0.7))


def _linear_problem():
    torch.manual_seed(0)
    X, w = torch.randn(50, 3), torch.nn.Parameter(torch.zeros(3))
    y = X @ torch.tensor([1.0, -2.0, 0.5])
    return X, y, w, {"mse": torch.optim.SGD([w], lr=0.1)}


def test_run_epochs_reports_on_its_cadence_with_an_eta_and_stops_when_asked():
    X, y, w, optimizers = _linear_problem()
    ctx = Context(seed=0, device="cpu")

    def step(batch):
        return {"mse": ((X[batch] @ w - y[batch]) ** 2).mean()}

    done = run_epochs(ctx, "fit", 7, Batches(50, 16), step, optimizers, report_every=3, note="x")
    assert done == 7 and [h["step"] for h in ctx.history] == [3, 6, 7]
    assert all("eta_s" in h and h["note"] == "x" for h in ctx.history)
    assert ctx.history[-1]["losses"]["mse"] < ctx.history[0]["losses"]["mse"]
    steps = []
    done = run_epochs(ctx, "fit", 7, Batches(50, 16), step, optimizers,
                      after_step=lambda terms: steps.append(1) or len(steps) == 5)
    assert done == 2 and len(steps) == 5 and ctx.history[-1]["step"] == 2  # the stop is reported
    assert run_epochs(ctx, "fit", 7, Batches(50, 16), step, optimizers,
                      before_epoch=lambda done: done == 4) == 4


def test_run_iterations_refreshes_on_its_interval_and_at_maxiter():
    X, y, w, optimizers = _linear_problem()
    ctx = Context(seed=0, device="cpu")
    refreshed = []

    def refresh(iteration):
        refreshed.append(iteration)
        return False, {"seen": iteration}

    last = run_iterations(ctx, "fit", 10, Batches(50, 16, "in_order"),
                          lambda b: {"mse": ((X[b] @ w - y[b]) ** 2).mean()}, optimizers,
                          refresh_every=4, refresh=refresh)
    assert last == 10 and refreshed == [0, 4, 8, 10]
    assert [h.get("losses") is None for h in ctx.history] == [True, False, False, False]


def test_every_step_checks_for_cancellation():
    X, y, w, optimizers = _linear_problem()
    calls = []
    ctx = Context(seed=0, device="cpu", is_cancelled=lambda: len(calls) >= 2)

    def step(batch):
        calls.append(1)
        time.sleep(0.02)  # 50 steps outlast the 0.5 s poll throttle
        return {"mse": ((X[batch] @ w - y[batch]) ** 2).mean()}

    with pytest.raises(JobCancelled):
        run_epochs(ctx, "fit", 1, Batches(50, 1), step, optimizers)
    assert len(calls) < 50  # inside the first epoch, not at its report
