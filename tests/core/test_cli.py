"""`deepclust run` and `deepclust methods`: the same core from the shell, with no server."""

import csv
import json
import subprocess
import sys

import numpy as np

from tests.conftest import ROOT, deepclust, npz_bytes

REQUIRED = {
    "method",
    "dataset",
    "seed",
    "n",
    "acc",
    "nmi",
    "ari",
    "wall_s",
    "peak_mb",
    "device",
    "versions",
    "date",
    "params",
}


def test_run_writes_assignments_and_one_json_line(tmp_path, digits):
    X, y = digits
    data = tmp_path / "digits.npz"
    data.write_bytes(npz_bytes(X=X, y=y))
    out, results = tmp_path / "labels.csv", tmp_path / "results.jsonl"
    done = deepclust(
        "run",
        str(data),
        "--method",
        "kmeans",
        "--clusters",
        "10",
        "--seed",
        "3",
        "--out",
        str(out),
        "--results",
        str(results),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert REQUIRED <= set(record)
    assert record["n"] == 1797 and record["seed"] == 3 and record["dataset"] == "digits"
    assert 0.6 < record["acc"] <= 1.0 and record["params"] == {"n_init": 20, "max_iter": 300}
    assert json.loads(results.read_text().splitlines()[-1]) == record
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["index", "sample_id", "cluster", "confidence"] and len(rows) == 1798


def test_run_keeps_the_history_scored_against_labels_and_sets_the_threads(tmp_path, digits):
    X, y = digits
    data, history = tmp_path / "digits.npz", tmp_path / "history.jsonl"
    data.write_bytes(npz_bytes(X=X[:300], y=y[:300]))
    done = deepclust(
        "run",
        str(data),
        "--method",
        "ae_kmeans",
        "-k",
        "10",
        "--quiet",
        "--threads",
        "1",
        "--params",
        '{"pretrain_epochs": 2, "hidden_dims": [32]}',
        "--history-out",
        str(history),
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["versions"]["torch_threads"] == 1
    lines = [json.loads(line) for line in history.read_text().splitlines()]
    assert {"pretrain", "kmeans"} <= {line["phase"] for line in lines}
    scored = [line for line in lines if "metrics" in line]
    assert (
        scored and scored[-1]["metrics"]["acc"] == record["acc"]
    )  # the final labels, scored as the result is


def test_run_refuses_bad_params_and_unknown_methods(tmp_path):
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).random((20, 3)))
    bad = deepclust("run", str(data), "--method", "dec", "-k", "3", "--params", '{"gamma": 1}')
    assert bad.returncode == 2 and "gamma" in bad.stderr and "Traceback" not in bad.stderr
    unknown = deepclust("run", str(data), "--method", "nope", "-k", "3")
    assert unknown.returncode == 2 and "unknown method" in unknown.stderr
    too_many = deepclust("run", str(data), "--method", "kmeans", "-k", "50")
    assert too_many.returncode == 2 and "n_clusters" in too_many.stderr


def test_a_collapsed_training_fails_with_its_cause_and_no_traceback(tmp_path, digits):
    data = tmp_path / "x.npy"
    np.save(data, digits[0][:300].reshape(300, -1))
    params = {"pretrain_epochs": 5, "pretrain_lr": 0.1, "hidden_dims": [64, 64, 128],
              "batch_size": 64}  # tests/core/test_autoencoder.py: every code ends the same
    done = deepclust("run", str(data), "--method", "ae_kmeans", "-k", "10", "--params",
                     json.dumps(params), "--quiet")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "collapsed" in done.stderr and "pretrain_lr" in done.stderr and not done.stdout


def test_methods_prints_every_schema():
    done = deepclust("methods")
    assert done.returncode == 0
    names = {m["name"]: m for m in json.loads(done.stdout)}
    assert {"kmeans", "ae_kmeans", "dec", "idec"} <= set(names)
    assert names["dec"]["params_schema"]["properties"]["tol"]["default"] == 0.001


def test_run_shows_a_progress_bar_on_a_terminal_and_json_lines_when_piped(tmp_path, digits):
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    X, y = digits
    data = tmp_path / "digits.npz"
    data.write_bytes(npz_bytes(X=X[:300], y=y[:300]))
    args = [
        "run",
        str(data),
        "--method",
        "ae_kmeans",
        "-k",
        "10",
        "--params",
        '{"pretrain_epochs": 3, "hidden_dims": [32]}',
    ]
    terminal, stderr = pty.openpty()
    fcntl.ioctl(stderr, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr
    )
    os.close(stderr)
    shown = b""
    while select.select([terminal], [], [], 300)[0]:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the command ended and closed its terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    assert process.wait(timeout=60) == 0
    bar = shown.decode()
    assert "pretrain" in bar and "3/3" in bar and "loss=" in bar and "kmeans" in bar
    assert '{"phase"' not in bar
    assert json.loads(process.stdout.read())["n"] == 300

    piped = deepclust(*args)  # stderr is a pipe: one JSON line per record, as before
    assert piped.returncode == 0, piped.stderr
    records = [json.loads(line) for line in piped.stderr.splitlines() if line.startswith("{")]
    assert [r["phase"] for r in records].count("pretrain") == 3 and "\r" not in piped.stderr
