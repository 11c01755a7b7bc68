"""k-means, AE+k-means, DEC and IDEC on USPS and MNIST, with the schedules of the
authors' code (XifengGuo/DEC-keras, XifengGuo/IDEC; docs/methods/dec.md).

    python bench/baselines.py                       # USPS and MNIST, seeds 0 1 2
    python bench/baselines.py --datasets usps --pretrain-epochs 20   # a shorter CPU run

Each run appends one JSON line to bench/results/baselines.jsonl; `python bench/report.py`
turns the files into the README's tables. ae_kmeans, dec and idec of one seed share the
same pretrained autoencoder (bench/cache), as in the papers' protocol.
"""

from __future__ import annotations

import argparse
import json

from common import RESULTS, SUMMARY_KEYS, data_path, run_cli, summary

# Per-dataset settings from the reference code (dec.md, "Training schedule").
PRESETS = {
    "usps": {
        "pretrain": {"pretrain_epochs": 50, "pretrain_optimizer": "adam", "pretrain_lr": 0.001},
        "dec": {"update_interval": 30, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
        "idec": {
            "update_interval": 30,
            "optimizer": "sgd",
            "lr": 0.1,
            "momentum": 0.99,
            "gamma": 0.1,
        },
    },
    "mnist": {
        "pretrain": {
            "pretrain_epochs": 300,
            "pretrain_optimizer": "sgd",
            "pretrain_lr": 1.0,
            "pretrain_momentum": 0.9,
        },
        "dec": {"update_interval": 140, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9},
        "idec": {"update_interval": 140, "optimizer": "adam", "lr": 0.001, "gamma": 0.1},
    },
}
METHODS = ("kmeans", "ae_kmeans", "dec", "idec")


def params_for(method: str, dataset: str, pretrain_epochs: int | None) -> dict:
    if method == "kmeans":
        return {}
    preset = PRESETS[dataset]
    params = dict(preset["pretrain"])
    if pretrain_epochs is not None:
        params["pretrain_epochs"] = pretrain_epochs
    params.update(preset.get(method, {}))
    return params


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["usps", "mnist"], choices=sorted(PRESETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--pretrain-epochs", type=int, help="override the preset (shorter runs on a CPU)"
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--results", default=str(RESULTS / "baselines.jsonl"))
    args = parser.parse_args()
    for dataset in args.datasets:
        for seed in args.seeds:
            for method in args.methods:
                record = run_cli(
                    data_path(dataset),
                    method,
                    10,
                    params_for(method, dataset, args.pretrain_epochs),
                    seed,
                    args.results,
                    args.device,
                )
                print(
                    json.dumps(summary(record, ("method", *SUMMARY_KEYS))),
                    flush=True,
                )


if __name__ == "__main__":
    main()
