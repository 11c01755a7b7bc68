"""Markdown tables (mean ± std over seeds) from bench/results/*.jsonl: the README's numbers.

"AE reused" counts runs whose autoencoder came from bench/cache (pretrained by an earlier
method of the same seed): their wall time excludes pretraining.

    python bench/report.py [FILES...]
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from common import RESULTS


def fmt(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    files = [Path(f) for f in sys.argv[1:]] or sorted(RESULTS.glob("*.jsonl"))
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for file in files:
        for line in file.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                epochs = r["params"].get("pretrain_epochs", "-")
                groups[(file.stem, r["dataset"], r["n"], r["method"], epochs, r["device"])].append(r)
    current = None
    for (stem, dataset, n, method, epochs, device), runs in sorted(groups.items()):
        if (stem, dataset) != current:
            current = (stem, dataset)
            print(f"\n**{dataset}** (n={n}, `{stem}.jsonl`)\n")
            print("| method | pretrain epochs | seeds | ACC % | NMI % | ARI % | wall s | peak MB | device | AE reused |")
            print("|---|---|---|---|---|---|---|---|---|---|")
        print(f"| {method} | {epochs} | {len(runs)} | {fmt([r['acc'] for r in runs])} | "
              f"{fmt([r['nmi'] for r in runs])} | {fmt([r['ari'] for r in runs])} | "
              f"{fmt([r['wall_s'] for r in runs], 1, 0)} | {fmt([r['peak_mb'] for r in runs], 1, 0)} | {device} | "
              f"{sum(bool(r.get('reused_pretrained_weights')) for r in runs)}/{len(runs)} |")


if __name__ == "__main__":
    main()
