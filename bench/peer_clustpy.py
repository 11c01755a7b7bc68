"""The peer library: ClustPy's DEC, IDEC and DCN against ours, on the same data, seeds, autoencoder
architecture (d-500-500-2000-10) and pretraining (50 Adam epochs at 1e-3, batch 256, as the
DEC-keras USPS preset in bench/baselines.py). ClustPy keeps its own clustering phase
(epoch-based, Adam 1e-4, 150 epochs), which is how users would run it.

    make peer-env      # installs clustpy 0.0.3 into its own folder, once
    PYTHONPATH=$(readlink .venv)-clustpy .venv/bin/python bench/peer_clustpy.py \
        --datasets usps --seeds 0 1 2
    ... bench/peer_clustpy.py --methods clustpy_dcn     # beside our dcn (bench/n2d_dcn.py)

Each run is a fresh process (so peak memory is its own) and appends a JSON line in the
format of the other benchmarks to bench/results/peer_clustpy.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

from common import RESULTS, ROOT, data_path

sys.path.insert(0, str(ROOT))


def run_one(dataset: str, method: str, seed: int, pretrain_epochs: int, results: str) -> None:
    import clustpy
    import torch
    from clustpy.deep import DCN, DEC, IDEC

    from core.io import read_dataset
    from core.metrics import evaluate
    from core.provenance import library_versions, peak_memory_mb
    from core.training import as_vectors

    data = read_dataset(data_path(dataset))
    X = as_vectors(data.X, "minmax")
    params = {
        "pretrain_epochs": pretrain_epochs,
        "pretrain_optimizer_params": {"lr": 1e-3},
        "batch_size": 256,
        "embedding_size": 10,
        "clustering_epochs": 150,
        "clustering_optimizer_params": {"lr": 1e-4},
    }
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # DCN keeps ClustPy's own loss weights, as users would run it (0.0.3: lambda 0.05 on a
    # mean squared error; today's: lambda 0.1 on a per-sample sum of squares, as our dcn)
    model = {"clustpy_dec": DEC, "clustpy_idec": IDEC, "clustpy_dcn": DCN}[method](
        n_clusters=10, random_state=seed, device=torch.device(device), **params
    )
    started = time.perf_counter()
    model.fit(X)
    wall_s = time.perf_counter() - started
    scores = evaluate(data.y, model.labels_)
    record = {
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "n": len(X),
        **scores,
        "wall_s": round(wall_s, 3),
        "peak_mb": peak_memory_mb(device),
        "device": device,
        "versions": {**library_versions(), "clustpy": getattr(clustpy, "__version__", "0.0.3")},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": params,
    }
    with open(results, "a") as out:
        out.write(json.dumps(record) + "\n")
    print(
        json.dumps(
            {k: record[k] for k in ("method", "dataset", "seed", "acc", "nmi", "ari", "wall_s")}
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["usps"])
    parser.add_argument("--methods", nargs="+", default=["clustpy_dec", "clustpy_idec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=50)
    parser.add_argument("--results", default=str(RESULTS / "peer_clustpy.jsonl"))
    parser.add_argument(
        "--one", nargs=3, metavar=("DATASET", "METHOD", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.one:
        run_one(args.one[0], args.one[1], int(args.one[2]), args.pretrain_epochs, args.results)
        return
    for dataset in args.datasets:
        for seed in args.seeds:
            for method in args.methods:
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        dataset,
                        method,
                        str(seed),
                        "--pretrain-epochs",
                        str(args.pretrain_epochs),
                        "--results",
                        args.results,
                    ],
                    check=True,
                )


if __name__ == "__main__":
    main()
