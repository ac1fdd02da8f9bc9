"""Training throughput of kdmark's real loop against a minimal plain-PyTorch loop, setting by setting.

    python scripts/bench_train_speed.py --data ../shared/data/300w [--steps 25] [--only teacher]

For each row: a fresh subprocess builds the run with kdmark's own set-up (the recipe recipes/300w_mbv2_heatmap.yaml
with the row's overrides) and
  1. trains with kdmark's loop (``kdmark.train``: Fabric, the cached and augmented dataset, EMA-free AdamW, gradient
     clipping, logging) for ``--steps`` optimiser steps; images/s is the loop's steady state (the first 5 steps,
     allocator warm-up and compilation, are left out: ``steady_images_per_s`` in metrics.csv);
  2. runs a plain loop (forward, backward, AdamW step) on the same model class and settings, over batches taken
     from kdmark's loader, for the same number of steps;
and reports the peak resident memory of the subprocess. Ratios are against the first row of the same model
(kdmark's defaults before issue 18), measured minutes apart on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {  # name -> overrides: the zoo's teacher size and a student size
    "teacher mbv2_100 128px": ["model.backbone=mobilenetv2_100", "data.input_size=128"],
    "student mbv2_050 96px": ["model.backbone=mobilenetv2_050", "data.input_size=96"],
}
BEFORE = ["precision=32-true", "memory_format=contiguous", "compile=false", "threads=2", "batch_size=32",
          "data.num_workers=2"]
ROWS = {  # name -> overrides on top of BEFORE
    "before (fp32, contiguous, eager, 2 workers)": [],
    "channels-last": ["memory_format=channels_last"],
    "channels-last, 0 workers": ["memory_format=channels_last", "data.num_workers=0"],
    "channels-last, 1 worker": ["memory_format=channels_last", "data.num_workers=1"],
    "channels-last, batch 64": ["memory_format=channels_last", "batch_size=64"],
    "channels-last, 1 thread": ["memory_format=channels_last", "threads=1"],
    "bf16-mixed, contiguous": ["precision=bf16-mixed"],
    "bf16-mixed, channels-last": ["precision=bf16-mixed", "memory_format=channels_last"],
    "channels-last, compiled": ["memory_format=channels_last", "compile=true"],
    "auto (the new defaults)": ["precision=auto", "memory_format=auto"],
    "auto, augmentation off (what the plain loop skips)": ["precision=auto", "memory_format=auto",
                                                          "augment.enabled=false"],
}


def one(data: str, overrides: list[str], steps: int) -> dict:
    """Both loops for one setting, in this process."""
    import itertools

    import torch

    from kdmark.config import TrainConfig, load_config
    from kdmark.engine.setup import cache_faces, prepare, resolve_auto
    from kdmark.engine.tasks import build_task
    from kdmark.jobs.train import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "300w_mbv2_heatmap.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"data.root={data}", f"out_dir={tmp}/run", "epochs=1", f"max_steps={steps}", "progress=false",
                "overwrite=true"]
        cfg = load_config(TrainConfig, recipe, base + overrides)
        cfg = load_config(TrainConfig, recipe, base + overrides + [f"data.max_samples={cfg.batch_size * (steps + 2)}"])
        res = train(cfg)
        cfg = resolve_auto(cfg)
        import csv

        with open(res.out_dir / "metrics.csv") as f:
            row = list(csv.DictReader(f))[-1]
        kdmark_ips = float(row["steady_images_per_s"])
        resolved = {"precision": cfg.precision, "memory_format": cfg.memory_format,
                    "num_workers": cfg.data.num_workers}
        # the plain loop: the same model, loss and batches, no framework
        run = prepare(cfg)  # kdmark's own set-up: the same model class, codec and data as the loop above
        cfg, data_ = run.cfg, run.data
        cache_faces(cfg, data_, run.fabric)
        task = build_task(cfg, run.model)
        loader = torch.utils.data.DataLoader(data_.train, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
        batches = list(itertools.islice(loader, 4))
        cl = cfg.memory_format == "channels_last"
        if cl:
            task = task.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-4)
        step_fn = torch.compile(task) if cfg.compile else task
        bf16 = cfg.precision.startswith("bf16")
        task.train()
        t0 = None
        for i in range(steps):
            if i == 5:
                t0 = time.perf_counter()
            b = dict(batches[i % len(batches)])
            if cl:
                b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = step_fn(b)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        plain_ips = (steps - 5) * cfg.batch_size / (time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kdmark": kdmark_ips, "plain": plain_ips, "peak_mb": peak_mb, "resolved": resolved}


def teacher_cost(runs: int = 5) -> None:
    """A distillation step's teacher forward (kdmark-68-teacher, batch 32 of 96-px student images, resized to its
    128 px), as DistillTask runs it (no_grad, eval): contiguous weights against channels-last, as fit converts them."""
    import torch

    from kdmark import zoo
    from kdmark.engine.tasks import Teacher

    teacher = Teacher(str(zoo.resolve("kdmark-68-teacher")), 96, 24)
    x = torch.rand(32, 3, 96, 96).contiguous(memory_format=torch.channels_last)

    def ms() -> float:
        for _ in range(2):
            teacher(x)
        t0 = time.perf_counter()
        for _ in range(runs):
            teacher(x)
        return (time.perf_counter() - t0) / runs * 1e3

    before = ms()
    teacher.to(memory_format=torch.channels_last)
    after = ms()
    print(f"teacher forward per distillation step (batch 32): {before:.0f} ms with contiguous weights (before), "
          f"{after:.0f} ms channels-last (now), x{before / after:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--only", default=None, help="only models whose name contains this")
    ap.add_argument("--rows", default=None, help="only rows whose name contains one of these (comma-separated)")
    ap.add_argument("--teacher", action="store_true", help="only time a distillation teacher's forward pass")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: JSON overrides, run in this process
    args = ap.parse_args()
    if args.teacher:
        teacher_cost()
        return 0
    if args.one is not None:
        print("RESULT " + json.dumps(one(args.data, json.loads(args.one), args.steps)), flush=True)
        return 0
    print(f"{'model':<24} {'setting':<46} {'kdmark img/s':>12} {'plain img/s':>11} {'kdmark/plain':>12} "
          f"{'x before':>8} {'peak MB':>8}  resolved")
    for model, model_over in MODELS.items():
        if args.only and args.only not in model:
            continue
        ref = None
        for name, over in ROWS.items():
            if args.rows and not any(r in name for r in args.rows.split(",")) and ref is not None:
                continue
            cmd = [sys.executable, __file__, "--data", args.data, "--steps", str(args.steps), "--one",
                   json.dumps(BEFORE + model_over + over)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                print(f"{model:<24} {name:<46} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
                continue
            r = json.loads(line[0][7:])
            ref = ref or r["kdmark"]
            res = ", ".join(f"{k}={v}" for k, v in r["resolved"].items())
            print(f"{model:<24} {name:<46} {r['kdmark']:12.1f} {r['plain']:11.1f} {r['kdmark'] / r['plain']:12.2f} "
                  f"{r['kdmark'] / ref:8.2f} {r['peak_mb']:8.0f}  {res}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
