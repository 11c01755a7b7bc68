"""DCCF on USPS and MNIST (seed paper, Tables 2-5), IDEC on the same pretrained weights,
and the ablation of Table 5 (contractive and focal terms on/off).

    python bench/dccf.py --datasets usps --seeds 0 1 2 --ablation-seeds 0
    python bench/dccf.py --datasets usps --lambdas 1e-7 1e-5 1e-3 1e-2 --seeds 0   # the lambda sweep

Every run appends a JSON line to bench/results/dccf.jsonl. DCCF and the IDEC comparison
share the autoencoder pretrained for DCCF (d-500-500-1000-K, 100 Adam epochs), through
bench/cache, so the comparison differs only in the clustering phase.
"""
from __future__ import annotations

import argparse
import json

from baselines import PRESETS
from common import RESULTS, data_path, run_cli

ABLATION = {"neither": (False, False), "contractive_only": (True, False), "focal_only": (False, True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["usps", "mnist"], choices=sorted(PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--ablation-seeds", nargs="*", type=int, default=[0])
    parser.add_argument("--lambdas", nargs="*", type=float, default=[], help="extra contractive_lambda values")
    parser.add_argument("--device")
    parser.add_argument("--results", default=str(RESULTS / "dccf.jsonl"))
    args = parser.parse_args()

    def run(dataset: str, method: str, params: dict, seed: int) -> None:
        record = run_cli(data_path(dataset), method, 10, params, seed, args.results, args.device)
        print(json.dumps({k: record[k] for k in ("method", "dataset", "seed", "acc", "nmi", "wall_s", "device")}
                         | {"variant": {k: params[k] for k in ("contractive", "focal", "contractive_lambda")
                                        if k in params}}), flush=True)

    for dataset in args.datasets:
        for seed in args.seeds:
            run(dataset, "dccf", {}, seed)  # pretrains and caches the autoencoder for this seed
            # IDEC on DCCF's pretrained weights (same architecture and pretraining), its own clustering schedule.
            idec = {"hidden_dims": [500, 500, 1000], "embedding_dim": 10, "pretrain_epochs": 100,
                    **PRESETS[dataset]["idec"]}
            run(dataset, "idec", idec, seed)
            if seed in args.ablation_seeds:
                for contractive, focal in ABLATION.values():
                    run(dataset, "dccf", {"contractive": contractive, "focal": focal}, seed)
            for lam in args.lambdas:
                run(dataset, "dccf", {"contractive_lambda": lam}, seed)


if __name__ == "__main__":
    main()
