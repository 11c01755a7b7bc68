"""Markdown tables (mean ± std over seeds) from bench/results/*.jsonl: the README's numbers.

    python bench/report.py [FILES...]

One row per method and exact parameter set; "settings" lists the parameters that differ
from the method's defaults. "AE reused" counts runs whose autoencoder came from
bench/cache (pretrained by an earlier method of the same seed): their wall time excludes
pretraining.
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT))
from core.registry import get_method  # noqa: E402


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


# Parameters added after runs were recorded, with the behaviour those earlier runs had.
BEFORE_PARAMETER = {"dscnss": {"j1_optimizer": "per_round", "pretrain_restarts": 0}}
DSCNSS_MODULE_ONLY = {"lambda3", "lambda4", "margin", "head_hidden", "head_relu", "mining"}


def settings(method: str, params: dict) -> str:
    try:
        defaults = get_method(method).Params().model_dump(mode="json")
    except KeyError:  # a peer library's method: show its settings as given
        return ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "pretrain_epochs")
    params = {**BEFORE_PARAMETER.get(method, {}), **params}
    if method == "dscnss" and params.get("self_supervision") is False:  # DSC-Net alone: no J2, no head
        params = {k: v for k, v in params.items() if k not in DSCNSS_MODULE_ONLY and not k.startswith("j2_")}
    changed = {k: v for k, v in params.items() if defaults.get(k) != v and k != "pretrain_epochs"}
    return ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "defaults"


def threads(runs: list[dict]) -> str:
    """torch's CPU threads per run; runs recorded before it was kept used the default (every core)."""
    return "/".join(sorted({str(r.get("versions", {}).get("torch_threads") or "all") for r in runs}))


def main() -> None:
    per_seed = "--per-seed" in sys.argv  # one more column: ACC of every seed, in seed order
    files = [Path(f) for f in sys.argv[1:] if f != "--per-seed"] or sorted(RESULTS.glob("*.jsonl"))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if "acc" not in r:  # a side file's record (e.g. *_geometry.jsonl), not a run's result
                    continue
                # CPU thread count changes float reductions, hence pretrained weights: runs with
                # different counts are different experiments and get their own rows
                key = (file.stem, r["dataset"], r["n"], r["method"], settings(r["method"], r["params"]),
                       r["params"].get("pretrain_epochs", "-"), r["device"], threads([r]))
                groups[key].append(r)
    current = None
    # one table per file and data set; rows in the order they were first recorded
    for (stem, dataset, n, method, setting, epochs, device, _), runs in sorted(groups.items(), key=lambda g: g[0][:2]):
        if (stem, dataset) != current:
            current = (stem, dataset)
            print(f"\n**{dataset}** (n={n}, `bench/results/{stem}.jsonl`)\n")
            print("| method | settings | pretrain epochs | seeds | ACC % | NMI % | ARI % | wall s | peak MB | device "
                  "| threads | AE reused |" + (" ACC % by seed |" if per_seed else ""))
            print("|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if per_seed else ""))
        ordered = sorted(runs, key=lambda r: r["seed"])
        accs = " / ".join(f"{100 * r['acc']:.1f}" for r in ordered)
        by_seed = f" {accs} (seeds {', '.join(str(r['seed']) for r in ordered)}) |"
        print(f"| {method} | {setting} | {epochs} | {len(runs)} | "
              f"{fmt([r['acc'] for r in runs])} | {fmt([r['nmi'] for r in runs])} | {fmt([r['ari'] for r in runs])} | "
              f"{fmt([r['wall_s'] for r in runs], 1, 0)} | {fmt([r['peak_mb'] for r in runs], 1, 0)} | {device} | {threads(runs)} | "
              f"{sum(bool(r.get('reused_pretrained_weights')) for r in runs)}/{len(runs)} |"
              + (by_seed if per_seed else ""))


if __name__ == "__main__":
    main()
