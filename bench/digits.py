"""One method on scikit-learn's digits (1797 8x8 images, the data the CI tests use), several
seeds and parameter variants, against k-means on the pixels: how the CI settings were chosen.

    python bench/digits.py --method rdc --seeds 0 1 2 3 --params '{"patience": 10}' \
        --variant '{"phase2": "none"}'
    python bench/digits.py --method iciclegcn --params '{"mode": "features"}' \
        --variant '{"reconstruction": "mean"}'
    python bench/digits.py --method rdc --threads 2 --history-dir bench/results/digits_history ...

Each variant is the base params updated by it; the base runs too unless --skip-base. Runs
of one seed share pretrained weights through bench/cache where the method caches them.
Every run appends its CLI line to bench/results/digits.jsonl. `--threads` fixes torch's CPU
threads (results depend on it: other float reductions); `--history-dir` keeps each run's history
with the ACC of every intermediate labelling (e.g. R-DC's refreshes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from common import CACHE, RESULTS, run_cli


def digits_npz():
    from sklearn.datasets import load_digits

    path = CACHE / "digits.npz"
    if not path.exists():
        data = load_digits()
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, X=data.images.astype(np.float32), y=data.target.astype(np.int64))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--method", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--params", type=json.loads, default={}, help="base params as JSON")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=json.loads,
        help="params as JSON that update the base (repeatable)",
    )
    parser.add_argument("--skip-base", action="store_true")
    parser.add_argument("--no-kmeans", action="store_true", help="skip the k-means reference run")
    parser.add_argument("--device")
    parser.add_argument(
        "--threads", type=int, help="torch CPU threads (default: torch's, the core count)"
    )
    parser.add_argument(
        "--history-dir", type=Path, help="write each run's history here as JSON lines"
    )
    parser.add_argument("--results", default=str(RESULTS / "digits.jsonl"))
    args = parser.parse_args()

    data = digits_npz()
    runs = ([] if args.skip_base else [args.params]) + [{**args.params, **v} for v in args.variant]
    for seed in args.seeds:
        reference = [] if args.no_kmeans else [("kmeans", {})]
        for method, params in reference + [(args.method, p) for p in runs]:
            extra = ["--threads", str(args.threads)] if args.threads else []
            if args.history_dir:
                args.history_dir.mkdir(parents=True, exist_ok=True)
                tag = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
                extra += [
                    "--history-out",
                    str(
                        args.history_dir / f"{method}-seed{seed}-threads{args.threads}-{tag}.jsonl"
                    ),
                ]
            record = run_cli(data, method, 10, params, seed, args.results, args.device, extra)
            print(
                json.dumps(
                    {
                        "method": method,
                        "seed": seed,
                        "acc": round(record["acc"], 3),
                        "nmi": round(record["nmi"], 3),
                        "wall_s": record["wall_s"],
                        "params": params,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
