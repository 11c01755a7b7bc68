"""DCCF on USPS and MNIST (seed paper, Tables 2-5), IDEC on the same pretrained weights,
and the ablation of Table 5 (contractive and focal terms on/off).

    python bench/dccf.py --datasets usps --seeds 0 1 2 --ablation-seeds 0
    python bench/dccf.py --datasets usps --seeds 0 --skip-base --ablation-seeds \
        --variant '{"contractive_lambda": 1e-3}' --variant '{"tol": 0}'  # sweeps, diagnostics

Every run appends a JSON line to bench/results/dccf.jsonl. DCCF and the IDEC comparison
share the autoencoder pretrained for DCCF (d-500-500-1000-K, 100 Adam epochs), through
bench/cache, so the comparison differs only in the clustering phase.
"""

from __future__ import annotations

import argparse
import json

from baselines import PRESETS
from common import RESULTS, data_path, run_cli

ABLATION = {
    "neither": (False, False),
    "contractive_only": (True, False),
    "focal_only": (False, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["usps", "mnist"], choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ablation-seeds", nargs="*", type=int, default=[0])
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=json.loads,
        help="extra DCCF params as JSON, run for every seed (repeatable)",
    )
    parser.add_argument(
        "--skip-base", action="store_true", help="skip the default DCCF and the IDEC comparison"
    )
    parser.add_argument("--device")
    parser.add_argument("--results", default=str(RESULTS / "dccf.jsonl"))
    args = parser.parse_args()

    def run(dataset: str, method: str, params: dict, seed: int) -> None:
        record = run_cli(data_path(dataset), method, 10, params, seed, args.results, args.device)
        summary = {
            k: record[k] for k in ("method", "dataset", "seed", "acc", "nmi", "wall_s", "device")
        }
        print(json.dumps({**summary, "params": params}), flush=True)

    for dataset in args.datasets:
        for seed in args.seeds:
            if not args.skip_base:
                run(dataset, "dccf", {}, seed)  # pretrains and caches the autoencoder for this seed
                # IDEC on DCCF's pretrained weights (same architecture and pretraining),
                # with its own clustering schedule.
                idec = {
                    "hidden_dims": [500, 500, 1000],
                    "embedding_dim": 10,
                    "pretrain_epochs": 100,
                    **PRESETS[dataset]["idec"],
                }
                run(dataset, "idec", idec, seed)
            if seed in args.ablation_seeds:
                for contractive, focal in ABLATION.values():
                    run(dataset, "dccf", {"contractive": contractive, "focal": focal}, seed)
            for variant in args.variant:
                run(dataset, "dccf", variant, seed)


if __name__ == "__main__":
    main()
