"""Print a Markdown table of training runs: the best validation epoch of each (NME, FR, AUC from metrics.csv),
the median training time of an epoch (robust to another job briefly sharing the CPU) and, where the benchmark
scripts wrote NAME.time beside the folder, the wall time of the whole command.
  python scripts/summarise_runs.py runs/methods/*/"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path


def summarise(run: Path) -> str:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    scored = [r for r in rows if r.get("val_nme")]
    best = min(scored, key=lambda r: float(r["val_nme"]))
    epoch_s = statistics.median(float(r["train_time_s"]) for r in rows)
    timing = run.with_name(run.name + ".time")
    wall = timing.read_text().split()[0] + " s" if timing.exists() else "-"
    return (f"| {run.name} | {100 * float(best['val_nme']):.3f}% | {100 * float(best['val_fr']):.2f}% | "
            f"{float(best['val_auc']):.4f} | {best['epoch']}/{rows[-1]['epoch']} | {epoch_s:.1f} s | {wall} |")


def main(paths: list[str]) -> None:
    print("| run | best val NME_io | FR@0.1 | AUC@0.1 | best epoch | s per epoch (median) | wall |")
    print("|---|---|---|---|---|---|---|")
    for p in paths:
        run = Path(p.rstrip("/"))
        if (run / "metrics.csv").exists():
            print(summarise(run))


if __name__ == "__main__":
    main(sys.argv[1:])
