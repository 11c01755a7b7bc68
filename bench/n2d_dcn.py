"""N2D and DCN beside ae_kmeans on a benchmark set, on one pretrained autoencoder per seed.

    python bench/n2d_dcn.py --datasets usps --seeds 0 1 2 --threads 1
    python bench/n2d_dcn.py --datasets mnist --pretrain-epochs 1000 --device cuda   # N2D's

The autoencoder schedule is bench/baselines.py's preset for the dataset (USPS: 50 Adam epochs;
MNIST: 300 SGD epochs; any other data set: USPS's); N2D's authors pretrain 1000 epochs. The
number of clusters is the number of classes in the file's labels. Each run appends one JSON line to
bench/results/n2d_dcn.jsonl; the first method of a seed pretrains (bench/cache), the others
reuse its weights (`reused_pretrained_weights`, and their wall_s excludes the pretraining).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from baselines import PRESETS
from common import RESULTS, data_path, run_cli

METHODS = ("ae_kmeans", "n2d", "dcn")
SHOWN = ("method", "dataset", "seed", "acc", "nmi", "ari", "wall_s", "peak_mb", "device",
         "reused_pretrained_weights")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["usps"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, help="override the preset's")
    parser.add_argument("--extra", default="{}", help="more params (JSON) for n2d and dcn")
    parser.add_argument("--threads", type=int, help="torch CPU threads (results depend on it)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--results", default=str(RESULTS / "n2d_dcn.jsonl"))
    args = parser.parse_args()
    for dataset in args.datasets:
        n_clusters = len(np.unique(np.load(data_path(dataset))["y"]))
        for seed in args.seeds:
            for method in args.methods:
                params = dict(PRESETS.get(dataset, PRESETS["usps"])["pretrain"])
                if args.pretrain_epochs is not None:
                    params["pretrain_epochs"] = args.pretrain_epochs
                if method != "ae_kmeans":
                    params.update(json.loads(args.extra))
                extra = ["--threads", str(args.threads)] if args.threads else []
                record = run_cli(data_path(dataset), method, n_clusters, params, seed, args.results,
                                 args.device, extra)
                print(json.dumps({k: record.get(k) for k in SHOWN}), flush=True)


if __name__ == "__main__":
    main()
