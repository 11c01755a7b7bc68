"""bench/README.md, generated from bench/README.in.md and bench/results/*.jsonl.

    python bench/report.py > bench/README.md      # the whole page (the same as --write)
    python bench/report.py --write                # writes bench/README.md
    python bench/report.py FILES... [--per-seed]  # only the tables of these result files

The page is the template with its directive lines replaced by tables:
    @table FILE [--per-seed]        one table per data set of bench/results/FILE
    @rdc-table RESULTS GEOMETRY     R-DC's table with the offline geometry (bench/rdc.py)
    @paper                          the paper's figures beside ours
    @files                          every results file and what it holds

One row per method and exact parameter set; "settings" lists the parameters that differ
from the method's defaults. "AE reused" counts runs whose autoencoder came from
bench/cache (pretrained by an earlier method of the same seed): their wall time excludes
pretraining. The output depends only on the template and the results files (no clock, no
machine state), so regenerating it on an unchanged tree gives the same bytes.
"""
from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from common import RESULTS, ROOT

sys.path.insert(0, str(ROOT))
from core.registry import get_method  # noqa: E402

TEMPLATE = ROOT / "bench" / "README.in.md"
README = ROOT / "bench" / "README.md"


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
    # DSC-Net alone (self_supervision=False) has no J2 and no head: their settings do not apply
    if method == "dscnss" and params.get("self_supervision") is False:
        params = {k: v for k, v in params.items()
                  if k not in DSCNSS_MODULE_ONLY and not k.startswith("j2_")}
    changed = {k: v for k, v in params.items()
               if defaults.get(k) != v and k != "pretrain_epochs"}
    return ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "defaults"


def threads(runs: list[dict]) -> str:
    """torch's CPU threads per run; runs recorded before it was kept used all cores."""
    counts = {str(r.get("versions", {}).get("torch_threads") or "all") for r in runs}
    return "/".join(sorted(counts))


def dates(runs: list[dict]) -> str:
    days = sorted({r["date"][:10] for r in runs if r.get("date")})
    return "-" if not days else days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}"


def read_runs(file: Path) -> list[dict]:
    """A results file's runs; side files' records (e.g. *_geometry.jsonl) have no "acc"."""
    records = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return [r for r in records if "acc" in r]


def grouped(files: list[Path]) -> dict[tuple, list[dict]]:
    """(file stem, data set, n, method, settings, pretrain epochs, device, threads) -> runs,
    in the order first recorded. Runs with other CPU thread counts are other experiments
    (other float reductions, hence other pretrained weights) and get their own rows."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for file in files:
        for r in read_runs(file):
            key = (file.stem, r["dataset"], r["n"], r["method"],
                   settings(r["method"], r["params"]), r["params"].get("pretrain_epochs", "-"),
                   r["device"], threads([r]))
            groups[key].append(r)
    return groups


def tables(files: list[Path], per_seed: bool = False) -> list[str]:
    """One markdown table per file and data set; rows in the order they were first recorded."""
    lines, current = [], None
    header = ("| method | settings | pretrain epochs | seeds | ACC % | NMI % | ARI % | wall s "
              "| peak MB | device | threads | AE reused | date |")
    for key, runs in sorted(grouped(files).items(), key=lambda g: g[0][:2]):
        stem, dataset, n, method, setting, epochs, device, _ = key
        if (stem, dataset) != current:
            current = (stem, dataset)
            if lines:
                lines.append("")
            lines += [f"**{dataset}** (n={n}, `bench/results/{stem}.jsonl`)", "",
                      header + (" ACC % by seed |" if per_seed else ""),
                      "|---" * (13 + per_seed) + "|"]
        ordered = sorted(runs, key=lambda r: r["seed"])
        accs = " / ".join(f"{100 * r['acc']:.1f}" for r in ordered)
        by_seed = f" {accs} (seeds {', '.join(str(r['seed']) for r in ordered)}) |"
        reused = sum(bool(r.get("reused_pretrained_weights")) for r in runs)
        lines.append(
            f"| {method} | {setting} | {epochs} | {len(runs)} | {fmt([r['acc'] for r in runs])} | "
            f"{fmt([r['nmi'] for r in runs])} | {fmt([r['ari'] for r in runs])} | "
            f"{fmt([r['wall_s'] for r in runs], 1, 0)} | "
            f"{fmt([r['peak_mb'] for r in runs], 1, 0)} | "
            f"{device} | {threads(runs)} | {reused}/{len(runs)} | {dates(runs)} |"
            + (by_seed if per_seed else ""))
    return lines


# The papers' figures (ACC, NMI, ARI in %; None where not reported) beside the row of ours
# that runs the same protocol: (results file, data set, method, settings, threads) picks it.
PAPER = [
    ("baselines", "usps", "ae_kmeans", "defaults", "all", (70.9, 68.4, 58.8),
     "DEC-keras re-run, 10 trials ([dec](../docs/methods/dec.md))"),
    ("baselines", "usps", "dec", "update_interval=30", "all", (76.4, 78.7, 70.7),
     "DEC-keras re-run, 10 trials ([dec](../docs/methods/dec.md))"),
    ("baselines", "usps", "idec", "lr=0.1, momentum=0.99, optimizer=sgd, update_interval=30",
     "all", (76.1, None, None),
     "IDEC paper, as quoted by IDEC-toy ([idec](../docs/methods/idec.md))"),
    ("dccf", "usps", "idec", "hidden_dims=[500, 500, 1000], lr=0.1, momentum=0.99, "
     "optimizer=sgd, update_interval=30", "1", (77.14, 79.15, None),
     "DCCF's IDEC re-run, Tables 2–3"),
    ("dccf", "usps", "dccf", "defaults", "1", (85.53, 82.51, None), "DCCF Tables 2–3"),
    ("dccf", "usps", "dccf", "contractive=False, focal=False", "1", (77.16, 79.29, None),
     "DCCF Table 5, neither term"),
    ("dccf", "usps", "dccf", "focal=False", "1", (77.33, 79.67, None),
     "DCCF Table 5, contractive only"),
    ("dccf", "usps", "dccf", "contractive=False", "1", (80.44, 80.75, None),
     "DCCF Table 5, focal only"),
    ("n2d_dcn", "usps", "n2d", "defaults", "1", (95.8, 90.1, None),
     "N2D paper (1000 pretraining epochs; ours 50)"),
    ("n2d_dcn", "mnist", "n2d", "defaults", "1", (97.9, 94.2, None),
     "N2D paper (1000 pretraining epochs; ours 50)"),
    ("dscnss", "orl", "dscnss", "preset=orl", "1", (89.21, None, None),
     "DSCNSS Table 4 (100 − error)"),
    ("dscnss", "orl", "dscnss", "preset=orl, self_supervision=False", "1", (86.0, None, None),
     "DSCNSS Table 4, DSC-Net-ℓ2 (the PyTorch port: 85.50 / 91.95)"),
    ("dscnss", "coil20", "dscnss", "j2_epochs=300, preset=coil20", "1", (96.33, None, None),
     "DSCNSS Table 4 (100 − error)"),
    ("dscnss", "coil20", "dscnss", "preset=coil20, self_supervision=False", "1",
     (93.14, None, None), "DSCNSS Table 4, DSC-Net-ℓ2 (the PyTorch port: 91.00 / 95.87)"),
    ("dscnss", "extended_yaleb_48x42", "dscnss", "j2_epochs=300, preset=yaleb", "1",
     (98.15, None, None), "DSCNSS Table 4 (100 − error)"),
    ("dscnss", "extended_yaleb_48x42", "dscnss", "preset=yaleb, self_supervision=False", "1",
     (97.33, None, None), "DSCNSS Table 4, DSC-Net-ℓ2 (the PyTorch port: 97.33 / 96.34)"),
]
# R-DC's rows carry no settings column of their own (bench/rdc.py groups them): pick by phase 2.
PAPER_RDC = [
    ("breastmnist", "proximity", (66.7, None, None), "R-DC Table 3 (F1 macro 62.8)"),
    ("breastmnist", "none", (64.2, None, None), "R-DC ablation, phase 1 only"),
]


def paper_table() -> list[str]:
    groups = grouped(sorted(RESULTS.glob("*.jsonl")))
    rows = [(file, dataset, method, setting, figures, source,
             [r for (f, d, _, m, s, _, _, t), runs in groups.items()
              if (f, d, m, s, t) == (file, dataset, method, setting, wanted) for r in runs])
            for file, dataset, method, setting, wanted, figures, source in PAPER]
    rdc = read_runs(RESULTS / "rdc.jsonl")
    rows += [("rdc", dataset, "rdc", f"phase2={phase2}", figures, source,
              [r for r in rdc if r["dataset"] == dataset and r["params"]["phase2"] == phase2
               and r["params"].get("core_rule", "above") == "below"])
             for dataset, phase2, figures, source in PAPER_RDC]
    lines = ["| data set | method | our run (settings) | seeds | ACC % ours | ACC % paper "
             "| NMI % ours | NMI % paper | ARI % ours | ARI % paper | paper's source | results |",
             "|---" * 12 + "|"]
    for file, dataset, method, setting, figures, source, runs in rows:
        ours = [fmt([r[m] for r in runs]) for m in ("acc", "nmi", "ari")]
        paper = ["-" if v is None else str(v) for v in figures]
        lines.append(f"| {dataset} | {method} | {setting} | {len(runs)} | {ours[0]} | {paper[0]} "
                     f"| {ours[1]} | {paper[1]} | {ours[2]} | {paper[2]} | {source} "
                     f"| `{file}.jsonl` |")
    return lines


def rdc_table(results: str, geometry: str) -> list[str]:
    from rdc import table  # bench/rdc.py, which imports R-DC's filter for the offline purity

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        table(RESULTS / results, RESULTS / geometry)
    return out.getvalue().rstrip("\n").splitlines()


def files_table() -> list[str]:
    lines = ["| file | runs | data sets | methods | dates |", "|---|---|---|---|---|"]
    for file in sorted(RESULTS.glob("*.jsonl")):
        runs = read_runs(file)
        if not runs:
            lines.append(f"| `{file.name}` | - | records without clustering scores (a results "
                         "file's offline metrics, profiles) | - | - |")
            continue
        datasets = ", ".join(sorted({r["dataset"] for r in runs}))
        methods = ", ".join(sorted({r["method"] for r in runs}))
        lines.append(f"| `{file.name}` | {len(runs)} | {datasets} | {methods} | {dates(runs)} |")
    return lines


def page() -> str:
    out = []
    for line in TEMPLATE.read_text().splitlines():
        words = line.split()
        if line.startswith("@table "):
            out += tables([RESULTS / words[1]], per_seed="--per-seed" in words)
        elif line.startswith("@rdc-table "):
            out += rdc_table(words[1], words[2])
        elif line.strip() == "@paper":
            out += paper_table()
        elif line.strip() == "@files":
            out += files_table()
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def main() -> None:
    args = sys.argv[1:]
    files = [Path(f) for f in args if not f.startswith("--")]
    if files:
        print("\n".join(tables(files, per_seed="--per-seed" in args)))
    elif "--write" in args:
        README.write_text(page())
    else:
        sys.stdout.write(page())


if __name__ == "__main__":
    main()
