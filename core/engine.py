"""The training engine: every training phase in core/ runs through `run_epochs` or
`run_iterations`.

As in Lightning, a method supplies what one step computes: a function of a batch (row
indices into the phase's data, or a slice) that returns its named loss terms as tensors,
"total" among them. The engine owns the rest: the batches (shuffled or in order, never
empty), zero_grad/backward/step, the sample-weighted means of the terms over each report
interval, the report cadence with its ETA, the cancellation check before every step.
A term whose name starts with "_" is minimised but not reported (a summed objective whose
per-sample value is reported under another name). A full-batch phase (GCN epochs, DSC-Net's
self-expression) is `batch_size=None`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

import torch

from core.interface import Context

Batch = torch.Tensor | slice  # the rows of one step
Terms = dict[str, torch.Tensor]  # named loss terms of one step; "total" is the one minimised
Step = Callable[[Batch], Terms]


@dataclass
class Batches:
    """How a phase walks its n rows. 'shuffled': a fresh permutation every pass (drawn from
    `generator`, or from torch's global one when None); 'in_order': consecutive slices. The
    last batch of a pass is short, or dropped with `drop_last` (or when under `min_size`); a
    batch is never empty.
    `size=None`: every step takes the whole data, and no permutation is drawn."""

    n: int
    size: int | None
    order: Literal["shuffled", "in_order"] = "shuffled"
    generator: torch.Generator | None = None
    device: str | None = None
    drop_last: bool = False
    min_size: int = 1  # a shorter last batch is skipped (ACAI needs pairs)

    def one_pass(self) -> Iterator[Batch]:
        if self.size is None:
            yield slice(None)
            return
        stop = self.n - max(self.size if self.drop_last else self.min_size, 1) + 1
        if self.order == "in_order":
            for start in range(0, stop, self.size):
                yield slice(start, min(start + self.size, self.n))
            return
        if self.generator is None:
            order = torch.randperm(self.n, device=self.device)
        else:
            order = torch.randperm(self.n, generator=self.generator).to(self.device)
        for start in range(0, stop, self.size):
            yield order[start:start + self.size]

    def forever(self) -> Iterator[Batch]:
        """Passes one after another (iteration-based phases)."""
        while True:
            yielded = False
            for batch in self.one_pass():
                yielded = True
                yield batch
            if not yielded:
                raise ValueError(f"batch size {self.size} leaves no batch in {self.n} rows")

    def rows(self, batch: Batch) -> int:
        return len(range(self.n)[batch]) if isinstance(batch, slice) else len(batch)


class Clock:
    """Time left in a run of `total` units (epochs or iterations), from the pace so far.
    Phases that follow each other (a warm-up, then training) can share one."""

    def __init__(self, total: int):
        self.total, self.start = total, time.perf_counter()

    def eta(self, done: int) -> float:
        return round((time.perf_counter() - self.start) / max(done, 1) * (self.total - done), 1)


@dataclass
class LossMeans:
    """Sample-weighted means of the step terms since the last `pop`. The sums stay on the
    terms' device (in float64) until `pop`, so a step never waits for the GPU to read a loss."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    rows: int = 0

    def add(self, terms: Terms, rows: int) -> None:
        for key, value in terms.items():
            if key.startswith("_"):
                continue
            weighted = value.detach().double() * rows
            self.sums[key] = self.sums[key] + weighted if key in self.sums else weighted
        self.rows += rows

    def pop(self) -> dict[str, float] | None:
        means = {k: v.item() / self.rows for k, v in self.sums.items()} if self.rows else None
        self.sums, self.rows = {}, 0
        return means


def optimise(terms: Terms, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """One update per optimiser, each on the term it minimises (its key in `terms`). With
    more than one (an adversarial pair), each backward reaches only its own parameters."""
    if len(optimizers) == 1:
        ((key, optimizer),) = optimizers.items()
        optimizer.zero_grad(set_to_none=True)
        terms[key].backward()
        optimizer.step()
        return
    for key, optimizer in optimizers.items():
        optimizer.zero_grad(set_to_none=True)
        terms[key].backward(inputs=[w for group in optimizer.param_groups for w in group["params"]])
        optimizer.step()


def run_epochs(ctx: Context, phase: str, epochs: int, batches: Batches, step: Step,
               optimizers: dict[str, torch.optim.Optimizer], *, report_every: int = 1,
               clock: Clock | None = None, clock_offset: int = 0,
               before_epoch: Callable[[int], bool] | None = None,
               after_step: Callable[[Terms], bool] | None = None,
               describe: Callable[[dict[str, float]], dict[str, Any]] | None = None,
               **fields: Any) -> int:
    """Train for `epochs` passes; returns the number of epochs completed.

    before_epoch(done): runs before each epoch (a target refresh); True stops the phase.
    after_step(terms): runs after each update; True ends the phase after this epoch's report.
    A report (the interval's loss means, `fields`, the ETA and whatever `describe(means)`
    adds; it may add to the means) follows every `report_every`-th epoch, the last one, and
    a stop. `clock_offset`: units of a shared `clock` already done by earlier phases."""
    clock = clock or Clock(epochs)
    means = LossMeans()
    for epoch in range(1, epochs + 1):
        if before_epoch is not None and before_epoch(epoch - 1):
            return epoch - 1
        stop = False
        steps = 0
        for batch in batches.one_pass():
            ctx.check_cancelled()
            terms = step(batch)
            optimise(terms, optimizers)
            means.add(terms, batches.rows(batch))
            steps += 1
            if after_step is not None and after_step(terms):
                stop = True
                break
        if steps == 0:
            raise ValueError(f"batch size {batches.size} is larger than the data "
                             f"({batches.n} rows)")
        if epoch % report_every == 0 or epoch == epochs or stop:
            losses = means.pop()
            extra = describe(losses) if describe is not None else {}
            ctx.report(phase, epoch, epochs, losses=losses, eta_s=clock.eta(clock_offset + epoch),
                       **fields, **extra)
        if stop:
            return epoch
    return epochs


def run_iterations(ctx: Context, phase: str, maxiter: int, batches: Batches, step: Step,
                   optimizers: dict[str, torch.optim.Optimizer], *, refresh_every: int,
                   refresh: Callable[[int], tuple[bool, dict[str, Any]]]) -> int:
    """Train for at most `maxiter` steps over `batches.forever()`; returns the last iteration.

    refresh(iteration) runs at iteration 0, every `refresh_every` iterations and at maxiter,
    before that iteration's step (DEC's target update, R-DC's neighbourhoods); it returns
    (stop, report fields). Each refresh is reported with the loss means since the last."""
    clock = Clock(maxiter)
    means = LossMeans()
    stream = batches.forever()
    for iteration in range(maxiter + 1):
        ctx.check_cancelled()
        if iteration % refresh_every == 0 or iteration == maxiter:
            losses = means.pop()
            stop, extra = refresh(iteration)
            ctx.report(phase, iteration, maxiter, losses=losses, eta_s=clock.eta(iteration),
                       **extra)
            if stop or iteration == maxiter:
                return iteration
        batch = next(stream)
        terms = step(batch)
        optimise(terms, optimizers)
        means.add(terms, batches.rows(batch))
    return maxiter
