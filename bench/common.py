"""Shared by the benchmark scripts: where the data is, and running `deepclust run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = (
    ROOT / "bench" / "cache"
)  # pretrained autoencoder weights shared between methods of one seed


def data_path(name: str) -> Path:
    folder = Path(os.environ.get("DEEPCLUST_DATA", ROOT.parent / "shared" / "data"))
    path = folder / f"{name}.npz"
    if not path.exists():
        sys.exit(
            f"{path} not found: set DEEPCLUST_DATA to the folder with the benchmark .npz files"
        )
    return path


def run_cli(
    data: Path,
    method: str,
    k: int,
    params: dict,
    seed: int,
    results: Path,
    device: str | None = None,
    extra: list[str] | None = None,
    cache_dir: Path | None = CACHE,
) -> dict:
    """One `deepclust run`; its JSON line is appended to `results` by the CLI itself.
    `extra`: more CLI arguments (e.g. --embedding-out); `cache_dir` None: pretrain afresh."""
    command = [
        sys.executable,
        "-m",
        "core.cli",
        "run",
        str(data),
        "--method",
        method,
        "--clusters",
        str(k),
        "--params",
        json.dumps(params),
        "--seed",
        str(seed),
        "--results",
        str(results),
        "--quiet",
    ]
    if cache_dir is not None:
        command += ["--cache-dir", str(cache_dir)]
    if device:
        command += ["--device", device]
    command += extra or []
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


SUMMARY_KEYS = ("dataset", "seed", "acc", "nmi", "ari", "wall_s", "peak_mb", "device")


def summary(record: dict, keys: tuple[str, ...] = SUMMARY_KEYS) -> dict:
    """The fields of a run's JSON record that the bench scripts print as they go."""
    return {k: record[k] for k in keys}
