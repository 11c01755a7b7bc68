"""The application layer: how one clustering job is checked and run, shared by the API
(api/routes/jobs.py), the worker (worker/tasks.py) and the command line (core/cli.py).

    spec = job_spec("idec", {"gamma": 0.1}, n_clusters=10, seed=0)   # method and params
    check_data(spec, X.shape, budget)                                 # the data and memory
    outcome = run_job(spec, X, y, spec.context(on_progress=print))    # fit, metrics, provenance

Every refusal is a `JobRejected` naming the input at fault; the API answers it with a 422,
the CLI with its message. Nothing here touches a database or the web.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from core.interface import ClusteringResult, Context, Method, MethodParams
from core.registry import get_method, method_names

# The inputs a refusal can name; the API maps "data" to its dataset_id.
JobField = Literal["method", "params", "n_clusters", "data"]

# `method: "auto"`: the method is picked from the data (pick_method) once its shape is known,
# and the job is stored under the picked name, with the reason in its params under PICKED_BY.
AUTO = "auto"
PICKED_BY = "picked_by"
# Below this many samples an autoencoder has too little to learn from: k-means does as well.
AUTO_MIN_DEEP_N = 500
# Above this, UMAP's kNN graph and its seeded one-thread layout cost more than the autoencoder
# (minutes per 100k on a CPU); AE + k-means scales linearly instead.
AUTO_MAX_UMAP_N = 200_000


class JobRejected(ValueError):
    """A job that cannot run. `errors` are pydantic-shaped ({loc, msg, type}), each `loc`
    relative to `field`; str() is one message for a person."""

    def __init__(self, field: JobField, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.field = field
        self.errors = errors or [{"loc": [], "msg": message, "type": "value_error"}]


@dataclass(frozen=True)
class JobSpec:
    """A job whose method exists and whose params are valid (every default filled in)."""

    method_name: str
    method: Method | None  # None only for AUTO, until check_data picks one
    params: MethodParams | None
    n_clusters: int | None
    seed: int
    picked_by: str | None = None  # why AUTO picked this method

    def stored_params(self) -> dict:
        """The params as the job stores them: every default, and the pick's reason."""
        stored = self.params.model_dump(mode="json")
        return stored | ({PICKED_BY: self.picked_by} if self.picked_by else {})

    def context(self, **kwargs: Any) -> Context:
        """The Context to run this job in, with its seed."""
        return Context(seed=self.seed, **kwargs)


@dataclass
class JobOutcome:
    """What a successful run produced: the method's result, its metrics (with the method's
    diagnostics merged in) and where it ran."""

    result: ClusteringResult
    metrics: dict[str, Any]
    versions: dict[str, Any]
    device: str
    fit_s: float  # the fit alone (the worker's wall_s also counts loading and storing)
    peak_mb: float


def pick_method(shape: tuple[int, ...], n_clusters: int | None) -> tuple[str, str]:
    """The method AUTO runs on data of `shape` (n first), and why. N2D has the best ACC and NMI
    on USPS and digits and the paper's figures on MNIST, at a cost near ae_kmeans'
    (bench/README.md), so it is the default wherever an autoencoder has enough data and UMAP
    stays cheap."""
    n, features = shape[0], math.prod(shape[1:])
    if n_clusters is None:
        return "rdc", "auto: n_clusters omitted; rdc finds it (DBSCAN on its codes)"
    if n < AUTO_MIN_DEEP_N:
        return "kmeans", f"auto: {n} samples (< {AUTO_MIN_DEEP_N}) are too few for an autoencoder"
    if features <= 3:
        return "kmeans", f"auto: {features} features leave an autoencoder nothing to compress"
    if n > AUTO_MAX_UMAP_N:
        return "ae_kmeans", f"auto: {n} samples (> {AUTO_MAX_UMAP_N}): UMAP would dominate"
    return "n2d", f"auto: {n} samples of {features} features: n2d (autoencoder, UMAP, GMM)"


def job_spec(method_name: str, raw_params: dict, n_clusters: int | None, seed: int) -> JobSpec:
    """Look the method up and validate its params. AUTO takes no params; its method is picked
    by check_data."""
    if method_name == AUTO:
        if raw_params:
            raise JobRejected("params", "method 'auto' takes no params: the picked method runs "
                                        "with its defaults (name a method to set them)")
        return JobSpec(AUTO, None, None, n_clusters, seed)
    if method_name not in method_names():
        raise JobRejected("method", f"unknown method {method_name!r}; "
                                    f"known: {', '.join([*method_names(), AUTO])}")
    method = get_method(method_name)
    try:
        params = method.Params.model_validate(raw_params)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_context=False)]
        raise JobRejected("params", f"bad params for {method_name}: {exc}", errors) from None
    return JobSpec(method_name, method, params, n_clusters, seed)


def stored_job_spec(method_name: str, stored_params: dict, n_clusters: int | None,
                    seed: int) -> JobSpec:
    """The spec of a job as stored (the worker): its params without the pick's reason."""
    params = {k: v for k, v in stored_params.items() if k != PICKED_BY}
    return replace(job_spec(method_name, params, n_clusters, seed),
                   picked_by=stored_params.get(PICKED_BY))


def check_data(spec: JobSpec, shape: tuple[int, ...], budget: tuple[int, str]) -> JobSpec:
    """Refuse data the method does not take, and a job whose memory estimate exceeds
    `budget`: (bytes, where that figure comes from, for the message). Returns the spec to
    run: for AUTO, the picked method's."""
    from core.resources import job_memory_problem

    shape = tuple(shape)
    if spec.method_name == AUTO:
        name, why = pick_method(shape, spec.n_clusters)
        spec = replace(job_spec(name, {}, spec.n_clusters, spec.seed), picked_by=why)
    problem = spec.method.accepts.problem(shape, spec.n_clusters)
    if problem:
        field = "n_clusters" if problem.startswith("n_clusters") else "data"
        raise JobRejected(field, f"{spec.method_name}: {problem}")
    problem = job_memory_problem(spec.method, shape, spec.n_clusters, spec.params, *budget)
    if problem:  # the model, the data or both would not fit
        field = "params" if "makes it large" in problem else "data"
        raise JobRejected(field, f"{spec.method_name}: {problem}")
    return spec


def prepare_job(method_name: str, raw_params: dict, n_clusters: int | None, seed: int,
                shape: tuple[int, ...], budget: tuple[int, str]) -> JobSpec:
    """job_spec, then check_data: every check a job passes before it runs."""
    return check_data(job_spec(method_name, raw_params, n_clusters, seed), shape, budget)


def run_job(spec: JobSpec, X: np.ndarray, y: np.ndarray | None, ctx: Context) -> JobOutcome:
    """Fit, then score (external metrics only when `y` is given) and record provenance.
    JobCancelled from the fit passes through."""
    from core.metrics import result_metrics
    from core.provenance import library_versions, peak_memory_mb

    started = time.perf_counter()
    result = spec.method.fit(X, spec.n_clusters, spec.params, ctx)
    fit_s = time.perf_counter() - started
    metrics = result_metrics(result.labels, result.embedding, spec.n_clusters, y, seed=spec.seed)
    metrics.update(result.diagnostics)
    return JobOutcome(result=result, metrics=metrics, versions=library_versions(),
                      device=ctx.device, fit_s=fit_s, peak_mb=peak_memory_mb(ctx.device))
