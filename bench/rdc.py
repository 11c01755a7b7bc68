"""R-DC on BreastMNIST, USPS and MNIST with its ablation (seed paper, Tables 3-5).

    python bench/rdc.py --datasets breastmnist --seeds 0 1 2
    python bench/rdc.py --datasets usps --seeds 0 1 2 --params '{"pretrain_epochs": 20}'
    python bench/rdc.py --table     # the table of bench/README.md

Per dataset and seed, three runs share one ACAI-pretrained autoencoder (bench/cache):
phase2 'none' (phase 1 only = AE+k-means on the ACAI weights; it pretrains and caches),
'proximity' (R-DC) and 'dec' (phase 1 + DEC self-training). Each run appends its CLI line
to bench/results/rdc.jsonl. Offline, with the labels the method never saw, the saved
embedding and assignments give F1 micro and the share of true neighbours among the kNN
of every point and among the kept neighbours of core points (bench/results/rdc_geometry.jsonl).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from common import RESULTS, ROOT, data_path, run_cli

sys.path.insert(0, str(ROOT))
from core.geometry import neighbour_purity  # noqa: E402
from core.knn import knn  # noqa: E402
from core.methods.rdc import RDCParams, proximity_filter  # noqa: E402
from core.metrics import evaluate  # noqa: E402

CLASSES = {"breastmnist": 2, "usps": 10, "mnist": 10}
PHASE2 = ("none", "proximity", "dec")


def purity(embedding: np.ndarray, y: np.ndarray, params: dict) -> dict:
    import torch

    p = RDCParams(**params)
    dist, idx = knn(torch.from_numpy(embedding), p.n_neighbors - 1)
    core, kept = proximity_filter(
        dist, p.alpha_core, p.beta_nn, p.filter_mode, p.beta_scale, p.core_rule
    )
    core, kept, idx = core.numpy(), kept.numpy(), idx.numpy()
    return {
        "purity_all": neighbour_purity(idx, np.ones_like(kept), y),
        "purity_core_kept": neighbour_purity(idx, kept & core[:, None], y),
        "core_ratio": float(core.mean()),
    }


def table(results: Path, geometry: Path) -> None:
    extra = {
        (g["dataset"], g["seed"], json.dumps(g["params"], sort_keys=True)): g
        for g in map(json.loads, geometry.read_text().splitlines())
        if g
    }
    groups: dict[tuple, list] = defaultdict(list)
    for r in map(json.loads, results.read_text().splitlines()):
        key = (
            r["dataset"],
            r["params"]["phase2"],
            r["params"].get("core_rule", "above"),
            r["params"]["pretrain_epochs"],
            r["params"]["maxiter"],
            r["device"],
        )
        groups[key].append(
            (r, extra.get((r["dataset"], r["seed"], json.dumps(r["params"], sort_keys=True)), {}))
        )

    def fmt(values, scale=100.0, digits=1):
        values = [v * scale for v in values if v is not None]
        if not values:
            return "-"
        return (
            f"{values[0]:.{digits}f}"
            if len(values) == 1
            else f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"
        )

    header = [
        "dataset",
        "phase 2",
        "core rule",
        "pretrain epochs",
        "seeds",
        "ACC %",
        "NMI %",
        "ARI %",
        "F1 macro %",
        "F1 micro %",
        "core ratio %",
        "kNN purity % all / core-kept",
        "ID",
        "LID",
        "phase-2 iters",
        "wall s",
        "peak MB",
        "device, threads",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for (dataset, phase2, rule, epochs, _maxiter, device), runs in sorted(groups.items()):
        rs, gs = [r for r, _ in runs], [g for _, g in runs]
        # "extras" before 2026-11-29
        diagnostics = [r.get("diagnostics", r.get("extras", {})) for r in rs]
        geo = [d.get("geometry", {}) for d in diagnostics]
        iters = [d["iterations"] for d in diagnostics if "iterations" in d]
        kept = fmt([g.get("purity_core_kept") for g in gs])
        purity = f"{fmt([g.get('purity_all') for g in gs])} / {kept}"
        cells = [
            dataset,
            phase2,
            rule if phase2 == "proximity" else "-",
            epochs,
            len(rs),
            fmt([r["acc"] for r in rs]),
            fmt([r["nmi"] for r in rs]),
            fmt([r["ari"] for r in rs]),
            fmt([r["f1_macro"] for r in rs]),
            fmt([g.get("f1_micro") for g in gs]),
            fmt([g.get("core_ratio") for g in gs]),
            purity,
            fmt([g.get("id") for g in geo], 1, 2),
            fmt([g.get("lid") for g in geo], 1, 1),
            fmt(iters, 1, 0) if iters else "-",
            fmt([r["wall_s"] for r in rs], 1, 0),
            fmt([r["peak_mb"] for r in rs], 1, 0),
            f"{device}, {rs[0]['versions'].get('torch_threads', '-')}",
        ]
        print("| " + " | ".join(map(str, cells)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["breastmnist"], choices=sorted(CLASSES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--phase2", nargs="+", default=list(PHASE2), choices=PHASE2)
    parser.add_argument(
        "--params", type=json.loads, default={}, help="extra rdc params as JSON (every run)"
    )
    parser.add_argument("--device")
    parser.add_argument("--threads", type=int, help="torch CPU threads (results depend on it)")
    parser.add_argument("--results", default=str(RESULTS / "rdc.jsonl"))
    parser.add_argument(
        "--table", action="store_true", help="print the table of the results files and exit"
    )
    args = parser.parse_args()
    geometry = Path(args.results).with_name(Path(args.results).stem + "_geometry.jsonl")
    if args.table:
        return table(Path(args.results), geometry)

    for dataset in args.datasets:
        y = np.load(data_path(dataset))["y"]
        for seed in args.seeds:
            for phase2 in args.phase2:  # 'none' first: it pretrains and caches the ACAI weights
                params = {**args.params, "phase2": phase2}
                with tempfile.TemporaryDirectory() as tmp:
                    emb, out = Path(tmp) / "z.npy", Path(tmp) / "labels.csv"
                    record = run_cli(
                        data_path(dataset),
                        "rdc",
                        CLASSES[dataset],
                        params,
                        seed,
                        Path(args.results),
                        args.device,
                        extra=["--embedding-out", str(emb), "--out", str(out)]
                        + (["--threads", str(args.threads)] if args.threads else []),
                    )
                    labels = np.loadtxt(out, delimiter=",", skiprows=1, usecols=2, dtype=np.int64)
                    offline = {
                        **purity(np.load(emb), y, record["params"]),
                        "f1_micro": evaluate(y, labels)["f1_micro"],
                    }
                with open(geometry, "a") as f:
                    f.write(
                        json.dumps(
                            {
                                "dataset": dataset,
                                "seed": seed,
                                "params": record["params"],
                                **offline,
                            }
                        )
                        + "\n"
                    )
                summary = {
                    k: record[k] for k in ("dataset", "seed", "acc", "nmi", "f1_macro", "wall_s")
                }
                print(
                    json.dumps(
                        {
                            **summary,
                            **offline,
                            "phase2": phase2,
                            "diagnostics": record["diagnostics"],
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
