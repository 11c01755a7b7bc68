"""The peer library: ClustPy's DEC, IDEC and DCN against ours, on the same data, seeds, autoencoder
architecture (d-500-500-2000-10) and pretraining (50 Adam epochs at 1e-3, batch 256, as the
DEC-keras USPS preset in bench/baselines.py). ClustPy keeps its own clustering phase
(epoch-based, Adam 1e-4, 150 epochs), which is how users would run it.

    make peer-env      # installs clustpy 0.0.3 into its own folder, once
    PYTHONPATH=$(readlink .venv)-clustpy .venv/bin/python bench/peer_clustpy.py \
        --datasets usps --seeds 0 1 2
    ... bench/peer_clustpy.py --methods clustpy_dcn dcn --threads 1   # side by side

A name without the clustpy_ prefix runs ours through `deepclust run` with the same pretraining
and clustering schedule and no weight cache, so both wall times include the pretraining. Each
run is a fresh process (so peak memory is its own), at the same torch thread count, and appends
a JSON line in the format of the other benchmarks to bench/results/peer_clustpy.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone

from common import RESULTS, ROOT, data_path, run_cli

sys.path.insert(0, str(ROOT))

PEERS = ("clustpy_dec", "clustpy_idec", "clustpy_dcn")
# ours, with ClustPy's clustering schedule (150 Adam epochs at 1e-4, batch 256)
OURS = {"dcn": {"epochs": 150, "optimizer": "adam", "lr": 1e-4}}


def run_ours(
    dataset: str, method: str, seed: int, pretrain_epochs: int, results: str, threads: int | None
) -> None:
    params = {
        "pretrain_epochs": pretrain_epochs,
        "pretrain_optimizer": "adam",
        "pretrain_lr": 1e-3,
        "batch_size": 256,
        "embedding_dim": 10,
        **OURS[method],
    }
    extra = ["--threads", str(threads)] if threads else []
    record = run_cli(
        data_path(dataset), method, 10, params, seed, results, extra=extra, cache_dir=None
    )
    print(
        json.dumps(
            {k: record[k] for k in ("method", "dataset", "seed", "acc", "nmi", "ari", "wall_s")}
        ),
        flush=True,
    )


def run_one(
    dataset: str, method: str, seed: int, pretrain_epochs: int, results: str, threads: int | None
) -> None:
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
    if threads:
        torch.set_num_threads(threads)
    # DCN keeps ClustPy's own loss weights, as users would run it (0.0.3: lambda 0.1, applied
    # as lambda/2, on a per-sample sum of squares, as our dcn)
    model = {"clustpy_dec": DEC, "clustpy_idec": IDEC, "clustpy_dcn": DCN}[method](
        n_clusters=10, random_state=seed, device=torch.device(device), **params
    )
    started = time.perf_counter()
    model.fit(X)
    wall_s = time.perf_counter() - started
    scores = evaluate(data.y, model.labels_)
    # ClustPy's DCN reports k-means rerun on the final codes as labels_; its own assignment
    # (what our dcn returns) is dcn_labels_
    own = getattr(model, "dcn_labels_", None)
    diagnostics = {} if own is None else {"acc_dcn_labels": evaluate(data.y, own)["acc"]}
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
        "diagnostics": diagnostics,
    }
    with open(results, "a") as out:
        out.write(json.dumps(record) + "\n")
    print(
        json.dumps(
            {k: record[k] for k in ("method", "dataset", "seed", "acc", "nmi", "ari", "wall_s")}
        ),
        flush=True,
    )


def profile_epoch(results: str, n: int = 9298, dims: int = 256, k: int = 10,
                  batch: int = 256) -> None:
    """Where one USPS-sized DCN clustering epoch spends its time, on one thread: our whole epoch
    (core.methods.dcn.joint_training on random data), the share of it in matrix products
    (torch.profiler), and the centre updates alone, ClustPy's per-sample loop against ours.
    ClustPy's network step does the same products (same layers, batch and optimiser), so its
    epoch costs at least our epoch minus our centre updates plus its own."""
    import torch
    from clustpy.deep.dcn import _compute_centroids

    from core.autoencoder import MLPAutoencoder
    from core.interface import Context
    from core.methods.dcn import DCNParams, joint_training, update_centers
    from core.provenance import library_versions

    torch.set_num_threads(1)
    torch.manual_seed(0)
    data, model = torch.rand(n, dims), MLPAutoencoder(dims, (500, 500, 2000), k)
    params = DCNParams(epochs=1, batch_size=batch)

    def our_epoch() -> float:
        centers, assignments = torch.randn(k, k), torch.randint(0, k, (n,))
        started = time.perf_counter()
        joint_training(data, model, centers, assignments, params, Context(seed=0, device="cpu"))
        return time.perf_counter() - started

    our_epoch()  # warm-up
    epoch_s = min(our_epoch() for _ in range(3))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        our_epoch()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    products = sum(e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm"))

    z, labels = torch.randn(n, k), torch.randint(0, k, (n,))
    centre_s = {}
    for name, update in (
        ("clustpy", lambda c, m, zb, lb: _compute_centroids(c, zb, m, lb)),
        ("ours", update_centers),
    ):
        centers, counts = torch.randn(k, k), torch.full((k,), 100.0)
        started = time.perf_counter()
        for s in range(0, n, batch):
            update(centers, counts, z[s : s + batch], labels[s : s + batch])
        centre_s[name] = round(time.perf_counter() - started, 4)
    bound = (epoch_s - centre_s["ours"] + centre_s["clustpy"]) / epoch_s
    record = {
        "method": "dcn_epoch_profile",
        "dataset": f"random {n}x{dims}",
        "n": n,
        "device": "cpu",
        "our_epoch_s": round(epoch_s, 3),
        "matrix_product_share": round(products / total, 3),
        "centre_update_s": centre_s,
        "clustpy_epoch_at_least_x_ours": round(bound, 3),
        "versions": library_versions(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": {"batch_size": batch, "hidden_dims": [500, 500, 2000], "threads": 1},
    }
    with open(results, "a") as out:
        out.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", nargs="+", default=["usps"])
    parser.add_argument(
        "--methods", nargs="+", default=["clustpy_dec", "clustpy_idec"], choices=[*PEERS, *OURS]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--pretrain-epochs", type=int, default=50)
    parser.add_argument("--threads", type=int, help="torch CPU threads, the same for every run")
    parser.add_argument("--results", default=str(RESULTS / "peer_clustpy.jsonl"))
    parser.add_argument(
        "--profile-epoch",
        action="store_true",
        help="profile one DCN clustering epoch (bench/results/dcn_epoch_profile.jsonl) and exit",
    )
    parser.add_argument(
        "--one", nargs=3, metavar=("DATASET", "METHOD", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.profile_epoch:
        return profile_epoch(str(RESULTS / "dcn_epoch_profile.jsonl"))
    if args.one:
        run_one(
            args.one[0],
            args.one[1],
            int(args.one[2]),
            args.pretrain_epochs,
            args.results,
            args.threads,
        )
        return
    threads = ["--threads", str(args.threads)] if args.threads else []
    for dataset in args.datasets:
        for seed in args.seeds:
            for method in args.methods:
                if method in OURS:
                    run_ours(
                        dataset, method, seed, args.pretrain_epochs, args.results, args.threads
                    )
                    continue
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
                        *threads,
                    ],
                    check=True,
                )


if __name__ == "__main__":
    main()
