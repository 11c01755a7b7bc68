"""The command line: the same core as the service, with no server.

    deepclust run DATA --method NAME --clusters K [--params JSON] [--seed S] --out labels.csv
    deepclust methods
    deepclust keys create NAME [--admin] [--max-...] | keys list | keys revoke ID   (API keys)

`run` prints one JSON line (metrics when the data has labels, wall time, peak memory,
device, versions, params); `--results FILE` also appends that line to FILE (bench/).
Its progress goes to stderr: a bar on a terminal, JSON lines when stderr is piped.
`submit`, `jobs`, `status` and `cancel` talk to a server (deepclust_client.cli).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from deepclust_client.cli import add_server_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deepclust", description="Deep clustering from the shell."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="cluster a data file")
    run.add_argument("data", help=".npy, .npz (X, optional y, ids), .csv or .parquet")
    run.add_argument("--method", "-m", required=True,
                     help="a name from `deepclust methods`, or 'auto': picked from the data")
    run.add_argument(
        "--clusters",
        "-k",
        type=int,
        help="the number of clusters (optional for methods that find it)",
    )
    run.add_argument("--params", default="{}", help="the method's parameters as JSON")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", "-o", help="write index,sample_id,cluster,confidence here")
    run.add_argument("--embedding-out", help="write the latent embedding (.npy) here")
    run.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    run.add_argument(
        "--label-column", help="CSV/parquet: the ground-truth column (evaluation only)"
    )
    run.add_argument("--id-column", help="CSV/parquet: the sample id column")
    run.add_argument("--results", help="append the JSON line to this .jsonl file")
    run.add_argument(
        "--cache-dir",
        help="reuse pretrained autoencoder weights from here (same data, params, seed)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    run.add_argument(
        "--history-out",
        help="write the job's history (JSON lines) here; with labels, every record "
        "that carries intermediate predictions is scored as the worker does",
    )
    run.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's); results depend on it"
    )
    sub.add_parser("methods", help="list the methods and their parameter schemas")
    from persistence.keys_cli import add_keys_parser, run_keys

    add_keys_parser(sub)
    add_server_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "keys":
        return run_keys(args)
    if hasattr(args, "func"):
        return args.func(args)
    if args.command == "methods":
        from core import list_methods

        print(json.dumps(list_methods(), indent=2))
        return 0
    from core.interface import TrainingFailed

    try:
        record = run_file(args)
    except (ValueError, KeyError) as exc:  # DataError, JobRejected
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"deepclust: error: {message}", file=sys.stderr)
        return 2
    except TrainingFailed as exc:  # a valid request whose training went nowhere
        print(f"deepclust: the run failed: {exc}", file=sys.stderr)
        return 1
    line = json.dumps(record)
    print(line)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as out:
            out.write(line + "\n")
    return 0


def run_file(args: argparse.Namespace) -> dict:
    import torch

    from core.io import assignment_csv_chunks, read_dataset
    from core.jobs import prepare_job, run_job
    from core.metrics import evaluate
    from core.resources import free_memory_bytes

    data = read_dataset(args.data, label_column=args.label_column, id_column=args.id_column)
    try:
        raw_params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not JSON: {exc}") from None
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpu = "GPU " if device.startswith("cuda") else ""
    budget = free_memory_bytes(device), f"this machine's free {gpu}memory"
    spec = prepare_job(args.method, raw_params, args.clusters, args.seed, data.X.shape, budget)

    bar = None
    if not args.quiet and sys.stderr.isatty():
        from deepclust_client.progress import ProgressBar

        bar = ProgressBar(sys.stderr)

    def show(record: dict) -> None:
        if bar is not None:
            bar.update(record)
        elif not args.quiet:  # piped: one JSON line per record, for scripts
            print(json.dumps(record), file=sys.stderr, flush=True)

    if args.threads:
        torch.set_num_threads(args.threads)
    scored = data.y is not None and args.history_out
    monitor = (lambda labels: evaluate(data.y, labels)) if scored else None
    ctx = spec.context(device=device, on_progress=show, cache_dir=args.cache_dir, monitor=monitor)
    try:
        outcome = run_job(spec, data.X, data.y, ctx)
    finally:
        if bar is not None:
            bar.close()
    result, metrics = outcome.result, outcome.metrics
    if args.out:
        with open(args.out, "w", newline="") as out:
            out.writelines(assignment_csv_chunks(result.labels, result.confidence, data.ids))
    if args.history_out:
        with open(args.history_out, "w") as out:
            out.writelines(json.dumps(record, default=float) + "\n" for record in ctx.history)
    if args.embedding_out:
        import numpy as np

        np.save(args.embedding_out, result.embedding)
    scores = {
        key: metrics.get(key) for key in ("acc", "nmi", "ari", "f1_macro", "f1_micro", "silhouette")
    }
    return {
        "method": spec.method_name,
        **({"picked_by": spec.picked_by} if spec.picked_by else {}),
        "dataset": Path(args.data).stem,
        "seed": args.seed,
        "n": int(len(data.X)),
        "n_clusters": args.clusters,
        **scores,
        "cluster_sizes": metrics["cluster_sizes"],
        "wall_s": round(outcome.fit_s, 3),
        "peak_mb": outcome.peak_mb,
        "device": outcome.device,
        "versions": outcome.versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "params": spec.params.model_dump(mode="json"),
        "diagnostics": result.diagnostics,
        # per-sample label artifacts (e.g. DSCNSS's head) scored like the labels, for the benchmarks
        "artifact_metrics": {
            name: evaluate(data.y, values)
            for name, values in result.artifacts.items()
            if data.y is not None and values.shape == result.labels.shape
        },
        # wall_s excludes pretraining when the autoencoder came from --cache-dir
        "reused_pretrained_weights": any("reused_weights" in r for r in ctx.history),
    }


if __name__ == "__main__":
    sys.exit(main())
