"""``kdmark eval | models | bench``: score checkpoints the literature's way, list the zoo, measure against peers."""

from __future__ import annotations

import argparse
import sys

from kdmark.cli.flags import SETTINGS_NOTE, add_config_flags, config_from_args
from kdmark.config import BenchConfig, EvalConfig

__all__ = ["register"]


def evaluate(args: argparse.Namespace) -> int:
    from kdmark.jobs.evaluate import evaluate as evaluate_job

    cfg = config_from_args(args)
    res = evaluate_job(cfg.model, cfg.data, split=cfg.split, out_dir=cfg.out, normaliser=cfg.normaliser,
                       threshold=cfg.threshold, batch_size=cfg.batch_size, data_format=cfg.format,
                       progress=sys.stderr.isatty(), heldout=cfg.heldout, tta=cfg.tta, worst=cfg.worst)
    print(f"{cfg.data}: {res.metrics}")
    for tag, m in res.subsets.items():
        print(f"  {tag:<14} {m}")
    print(f"wrote {', '.join(str(f) for f in res.files)}")
    return 0


def models(args: argparse.Namespace) -> int:
    from kdmark import zoo

    if args.name is not None:
        try:
            print(zoo.get(args.name).card.read_text())
        except KeyError as err:
            raise FileNotFoundError(err.args[0]) from None
        return 0
    for line in zoo.table():
        print(line)
    return 0


def bench(args: argparse.Namespace) -> int:
    from kdmark.deploy.bench import bench as bench_job
    from kdmark.io import atomic_write_json

    cfg = config_from_args(args)
    vs = tuple(v.strip() for v in cfg.vs.split(",") if v.strip()) if cfg.vs else ()  # bench checks the names
    report = bench_job(cfg.model, data=cfg.data, split=cfg.split, vs=vs, runs=cfg.runs, max_faces=cfg.max_faces,
                       int8=cfg.int8, heldout=cfg.heldout, detector=cfg.detector, tta=cfg.tta)
    for line in report.lines():
        print(line)
    if cfg.json:
        atomic_write_json(cfg.json, report.to_dict())
    return 0


def register(verbs) -> None:
    """kdmark eval | models | bench."""
    p = verbs.add_parser("eval", help="score a checkpoint on a dataset (NME, FR, AUC, per subset)",
                         epilog=SETTINGS_NOTE)
    add_config_flags(p, EvalConfig)  # every flag, default and check comes from the schema
    p.set_defaults(func=evaluate)

    p = verbs.add_parser("models", help="the trained models shipped with kdmark: NME, size, latency, card")
    p.add_argument("name", nargs="?", default=None, help="print this model's card")
    p.set_defaults(func=models)

    p = verbs.add_parser("bench", help="params, MACs, size, latency (torch, ONNX fp32/int8), accuracy, vs dlib",
                         epilog=SETTINGS_NOTE)
    add_config_flags(p, BenchConfig)
    p.set_defaults(func=bench)
