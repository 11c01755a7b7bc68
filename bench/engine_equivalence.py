"""Golden outputs of every registered method on a small digits run, to show that a refactor of
core/ leaves the results as they were (#18: one training engine).

    python bench/engine_equivalence.py --save /tmp/golden      # on the old code
    python bench/engine_equivalence.py --compare /tmp/golden   # on the new code

Each case fits one method (with small epoch counts, so a run takes seconds) on the first 600
rows of scikit-learn's digits (600 is not a multiple of any batch size below, so no method's
in-order batching meets the empty-batch case), 10 clusters, seed 0, one torch thread, and
saves labels, confidence and embedding. --compare requires identical labels and floats equal
within --atol (0 by default: bit for bit).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.interface import Context  # noqa: E402
from core.registry import get_method, method_names  # noqa: E402

N, K, SEED = 600, 10, 0
SMALL_AE = {"hidden_dims": [64, 64, 128], "batch_size": 64, "pretrain_epochs": 3, "n_init": 3}
SMALL_NET = {"backbone": "resnet18", "backbone_width": 4, "batch_size": 64,
             "hidden_dims": [32, 32, 64], "n_init": 2}
# case name -> (method, input kind, params)
CASES: dict[str, tuple[str, str, dict]] = {
    "kmeans": ("kmeans", "vectors", {"n_init": 3}),
    "ae_kmeans": ("ae_kmeans", "vectors", SMALL_AE),
    "dec": ("dec", "vectors", {**SMALL_AE, "maxiter": 40, "update_interval": 7}),
    "dec_tol": ("dec", "vectors", {**SMALL_AE, "maxiter": 400, "update_interval": 5, "tol": 0.01}),
    "idec": ("idec", "vectors", {**SMALL_AE, "maxiter": 40, "update_interval": 7}),
    "dccf": ("dccf", "vectors", {**SMALL_AE, "epochs": 4}),
    "dccf_hutchinson": ("dccf", "vectors", {**SMALL_AE, "epochs": 3, "jacobian": "hutchinson",
                                            "focal_target": "soft", "update_interval_epochs": 2}),
    "rdc": ("rdc", "images", {**SMALL_AE, "maxiter": 30, "refresh_interval": 7}),
    "rdc_dec": ("rdc", "images", {**SMALL_AE, "maxiter": 30, "phase2": "dec"}),
    "rdc_dbscan": ("rdc", "vectors", {**SMALL_AE, "maxiter": 20, "refresh_interval": 5,
                                      "final_clustering": "dbscan", "geometry": False}),
    "dscnss": ("dscnss", "images", {"pretrain_epochs": 3, "j1_epochs_first": 6, "j1_epochs": 3,
                                    "rounds": 2, "j2_epochs": 4}),
    "dscnss_alone": ("dscnss", "images", {"pretrain_epochs": 2, "pretrain_batch_size": None,
                                          "j1_epochs_first": 5, "j1_epochs": 2, "rounds": 2,
                                          "self_supervision": False, "j1_optimizer": "per_round"}),
    "iciclegcn_images": ("iciclegcn", "images", {**SMALL_NET, "warmup_epochs": 1,
                                                 "stage1_epochs": 1, "stage2_epochs": 4,
                                                 "report_every": 2}),
    "iciclegcn_instance": ("iciclegcn", "images", {**SMALL_NET, "warmup_epochs": 1,
                                                   "warmup_loss": "instance", "stage1_epochs": 1,
                                                   "stage1_variant": "code", "stage2_epochs": 0}),
    "iciclegcn_features": ("iciclegcn", "vectors", {**SMALL_NET, "mode": "features",
                                                    "features_pretrain_epochs": 2,
                                                    "stage2_epochs": 5}),
    "iciclegcn_features_rec": ("iciclegcn", "vectors", {**SMALL_NET, "mode": "features",
                                                        "features_pretrain": "reconstruction",
                                                        "features_pretrain_epochs": 2,
                                                        "stage2_epochs": 3}),
}


def digits(kind: str) -> np.ndarray:
    X = load_digits().data[:N].astype(np.float32)
    return X.reshape(N, 8, 8) if kind == "images" else X


def run(case: str) -> dict[str, np.ndarray]:
    method_name, kind, params = CASES[case]
    method = get_method(method_name)
    result = method.fit(digits(kind), K, method.Params(**params), Context(seed=SEED, device="cpu"))
    return {"labels": result.labels, "confidence": result.confidence, "embedding": result.embedding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write one .npz per case here")
    action.add_argument("--compare", type=Path, help="compare with the .npz files saved here")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--atol", type=float, default=0.0, help="float tolerance (0: bit for bit)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    covered = {method for method, _, _ in CASES.values()}
    missing = sorted(set(method_names()) - covered)
    if missing:
        sys.exit(f"registered methods without a case: {missing}")
    failures = 0
    for case in args.cases:
        start = time.perf_counter()
        outputs = run(case)
        wall = time.perf_counter() - start
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez(args.save / f"{case}.npz", **outputs)
            print(f"{case}: saved ({wall:.1f} s)", flush=True)
            continue
        golden = np.load(args.compare / f"{case}.npz")
        problems = []
        if not np.array_equal(golden["labels"], outputs["labels"]):
            differ = int((golden["labels"] != outputs["labels"]).sum())
            problems.append(f"labels differ in {differ} places")
        for key in ("confidence", "embedding"):
            if golden[key].shape != outputs[key].shape or golden[key].dtype != outputs[key].dtype:
                problems.append(f"{key} shape/dtype {golden[key].shape}/{golden[key].dtype} -> "
                                f"{outputs[key].shape}/{outputs[key].dtype}")
                continue
            gap = float(np.abs(golden[key].astype(np.float64) - outputs[key]).max(initial=0.0))
            if gap > args.atol:
                problems.append(f"{key} max abs difference {gap:.3g}")
        failures += bool(problems)
        verdict = "; ".join(problems) if problems else "identical"
        print(f"{case}: {verdict} ({wall:.1f} s)", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
