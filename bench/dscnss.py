"""DSCNSS on ORL, COIL20 and Extended Yale B (seed paper, Table 4), and DSC-Net alone
(`self_supervision=false`: the same network, pretrained weights and J1 schedule, no head)
as the ablation.

    python bench/dscnss.py --datasets orl coil20 --seeds 0 1 2
    python bench/dscnss.py --datasets extended_yaleb_48x42 --seeds 0
    python bench/dscnss.py --datasets coil20 --extra '{"j2_epochs": 300}'  # J2 capped for a CPU

Every run appends a JSON line to bench/results/dscnss.jsonl. DSCNSS runs first and caches
its denoising-pretrained conv AE in bench/cache; DSC-Net alone reuses it (its wall time
then excludes pretraining). The head's labels (the head_labels artifact) are scored here too.
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, data_path, run_cli

# data set -> (preset, K)
DATASETS = {"orl": ("orl", 40), "coil20": ("coil20", 20), "extended_yaleb_48x42": ("yaleb", 38)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=sorted(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument(
        "--ablation-only",
        action="store_true",
        help="run DSC-Net alone only (its AE must be cached)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=json.loads,
        help="extra DSCNSS params as JSON, run for every seed (repeatable)",
    )
    parser.add_argument(
        "--extra",
        type=json.loads,
        default={},
        help="params as JSON added to every run, DSC-Net alone included (e.g. a J2 epoch cap)",
    )
    parser.add_argument("--device")
    parser.add_argument("--results", default=str(RESULTS / "dscnss.jsonl"))
    args = parser.parse_args()
    for dataset in args.datasets:
        preset, k = DATASETS[dataset]
        base = {"preset": preset, **args.extra}
        runs = [] if args.ablation_only else [base]
        runs += [] if args.skip_ablation else [{**base, "self_supervision": False}]
        runs += [{**base, **v} for v in args.variant]
        for seed in args.seeds:
            for params in runs:
                record = run_cli(
                    data_path(dataset), "dscnss", k, params, seed, args.results, args.device
                )
                summary = {
                    key: record[key] for key in ("dataset", "seed", "acc", "nmi", "ari", "wall_s")
                }
                summary["head_acc"] = record["artifact_metrics"].get("head_labels", {}).get("acc")
                print(json.dumps({**summary, "params": params}), flush=True)


if __name__ == "__main__":
    main()
