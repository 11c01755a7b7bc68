"""`deepclust submit | jobs | status | cancel`: the command line against a server.

    deepclust submit DATA --method M --clusters K [--params JSON] [--seed S] [--wait]
                          [--out labels.csv]
    deepclust jobs [--status S]      deepclust status JOB      deepclust cancel JOB

The server is --server or $DEEPCLUST_SERVER, the key --api-key or $DEEPCLUST_API_KEY.
Exit status: 0 done, 1 the job failed or was cancelled (its error on stderr), 2 the
request was refused (the API's message on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from deepclust_client.client import Client
from deepclust_client.errors import DeepclustError, JobFailed
from deepclust_client.status import JobStatus


def add_server_commands(sub: argparse._SubParsersAction) -> None:
    """Register the subcommands on core.cli's parser; each sets `args.func`."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--server",
        default=os.environ.get("DEEPCLUST_SERVER"),
        help="the service's URL (default: $DEEPCLUST_SERVER)",
    )
    server.add_argument(
        "--api-key",
        default=os.environ.get("DEEPCLUST_API_KEY"),
        help="sent as a bearer token (default: $DEEPCLUST_API_KEY)",
    )

    submit = sub.add_parser(
        "submit", parents=[server], help="upload a data file to a server and cluster it there"
    )
    submit.add_argument("data", help=".npy, .npz (X, optional y, ids), .csv or .parquet")
    submit.add_argument("--method", "-m", required=True)
    submit.add_argument(
        "--clusters",
        "-k",
        type=int,
        help="the number of clusters (optional for methods that find it)",
    )
    submit.add_argument("--params", default="{}", help="the method's parameters as JSON")
    submit.add_argument("--seed", type=int, default=0)
    submit.add_argument(
        "--label-column", help="CSV/parquet: the ground-truth column (evaluation only)"
    )
    submit.add_argument("--id-column", help="CSV/parquet: the sample id column")
    submit.add_argument(
        "--wait", "-w", action="store_true", help="wait for the job, with a progress bar"
    )
    submit.add_argument(
        "--out",
        "-o",
        help="when it succeeded, write index,sample_id,cluster,confidence here (implies --wait)",
    )
    submit.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    submit.set_defaults(func=_command(submit_file))

    jobs = sub.add_parser("jobs", parents=[server], help="list a server's jobs, newest first")
    jobs.add_argument("--status", choices=[status.value for status in JobStatus])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.set_defaults(func=_command(list_jobs))

    status = sub.add_parser(
        "status", parents=[server], help="one job as JSON: status, progress, metrics, error"
    )
    status.add_argument("job")
    status.set_defaults(
        func=_command(lambda client, args: print(json.dumps(client.job(args.job), indent=2)))
    )

    cancel = sub.add_parser("cancel", parents=[server], help="cancel a queued or running job")
    cancel.add_argument("job")
    cancel.set_defaults(func=_command(cancel_job))


def _command(
    run: Callable[[Client, argparse.Namespace], int | None],
) -> Callable[[argparse.Namespace], int]:
    """Connect, run, and turn the client's errors into a message and an exit status."""

    def command(args: argparse.Namespace) -> int:
        if not args.server:
            return _error("no server: pass --server URL or set DEEPCLUST_SERVER")
        try:
            with Client(args.server, api_key=args.api_key) as client:
                return run(client, args) or 0
        except JobFailed as exc:
            print(
                f"deepclust: job {exc.job['id']} {exc.job['status']}: {exc.error}", file=sys.stderr
            )
            return 1
        except (DeepclustError, OSError, ValueError) as exc:
            return _error(str(exc))

    return command


def _error(message: str) -> int:
    print(f"deepclust: error: {message}", file=sys.stderr)
    return 2


def submit_file(client: Client, args: argparse.Namespace) -> None:
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not JSON: {exc}") from None
    options = {
        k: v for k, v in (("label_column", args.label_column), ("id_column", args.id_column)) if v
    }
    dataset = client.upload(args.data, **options)
    job = client.submit(dataset, args.method, args.clusters, params, args.seed)
    print(
        f"deepclust: dataset {dataset['id']} ({dataset['n']} samples), job {job['id']} queued",
        file=sys.stderr,
    )
    if args.wait or args.out:
        job = client.wait(job, progress=not args.quiet)
        if args.out:
            client.assignments_csv(job, args.out)
    print(json.dumps(job))


def list_jobs(client: Client, args: argparse.Namespace) -> None:
    page = client.jobs(status=args.status, limit=args.limit)
    for job in page["items"]:
        progress = job.get("progress") or {}
        where = (
            f"{progress.get('phase', '')} {progress.get('step', '')}/{progress.get('total', '')}"
            if progress
            else ""
        )
        print(
            "\t".join([job["id"], job["status"], job["method"], where.strip(), job["created_at"]])
        )
    print(f"{len(page['items'])} of {page['total']} jobs", file=sys.stderr)


def cancel_job(client: Client, args: argparse.Namespace) -> None:
    job = client.cancel(args.job)
    state = "cancelled" if job["status"] == JobStatus.CANCELLED else "will stop at its next step"
    print(f"job {job['id']} {state}")
