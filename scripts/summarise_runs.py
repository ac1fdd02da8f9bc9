"""Print a Markdown table of training runs: the best validation NME of each (from metrics.csv) and, where
``kdmark eval RUN/best.ckpt --heldout ...`` has written RUN/eval-heldout/metrics.json, that evaluation's NME, FR
and AUC at its threshold (scripts/eval_heldout.sh: 0.1); then the median training time of an epoch (robust to
another job briefly sharing the CPU) and, where the benchmark scripts wrote RUN.time beside the folder, the wall
time of the whole command.
  python scripts/summarise_runs.py runs/methods/*/"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path


def summarise(run: Path, label: str | None = None) -> str:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    best = min((r for r in rows if r.get("val_nme")), key=lambda r: float(r["val_nme"]))
    epoch_s = statistics.median(float(r["train_time_s"]) for r in rows)
    timing = run.with_name(run.name + ".time")
    wall = timing.read_text().split()[0] + " s" if timing.exists() else "-"
    held = run / "eval-heldout" / "metrics.json"
    if held.exists():
        m = json.loads(held.read_text())
        scores = f"{100 * m['nme']:.3f}% | {100 * m['fr']:.2f}% @{m['threshold']} | {m['auc']:.4f} @{m['threshold']}"
    else:
        scores = "- | - | -"
    nme = f"{100 * float(best['val_nme']):.3f}% (epoch {best['epoch']}/{rows[-1]['epoch']})"
    return f"| {label or run.name} | {nme} | {scores} | {epoch_s:.1f} s | {wall} |"


def main(paths: list[str]) -> None:
    print("| run | best val NME_io (training log) | held-out eval NME_io | FR | AUC | s per epoch (median) | wall |")
    print("|---|---|---|---|---|---|---|")
    runs = [Path(p.rstrip("/")) for p in paths if (Path(p) / "metrics.csv").exists()]
    names = [r.name for r in runs]
    for run in runs:  # runs of the same name in different folders (runs/x9/n*/kd) are told apart by their folder
        print(summarise(run, f"{run.parent.name}/{run.name}" if names.count(run.name) > 1 else None))


if __name__ == "__main__":
    main(sys.argv[1:])
