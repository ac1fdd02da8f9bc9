"""Markdown table of ``kdmark prune`` reports (prune_report.json): one row per report, the unpruned model first.
Latency ratios compare the pruned and unpruned model timed in the same process.
  python scripts/summarise_prune.py runs/prune_sweep/*/prune_report.json"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(name: str, m: dict, base: dict) -> str:
    lat = [k for k in m if k.startswith("latency_ms_")]
    times = " | ".join(f"{m[k]:.2f} ms ({m[k] / base[k]:.2f}x)" for k in sorted(lat))
    return (f"| {name} | {100 * m['val_nme']:.3f}% ({m['val_nme'] / base['val_nme'] - 1:+.1%}) | "
            f"{m['params'] / 1e6:.3f} M | {m['macs'] / 1e6:.1f} M | {m['size_bytes'] / 1e6:.2f} MB | {times} |")


def main(paths: list[str]) -> None:
    reports = [json.loads(Path(p).read_text()) for p in paths]
    if not reports:
        return
    lat = sorted(k for k in reports[0]["before"] if k.startswith("latency_ms_"))
    print("| model | val NME_io (vs unpruned) | params | MACs | checkpoint | "
          + " | ".join(f"CPU latency {k.removeprefix('latency_ms_')}" for k in lat) + " |")
    print("|---" * (5 + len(lat)) + "|")
    base = reports[0]["before"]
    print(row("unpruned", base, base))
    for r in reports:
        c = r["config"]
        print(row(f"{c['importance']} {c['ratio']:.0%}", r["after"], r["before"]))


if __name__ == "__main__":
    main(sys.argv[1:])
