"""Are two run folders of the same pipeline the same? For a deterministic job (the default `kdmark run`) after a
change that should not alter it: every stage's per-epoch validation NME, every checkpoint's tensors (torch.equal),
the eval stage's metrics and the exported ONNX file's sha256.

  python scripts/compare_runs.py RUN_A RUN_B      (exit status 1 when anything differs)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

from kdmark.io import sha256_of


def _val_nme(path: Path) -> list[str]:
    with open(path) as f:
        return [r.get("val_nme", "") for r in csv.DictReader(f)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    args = ap.parse_args()
    same = True

    def report(what: str, equal: bool, detail: str = "") -> None:
        nonlocal same
        same &= equal
        print(f"{'same' if equal else 'DIFFERENT':<10} {what}{detail}")

    for log in sorted(args.a.rglob("metrics.csv")):
        rel = log.relative_to(args.a)
        other = args.b / rel
        a = _val_nme(log)
        report(f"{rel} val NME per epoch", other.is_file() and a == _val_nme(other), f" ({len(a)} epochs)")
    for ckpt in sorted(args.a.rglob("*.ckpt")):
        rel = ckpt.relative_to(args.a)
        other = args.b / rel
        if not other.is_file():
            report(f"{rel}", False, " (missing in B)")
            continue
        sa = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        sb = torch.load(other, map_location="cpu", weights_only=True)["state_dict"]
        report(f"{rel} weights", sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa))
    for summary in sorted(args.a.rglob("summary.json")):
        rel = summary.relative_to(args.a)
        keys = ("model", "nme", "fr", "auc")
        rows_a = [{k: r[k] for k in keys} for r in json.loads(summary.read_text())]
        other = args.b / rel
        rows_b = [{k: r[k] for k in keys} for r in json.loads(other.read_text())] if other.is_file() else None
        report(f"{rel} metrics", rows_a == rows_b,
               "".join(f"\n           {r['model']:<14} NME {r['nme'] * 100:.3f}%  FR {r['fr'] * 100:.2f}%  "
                       f"AUC {r['auc']:.4f}" for r in rows_a))
    for onnx in sorted(args.a.rglob("*.onnx")):
        rel = onnx.relative_to(args.a)
        other = args.b / rel
        report(f"{rel} sha256", other.is_file() and sha256_of(onnx) == sha256_of(other))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
