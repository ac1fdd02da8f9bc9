"""What a distillation step costs with ``kd.cached=true`` against online distillation and plain supervised training
of the same student (issue 26 item 3: a cached distillation epoch at most 1.15x a supervised one).

    PYTHONPATH=. python scripts/bench_cached_kd.py [--recipe recipes/zoo/kdmark-68-s-v2.yaml] [--steps 40]
        [--rounds 2] [overrides ...]

One process, the rows alternating ``--rounds`` times (these machines are noisy: the ratios are against the
supervised row of the same round). Every row is kdmark's own loop (``kdmark.train`` / ``kdmark.distill``) on the
recipe's student and teacher, on the labelled faces only (``data.extra=[]``: the cost of a step does not depend on
where its faces came from), for ``--steps`` optimiser steps; images/s is the loop's steady state (the first steps,
allocator warm-up, are left out: ``steady_images_per_s`` in metrics.csv). The cached row also reports its one-off
cost: the teacher's pass over every face before the first step, per face.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _steady(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv") as f:
        row = list(csv.DictReader(f))[-1]
    return float(row.get("steady_images_per_s") or row["images_per_s"])  # too few steps for a steady state


def one(mode: str, recipe: Path, steps: int, extra: list[str], tmp: str) -> dict:
    from kdmark.config import DistillConfig, load_config

    base = ["data.extra=[]", f"out_dir={tmp}/{mode}", "epochs=1", f"max_steps={steps}", "progress=false",
            "overwrite=true", "ema=0"]
    cfg = load_config(DistillConfig, recipe, base + extra + [f"kd.cached={'true' if mode == 'cached' else 'false'}"])
    start, said = time.perf_counter(), _Tee()
    with contextlib.redirect_stdout(said):
        res = _run(mode, cfg)
    wall = time.perf_counter() - start
    row = {"mode": mode, "images_per_s": _steady(res.out_dir), "wall_s": wall}
    m = re.search(r"ran once on (\d+) faces in (\d+) s", said.text)
    if m:
        row["cache_ms_per_face"] = 1000 * int(m.group(2)) / int(m.group(1))
    return row


class _Tee(io.StringIO):
    """Keeps what the run prints and still shows it."""

    def write(self, s: str) -> int:
        sys.__stdout__.write(s)
        return super().write(s)

    @property
    def text(self) -> str:
        return self.getvalue()


def _run(mode: str, cfg):
    """The supervised row is the same config without its teachers and distillation terms."""
    from kdmark.config import TrainConfig, from_dict, to_dict
    from kdmark.jobs.train import distill, train

    if mode == "supervised":
        plain = {k: v for k, v in to_dict(cfg).items() if k not in ("teachers", "kd", "unlabelled", "unlabelled_split")}
        return train(from_dict(TrainConfig, plain))
    return distill(cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "zoo" / "kdmark-68-s-v2.yaml")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="key=value settings on top of the recipe")
    args = ap.parse_args(argv)
    import torch

    print(f"recipe {args.recipe}, {args.steps} steps a row, {args.rounds} rounds, torch threads "
          f"{torch.get_num_threads()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for mode in ("supervised", "cached", "online"):
                row = one(mode, args.recipe, args.steps, args.overrides, tmp)
                row["round"] = r
                rows.append(row)
                once = f", teacher pass {row['cache_ms_per_face']:.1f} ms/face once" if "cache_ms_per_face" in row \
                    else ""
                print(f"round {r} {mode:>10}: {row['images_per_s']:.1f} images/s{once}", flush=True)
    print("\n| row | images/s (mean of rounds) | epoch cost vs supervised (same round, mean) |")
    print("|---|---|---|")
    for mode in ("supervised", "cached", "online"):
        mine = [x for x in rows if x["mode"] == mode]
        ratios = [next(s for s in rows if s["mode"] == "supervised" and s["round"] == x["round"])["images_per_s"]
                  / x["images_per_s"] for x in mine]
        print(f"| {mode} | {sum(x['images_per_s'] for x in mine) / len(mine):.1f} | "
              f"{sum(ratios) / len(ratios):.2f}x ({', '.join(f'{q:.2f}' for q in ratios)}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
