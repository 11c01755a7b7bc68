"""Bounded, finite parameters for every method, and the memory check every job passes (#15)."""

import ctypes
import glob
import json
import os
import subprocess
import sys

import pytest

from core.interface import Context
from core.registry import _REGISTRY, _load_all, get_method, list_methods
from core.resources import job_memory_problem
from tests.conftest import ROOT, npz_bytes

_load_all()
METHODS = sorted(_REGISTRY)


def _numeric_schemas(schema: dict, path: str):
    """(path, schema) of every number/integer in a property's schema: through anyOf, array items
    and tuples."""
    if schema.get("type") in ("number", "integer"):
        yield path, schema
    for option in schema.get("anyOf", []):
        yield from _numeric_schemas(option, path)
    if schema.get("type") == "array":
        yield path + "[]", {"array": schema}
        for i, item in enumerate(schema.get("prefixItems", [])):
            yield from _numeric_schemas(item, f"{path}[{i}]")
        if isinstance(schema.get("items"), dict):
            yield from _numeric_schemas(schema["items"], path + "[*]")


@pytest.mark.parametrize("name", METHODS)
def test_every_numeric_parameter_is_bounded_in_the_published_schema(name):
    schema = _REGISTRY[name].Params.model_json_schema()
    found = 0
    for field, prop in schema["properties"].items():
        for path, numeric in _numeric_schemas(prop, field):
            found += 1
            if "array" in numeric:  # a list of numbers: its length is capped too
                assert "maxItems" in numeric["array"], (name, path)
                continue
            assert {"minimum", "exclusiveMinimum"} & set(numeric), (name, path, numeric)
            assert {"maximum", "exclusiveMaximum"} & set(numeric), (name, path, numeric)
    assert found >= 2  # the walk reached the fields
    assert _REGISTRY[name].Params.model_config["allow_inf_nan"] is False


def test_the_bounds_admit_every_parameter_set_the_benchmarks_and_readme_use():
    checked = 0
    for path in glob.glob(os.path.join(ROOT, "bench", "results", "*.jsonl")):
        for line in open(path):
            record = json.loads(line)
            if record.get("method") in _REGISTRY and isinstance(record.get("params"), dict):
                _REGISTRY[record["method"]].Params.model_validate(record["params"])
                checked += 1
    assert checked > 100
    for name in METHODS:  # and the papers' defaults
        _REGISTRY[name].Params()
    get_method("idec").Params.model_validate({"update_interval": 30})  # the README's example


def test_every_method_fits_digits_with_its_defaults_and_publishes_a_max_n():
    budget = 2 << 30
    for name in METHODS:
        method = get_method(name)
        shape = (1797, 8, 8)
        assert method.memory_bytes(shape, 10, method.Params()) > 1797 * 64 * 4, name
        assert job_memory_problem(method, shape, 10, method.Params(), budget, "2 GiB") is None, name
    described = {m["name"]: m["accepts"] for m in list_methods(budget)}
    dscnss = get_method("dscnss")
    max_n = described["dscnss"]["max_n"]  # the n x n method: thousands, not millions
    assert 1000 < max_n < 20000
    assert dscnss.memory_bytes((max_n, 32, 32), 10, dscnss.Params()) <= budget
    assert dscnss.memory_bytes((max_n + 1, 32, 32), 10, dscnss.Params()) > budget
    assert all(
        described[name]["max_n"] > 0 and "memory estimate" in described[name]["max_n_basis"]
        for name in METHODS
    )


def test_cli_runs_the_same_memory_check(tmp_path, digits):
    X, y = digits
    data = tmp_path / "digits.npz"
    data.write_bytes(npz_bytes(X=X, y=y))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "run",
            str(data),
            "--method",
            "idec",
            "-k",
            "10",
            "--params",
            '{"hidden_dims": [100000, 100000, 100000, 100000]}',
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "GiB" in done.stderr and "hidden_dims=" in done.stderr, (
        done.stderr
    )
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- estimates against measured peaks


def _peak_rss_during(fn) -> int:
    """Bytes the resident set grew to above its level at the start of fn() (Linux: VmHWM reset)."""
    ctypes.CDLL("libc.so.6").malloc_trim(
        0
    )  # freed heap back to the system, so reuse cannot hide growth
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    base = status("VmRSS:")
    fn()
    return status("VmHWM:") - base


TINY = {  # a short run of every phase, default architectures
    "kmeans": ("vectors", {"n_init": 2}),
    "dec": ("vectors", {"pretrain_epochs": 1, "maxiter": 20, "n_init": 2}),
    "dccf": ("vectors", {"pretrain_epochs": 1, "epochs": 1, "n_init": 2}),
    "dcn": ("vectors", {"pretrain_epochs": 1, "epochs": 1, "n_init": 2}),
    "n2d": ("vectors", {"pretrain_epochs": 1}),
    "dscnss": (
        "images",
        {"pretrain_epochs": 1, "j1_epochs_first": 2, "j1_epochs": 1, "rounds": 1, "j2_epochs": 2},
    ),
    "iciclegcn": ("vectors", {"features_pretrain_epochs": 1, "stage2_epochs": 2, "n_init": 2}),
}


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's VmHWM reset"
)
@pytest.mark.parametrize("name", sorted(TINY))
def test_memory_estimate_bounds_the_measured_peak(name, digits):
    import torch

    kind, params = TINY[name]
    X = digits[0] if kind == "images" else digits[0].reshape(len(digits[0]), -1)
    method, p = get_method(name), get_method(name).Params(**params)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        method.fit(
            X, 10, p, Context(seed=0, device="cpu")
        )  # warm-up: libraries' lazy state is not the job's
        peak = _peak_rss_during(lambda: method.fit(X, 10, p, Context(seed=0, device="cpu")))
    finally:
        torch.set_num_threads(threads)
    estimate = method.memory_bytes(X.shape, 10, p)
    print(f"{name}: peak {peak / 2**20:.0f} MiB, estimate {estimate / 2**20:.0f} MiB")
    assert peak > 0 and estimate >= peak, (peak, estimate)
    assert estimate < 10 * peak + (64 << 20)  # an upper bound, not a refusal of everything
