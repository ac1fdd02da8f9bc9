"""The seed methods re-measured in the papers' setting (issue 30): a strong pretrained teacher, an ImageNet student,
two seeds, one table.

Teacher: kdmark-68-teacher (the zoo's, ImageNet MobileNetV2 trained on the labelled plus 17k pseudo-labelled faces,
3.34% on the held-out split). Student: MobileNetV2 x1.0 from ImageNet (the torchvision weights in
../shared/weights: KD-Loss, MobileFAN and Appl. Sci. all use an ImageNet MobileNet student; Hong & Lin's
MobileViT-v2-0.5 has no offline weights here) with each method's head, trained with and without the method's
distillation on the same faces, schedule and seed. For KD-Loss the Tough teacher is kdmark-68-teacher and the
Tolerant teacher is kdmark-68-teacher fine-tuned on ASM soft landmarks (p = 90%). Then the Appl. Sci. pruning claim:
its distilled student pruned by 25% and 50% (next-layer reconstruction error against L2 magnitude, the same
distillation fine-tune), with the CPU latency the prune job measures.

Budget (written down, as the issue asks): the 1094 labelled 300-W training faces (the fixed 10% held out by photo
is the score), 96-px crops, 10 epochs, batch 32, AdamW lr 2e-3 cosine with 1 warm-up epoch; pruning fine-tunes 5
epochs. About 2.5 hours of this 2-core CPU alone.

Resumable across sessions: every finished run appends its row to RESULTS (committed, with each run's per-epoch
log beside it), and a rerun skips rows already there; runs whose checkpoint a later run needs (the Tolerant teacher,
the distilled students that are pruned) are retrained when their folder did not survive.

  PYTHONPATH=. python scripts/bench_seed_methods.py            # run what is missing, then print the table
  PYTHONPATH=. python scripts/bench_seed_methods.py --table    # only the table
  PYTHONPATH=. python scripts/bench_seed_methods.py --dry-run  # list the commands
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = Path("runs/seed_methods")
RESULTS = Path("models/seed_methods/results.csv")
DATA = "../shared/data/300w"
WEIGHTS = "../shared/weights/mobilenet_v2-b0353104.pth"
TEACHER = "kdmark-68-teacher"
SEEDS = (0, 1)
FIELDS = ["name", "method", "arm", "seed", "nme", "fr", "auc", "epochs", "s_per_epoch", "wall_s", "params", "macs",
          "latency_ms_1t", "command"]


@dataclass
class Run:
    name: str
    method: str
    arm: str
    seed: int
    argv: list[str]
    needs: list[str] = field(default_factory=list)  # runs whose checkpoint this one reads

    @property
    def out(self) -> Path:
        return RUNS / self.name

    def command(self) -> str:
        return " ".join(["kdmark", *self.argv, f"out_dir={self.out}"])


def common(seed: int, epochs: int = 10) -> list[str]:
    return ["data.input_size=96", f"epochs={epochs}", "data.num_workers=0", "progress=false", f"seed={seed}",
            f"model.pretrained={WEIGHTS}", f"data.root={DATA}"]


def plan() -> list[Run]:
    tol = Run("kdloss_tolerant", "KD-Loss", "Tolerant teacher (kdmark-68-teacher fine-tuned on ASM soft landmarks)",
              0, ["train", "recipes/300w_mbv2_heatmap.yaml", "data.input_size=192", "epochs=3", "data.num_workers=0",
                  "progress=false", "seed=0", f"data.root={DATA}", f"init_from={TEACHER}", "asm_variance=0.9",
                  "optim.lr=0.0005", "optim.warmup_epochs=0"])
    runs = [tol]
    for s in SEEDS:
        c = common(s)
        t = f"teachers=[{TEACHER}]"
        hm, jt = "recipes/300w_mbv2_heatmap.yaml", "recipes/300w_mbv2_joint.yaml"
        dc, rg = "recipes/300w_mbv2_deconv.yaml", "recipes/300w_mbv2_regression.yaml"
        runs += [
            Run(f"hong_lin_plain_s{s}", "Hong & Lin", "none", s, ["train", hm, *c]),
            # their student's heads start from the teacher's (same width); ours start random, and 100 x MSE from
            # the first step drives its sigmoid maps to zero (hong_lin_kd_noramp below: 16.6%): ramped over 2 epochs
            Run(f"hong_lin_kd_s{s}", "Hong & Lin", "heatmaps, 100 x MSE (their code), ramped in over 2 epochs", s,
                ["distill", hm, *c, t, "kd.w_heatmap=100", "kd.heatmap_kind=mse", "kd.warmup_epochs=2"]),
            Run(f"applsci_plain_s{s}", "Appl. Sci.", "none", s, ["train", jt, *c]),
            Run(f"applsci_kd_s{s}", "Appl. Sci.", "loss3: pooled features, 1x1 adapter, MSE, weight 1", s,
                ["distill", jt, *c, t, "kd.w_pooled_feature=1.0"]),
        ]
        for importance in ("reconstruction", "l2"):
            for ratio in (0.25, 0.5):
                runs.append(Run(
                    f"prune_{importance}_{int(ratio * 100)}_s{s}", "Appl. Sci. pruning",
                    f"{importance} {int(ratio * 100)}%, 5-epoch loss3 fine-tune from kdmark-68-teacher", s,
                    ["prune", str(RUNS / f"applsci_kd_s{s}" / "last.ckpt"), f"ratio={ratio}",
                     f"importance={importance}", "schedule=global", "finetune_epochs=5", f"teacher={TEACHER}",
                     "train.progress=false", "train.data.num_workers=0", f"train.seed={s}"],
                    needs=[f"applsci_kd_s{s}"]))
        runs += [
            Run(f"mobilefan_plain_s{s}", "MobileFAN", "none", s, ["train", dc, *c]),
            Run(f"mobilefan_kd_s{s}", "MobileFAN", "feature-aligned 1 + feature-similarity 1 (rescaled for AWing)", s,
                ["distill", dc, *c, t, "kd.w_feature_aligned=1.0", "kd.w_feature_similarity=1.0"]),
            Run(f"kdloss_plain_s{s}", "KD-Loss", "none (plain L2)", s, ["train", rg, *c, "loss.coords=mse"]),
            Run(f"kdloss_kd_s{s}", "KD-Loss", "KD-Loss, code preset, supervised weight 0", s,
                ["distill", rg, *c, "loss.coords=mse", f"teachers=[{TEACHER},{RUNS / tol.name / 'last.ckpt'}]",
                 "kd.w_kd_loss=1.0", "kd.kd_loss_preset=code", "kd.w_sup=0.0"], needs=[tol.name]),
        ]
    runs.append(Run("hong_lin_kd_noramp_s0", "Hong & Lin", "heatmaps, 100 x MSE from the first step (no ramp)", 0,
                    ["distill", "recipes/300w_mbv2_heatmap.yaml", *common(0), f"teachers=[{TEACHER}]",
                     "kd.w_heatmap=100", "kd.heatmap_kind=mse"]))
    return runs


def read_results() -> dict[str, dict]:
    if not RESULTS.exists():
        return {}
    with RESULTS.open() as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def write_results(rows: dict[str, dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows(rows.values())
    tmp.replace(RESULTS)


def checkpoint(run: Run) -> Path:
    return run.out / ("pruned.ckpt" if run.argv[0] == "prune" else "last.ckpt")


def execute(run: Run) -> float:
    """Run one command into its own folder under RUNS (a folder this script made; an unfinished one is replaced)."""
    if run.out.exists():
        shutil.rmtree(run.out)
    RUNS.mkdir(parents=True, exist_ok=True)
    log = RUNS / f"{run.name}.log"
    start = time.perf_counter()
    with log.open("w") as f:
        rc = subprocess.call(["kdmark", *run.argv, f"out_dir={run.out}"], stdout=f, stderr=subprocess.STDOUT,
                             cwd=ROOT)
    if rc != 0:
        sys.exit(f"{run.name} failed (exit {rc}); its log: {log}")
    return time.perf_counter() - start


def score(run: Run, wall: float) -> dict:
    """The final epoch's model (no choice by held-out score) evaluated on the held-out faces, FR and AUC at 0.1."""
    ev = run.out / "eval-heldout"
    subprocess.check_call(["kdmark", "eval", str(checkpoint(run)), "--data", DATA, "--split", "train", "--heldout",
                           "0.1", "--threshold", "0.1", "--out", str(ev)], cwd=ROOT, stdout=subprocess.DEVNULL)
    m = json.loads((ev / "metrics.json").read_text())
    row = {"name": run.name, "method": run.method, "arm": run.arm, "seed": run.seed, "nme": f"{m['nme']:.6f}",
           "fr": f"{m['fr']:.6f}", "auc": f"{m['auc']:.6f}", "wall_s": f"{wall:.0f}", "command": run.command()}
    log_dir = RESULTS.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    if run.argv[0] == "prune":
        rep = json.loads((run.out / "prune_report.json").read_text())
        row |= {"params": rep["after"]["params"], "macs": rep["after"]["macs"],
                "latency_ms_1t": f"{rep['after']['latency_ms_1t']:.3f}", "epochs": 5}
        (log_dir / f"{run.name}.prune_report.json").write_text(json.dumps(rep, indent=1))
        metrics = run.out / "finetune" / "metrics.csv"
    else:
        metrics = run.out / "metrics.csv"
    rows = list(csv.DictReader(metrics.open()))
    row |= {"epochs": len(rows), "s_per_epoch": f"{statistics.median(float(r['train_time_s']) for r in rows):.1f}"}
    shutil.copy(metrics, log_dir / f"{run.name}.metrics.csv")
    return row


def table(rows: dict[str, dict]) -> str:
    """Mean of the two seeds +- half their spread, and the relative change against the same method without."""
    def stat(names: list[str]) -> tuple[float, float, int] | None:
        v = [100 * float(rows[n]["nme"]) for n in names if n in rows]
        if not v:
            return None
        return statistics.mean(v), (max(v) - min(v)) / 2, len(v)

    out = ["| method | arm | NME_io (mean of seeds +- half spread) | seeds | vs. without | s per epoch |",
           "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[str]] = {}
    for r in rows.values():
        base = r["name"].rsplit("_s", 1)[0] if r["name"][-3:-1] == "_s" else r["name"]
        groups.setdefault((r["method"], base), []).append(r["name"])
    for (method, base), names in groups.items():
        st = stat(names)
        ref_base = (base.replace("_kd", "_plain") if base.endswith("_kd") else
                    "applsci_kd" if base.startswith("prune_") else None)
        ref = stat([n.replace(base, ref_base) for n in names]) if ref_base else None
        change = f"{100 * (st[0] / ref[0] - 1):+.1f}%" if ref and ref[2] == st[2] else ""
        sec = statistics.median(float(rows[n]["s_per_epoch"]) for n in names)
        out.append(f"| {method} | {rows[names[0]]['arm']} | {st[0]:.3f}% +- {st[1]:.3f} | {st[2]} | {change} | "
                   f"{sec:.1f} s |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", action="store_true", help="print the table of RESULTS and stop")
    ap.add_argument("--dry-run", action="store_true", help="list the commands of the runs still to do")
    ap.add_argument("--only", default="", help="comma-separated run names (default: all)")
    args = ap.parse_args()
    rows = read_results()
    runs = plan()
    by_name = {r.name: r for r in runs}
    if not args.table:
        todo = [r for r in runs if r.name not in rows and (not args.only or r.name in args.only.split(","))]
        for run in todo:
            if args.dry_run:
                print(run.command())
                continue
            for dep in run.needs:  # a checkpoint a later run reads, from a folder that did not survive
                if not checkpoint(by_name[dep]).exists():
                    print(f"[{time.strftime('%H:%M:%S')}] retraining {dep} (its checkpoint is needed)", flush=True)
                    execute(by_name[dep])
            print(f"[{time.strftime('%H:%M:%S')}] {run.name}: {run.command()}", flush=True)
            rows[run.name] = score(run, execute(run))
            write_results(rows)
            print(f"[{time.strftime('%H:%M:%S')}] {run.name}: NME {100 * float(rows[run.name]['nme']):.3f}% "
                  f"({rows[run.name]['wall_s']} s)", flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
