"""``kdmark train | distill | prune | run``: every verb that trains, on one loop and one run set-up."""

from __future__ import annotations

import argparse

from kdmark.cli.args import recipe_and_overrides, settings_help

__all__ = ["register"]


def _fit(args: argparse.Namespace, distill: bool) -> int:
    """``kdmark train`` and ``kdmark distill``: the same loop, with or without teachers."""
    from kdmark.config import DistillConfig, TrainConfig, load_config
    from kdmark.jobs.train import distill as distill_job
    from kdmark.jobs.train import train as train_job

    recipe, overrides = recipe_and_overrides(args.recipe, args.overrides)
    cfg = load_config(DistillConfig if distill else TrainConfig, recipe, overrides)
    result = (distill_job if distill else train_job)(cfg)
    best = result.metrics.get("best_val_nme")
    if result.rank == 0:
        print(f"best checkpoint: {result.best_checkpoint} (val NME {best * 100:.3f}% at epoch "
              f"{result.metrics.get('best_epoch')})")
    return 0


def train(args: argparse.Namespace) -> int:
    return _fit(args, distill=False)


def distill(args: argparse.Namespace) -> int:
    return _fit(args, distill=True)


def prune(args: argparse.Namespace) -> int:
    from kdmark.config import PruneConfig, load_config
    from kdmark.jobs.prune import format_report, prune_checkpoint

    cfg = load_config(PruneConfig, None, [f"checkpoint={args.checkpoint}", *args.overrides])
    result = prune_checkpoint(cfg)
    for line in format_report(result):
        print(line)
    print(f"wrote {result.checkpoint} and {result.checkpoint.parent / 'prune_report.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from kdmark.jobs.pipeline import run_pipeline

    if args.pipeline is not None and "=" in args.pipeline:  # `kdmark run epochs=5`: overrides, default pipeline
        args.overrides, args.pipeline = [args.pipeline, *args.overrides], None
    outputs = run_pipeline(args.pipeline, args.overrides)
    for name, out in outputs.items():
        print(f"{name:<20} {out}")
    return 0


def register(verbs) -> None:
    """kdmark train | distill | prune | run."""
    p = verbs.add_parser("train", help="train a landmark detector from a recipe", epilog=settings_help("train"),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=None,
                   help="YAML recipe (see recipes/); none: the built-in defaults and the overrides")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=10 data.root=PATH")
    p.set_defaults(func=train)

    p = verbs.add_parser("distill", help="train a student with frozen teachers and distillation losses",
                         epilog=settings_help("distill"), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", nargs="?", default=None,
                   help="YAML recipe (see recipes/); none: the built-in defaults and the overrides")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. teachers=[t.ckpt] kd.w_heatmap=100")
    p.set_defaults(func=distill)

    p = verbs.add_parser("prune", help="filter pruning with distillation retraining, and what it bought")
    p.add_argument("checkpoint")
    p.add_argument("overrides", nargs="*", help="ratio=0.5 importance=reconstruction|l1|l2|taylor "
                   "schedule=layerwise|global epochs_per_layer=1 finetune_epochs=5 train.data.root=PATH ...")
    p.set_defaults(func=prune)

    p = verbs.add_parser("run", help="run a whole pipeline: teachers, students, eval, export")
    p.add_argument("pipeline", nargs="?", default=None,
                   help="pipeline YAML (see pipelines/); none: the default pipeline on built-in synthetic faces")
    p.add_argument("overrides", nargs="*", help="settings for every stage, e.g. data.root=PATH epochs=5")
    p.set_defaults(func=run)
