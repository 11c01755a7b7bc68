"""The one interface every clustering method implements.

A method is a class with a pydantic `Params` model (every knob with the paper's default),
an `accepts` spec (which data it can take) and `fit`. `fit` gets the data without labels
and a `Context` that carries device, seed, progress reporting and cancellation.
"""
from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

InputKind = Literal["vectors", "images"]

# Shared bounds of method parameters (each Params field states its own; these are the common ones).
# The widest layer any implemented paper uses is 2,048 (ResNet-50 features; DEC's MLP: 2,000):
# 100,000 leaves 50x room for wide inputs. Together with the depth cap it bounds a model's size; the
# memory check (Method.memory_bytes) then refuses what a worker cannot hold.
MAX_LAYER_WIDTH = 100_000
LayerWidth = Annotated[int, Field(ge=1, le=MAX_LAYER_WIDTH)]
# Loss weights: the largest any paper or preset uses is 150 (DSC-Net's COIL20 lambda2).
MAX_LOSS_WEIGHT = 1e6
# How often Context.check_cancelled really asks the caller; inner loops may call it per step.
CANCEL_POLL_S = 0.5


class JobCancelled(Exception):
    """Raised inside `fit` (by `Context.report` or `Context.check_cancelled`) when the caller
    asked to stop."""


class TrainingFailed(Exception):
    """Raised inside `fit` when training ended where no clustering can follow (the network
    collapsed or diverged). The message says what happened and which parameter to change."""


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown keys and non-finite numbers are refused,
    and every numeric field is bounded (tests/core/test_params.py walks every method's schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass(frozen=True)
class InputSpec:
    """Which data a method takes. Images are (n, H, W) or (n, H, W, C)."""

    kinds: tuple[InputKind, ...] = ("vectors", "images")
    max_n: int | None = None  # methods with an n x n matrix refuse larger data
    min_n: int = 2
    finds_n_clusters: bool = False  # True: n_clusters may be omitted and the method finds it (R-DC)

    def problem(self, shape: tuple[int, ...], n_clusters: int | None) -> str | None:
        """Why data of `shape` cannot be clustered into `n_clusters`, or None if it can."""
        n = shape[0]
        kind = "images" if len(shape) in (3, 4) else "vectors"
        if kind not in self.kinds:
            return f"this method takes {' or '.join(self.kinds)}, got {kind} of shape {list(shape)}"
        if n < self.min_n:
            return f"this method needs at least {self.min_n} samples, got {n}"
        if self.max_n is not None and n > self.max_n:
            return (f"this method holds an n x n matrix and accepts at most {self.max_n} samples, "
                    f"got {n}")
        if n_clusters is None:
            return None if self.finds_n_clusters else (
                "n_clusters is required: this method cannot find it")
        if not 2 <= n_clusters <= n:
            return f"n_clusters must be between 2 and the number of samples ({n}), got {n_clusters}"
        return None


@dataclass
class ClusteringResult:
    """What `fit` returns. Per-sample outputs are arrays; `diagnostics` holds only small JSON
    values (scalars, short lists, nested dicts of those), kept with the job's metrics; any
    other array goes to `artifacts`, stored as a blob and downloaded on its own, so no
    n-long list ever lands in a job's JSON."""

    labels: np.ndarray  # (n,) int64 cluster ids 0..K-1
    confidence: np.ndarray  # (n,) float32 in [0, 1]: the assignment's soft probability
    embedding: np.ndarray  # (n, d') float32: the space the clusters live in
    diagnostics: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Context:
    """What a method needs from whoever runs it.

    `on_progress(record)` receives every progress record; `is_cancelled()` is polled at
    each report and, at most every CANCEL_POLL_S, by `check_cancelled()`, which the methods
    call inside their inner loops (per mini-batch, kNN chunk, k-means restart);
    `monitor(labels)` lets the caller evaluate intermediate predictions against labels the
    method never sees (the worker passes one when the dataset has labels). Records are also
    kept in `history`.
    """

    seed: int = 0
    device: str | None = None  # None: CUDA when available, else CPU
    on_progress: Callable[[dict], None] | None = None
    is_cancelled: Callable[[], bool] | None = None
    monitor: Callable[[np.ndarray], dict] | None = None
    cache_dir: str | None = None  # where pretrained weights may be reused (benchmarks)
    history: list[dict] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter)
    _last_poll: float = -math.inf
    _phase: str = "start"

    def __post_init__(self) -> None:
        if self.device is None:
            import torch  # imported here: the Celery parent process must never touch CUDA

            self.device = "cuda" if torch.cuda.is_available() else "cpu"

    def report(self, phase: str, step: int, total: int, losses: dict[str, float] | None = None,
               labels: np.ndarray | None = None, **extra: Any) -> None:
        """Record one progress step; raise JobCancelled if the caller asked to stop."""
        record: dict[str, Any] = {
            "phase": phase, "step": int(step), "total": int(total),
            "elapsed_s": round(time.perf_counter() - self._t0, 3),
        }
        if losses:
            record["losses"] = {k: _finite(v) for k, v in losses.items()}
        for key, value in extra.items():
            record[key] = _finite(value) if isinstance(value, float) else value
        if labels is not None and self.monitor is not None:
            record["metrics"] = self.monitor(labels)
        self.history.append(record)
        self._phase = phase
        if self.on_progress is not None:
            self.on_progress(record)
        if self.is_cancelled is not None and self.is_cancelled():
            raise JobCancelled(f"cancelled during {phase} at step {step}/{total}")

    def check_cancelled(self) -> None:
        """Raise JobCancelled if the caller asked to stop. Cheap enough for every step of an inner
        loop: is_cancelled() is asked at most every CANCEL_POLL_S seconds."""
        if self.is_cancelled is None:
            return
        now = time.perf_counter()
        if now - self._last_poll < CANCEL_POLL_S:
            return
        self._last_poll = now
        if self.is_cancelled():
            raise JobCancelled(f"cancelled during {self._phase} (after its last progress step)")


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class Method(ABC):
    """Base class of every registered clustering method."""

    name: ClassVar[str]
    summary: ClassVar[str]
    reference: ClassVar[str]
    accepts: ClassVar[InputSpec] = InputSpec()
    Params: ClassVar[type[MethodParams]]
    # To help a user choose (GET /methods): the data it suits and its typical cost, both from
    # the benchmarks (bench/results), in a line each.
    suits: ClassVar[str]
    cost: ClassVar[str]

    @abstractmethod
    def fit(self, X: np.ndarray, n_clusters: int | None, params: MethodParams,
            ctx: Context) -> ClusteringResult:
        """Cluster X (n, ...) into n_clusters groups. X is float32; labels never enter here.
        n_clusters is None only for methods whose `accepts.finds_n_clusters` is True."""

    @classmethod
    def memory_bytes(cls, shape: tuple[int, ...], n_clusters: int | None,
                     params: MethodParams) -> int | None:
        """A conservative peak of the bytes `fit` needs for data of `shape` (n first): parameters,
        optimiser state, a batch's activations, the data on the device and any n x k / n x n / kNN
        buffers. The API and the CLI refuse a job whose estimate exceeds the worker's budget
        (core.resources.job_memory_problem). None: data of this kind is refused anyway."""
        return None

    # The data describe() sizes its published limit for: 32 x 32 grey images, 10 clusters.
    _REFERENCE_SHAPE, _REFERENCE_K = (1, 32, 32), 10

    @classmethod
    def describe(cls, memory_budget_bytes: int | None = None) -> dict[str, Any]:
        accepts: dict[str, Any] = {"kinds": list(cls.accepts.kinds), "min_n": cls.accepts.min_n,
                                   "max_n": cls.accepts.max_n,
                                   "finds_n_clusters": cls.accepts.finds_n_clusters}
        params = cls.Params()
        if memory_budget_bytes and cls.memory_bytes(cls._REFERENCE_SHAPE, 2, params) is not None:
            from core.resources import gib, largest_n

            limit = largest_n(lambda n: cls.memory_bytes((n, *cls._REFERENCE_SHAPE[1:]),
                                                         cls._REFERENCE_K, params),
                              memory_budget_bytes)
            accepts["max_n"] = min(limit, cls.accepts.max_n or limit)
            accepts["max_n_basis"] = (f"the memory estimate for 32x32 images, {cls._REFERENCE_K} "
                                      "clusters and default params within a memory budget of "
                                      f"{gib(memory_budget_bytes)}")
        return {
            "name": cls.name,
            "summary": cls.summary,
            "reference": cls.reference,
            "suits": cls.suits,
            "cost": cls.cost,
            "accepts": accepts,
            "params_schema": cls.Params.model_json_schema(),
        }
