"""``kdmark eval | models | bench``: score checkpoints the literature's way, list the zoo, measure against peers."""

from __future__ import annotations

import argparse
import sys

from kdmark.cli.args import add_tta, fraction, positive, whole
from kdmark.errors import DatasetError

__all__ = ["register"]


def evaluate(args: argparse.Namespace) -> int:
    from kdmark.jobs.evaluate import evaluate as evaluate_job

    res = evaluate_job(args.checkpoint, args.data, split=args.split, out_dir=args.out, normaliser=args.normaliser,
                       threshold=args.threshold, batch_size=args.batch_size, data_format=args.format,
                       progress=sys.stderr.isatty(), heldout=args.heldout, tta=args.tta,
                       worst=args.worst)
    print(f"{args.data}: {res.metrics}")
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

    if args.runs < 1 or args.max_faces < 1:
        raise DatasetError("--runs" if args.runs < 1 else "--max-faces", "must be at least 1")
    vs = tuple(v.strip() for v in args.vs.split(",") if v.strip()) if args.vs else ()  # bench checks the names
    report = bench_job(args.model, data=args.data, split=args.split, vs=vs, runs=args.runs,
                       max_faces=args.max_faces, int8=not args.no_int8, heldout=args.heldout, detector=args.detector,
                       tta=args.tta)
    for line in report.lines():
        print(line)
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0


def register(verbs) -> None:
    """kdmark eval | models | bench."""
    p = verbs.add_parser("eval", help="score a checkpoint on a dataset (NME, FR, AUC, per subset)")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="dataset folder or annotation file")
    p.add_argument("--split", default=None, help="one split of the dataset, e.g. test, common, challenging")
    p.add_argument("--format", default="auto")
    p.add_argument("--normaliser", default=None, help="e.g. inter_ocular, inter_pupil, box")
    p.add_argument("--threshold", type=fraction, default=None, help="FR/AUC threshold (default: the scheme's)")
    p.add_argument("--batch-size", type=positive, default=32, help="faces per forward pass")
    p.add_argument("--heldout", type=fraction, default=None, metavar="FRACTION",
                   help="score only the faces kdmark's fixed split holds out for validation (e.g. 0.1)")
    p.add_argument("--out", default=None, help="output folder (default: beside the checkpoint)")
    p.add_argument("--worst", type=whole, default=16, metavar="N",
                   help="draw the N faces with the largest error in worst.png (0: no drawing)")
    add_tta(p)
    p.set_defaults(func=evaluate)

    p = verbs.add_parser("models", help="the trained models shipped with kdmark: NME, size, latency, card")
    p.add_argument("name", nargs="?", default=None, help="print this model's card")
    p.set_defaults(func=models)

    p = verbs.add_parser("bench", help="params, MACs, size, latency (torch, ONNX fp32/int8), accuracy, vs dlib")
    p.add_argument("model", help="a zoo name (kdmark models), a .ckpt or an exported .onnx")
    p.add_argument("--data", default=None, help="dataset to measure accuracy on (and calibrate INT8 with)")
    p.add_argument("--split", default=None, help="one split of --data, e.g. train (with --heldout) or common")
    p.add_argument("--vs", default=None, help="also run the peers on the same faces (see --detector): "
                   "dlib (its 68-point predictor), mediapipe (Face Mesh mapped to 68 points), or dlib,mediapipe")
    p.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                   help="with --vs: the detector whose boxes kdmark's model (and MediaPipe) are scored from "
                        "(dlib's predictor always gets its own detector's box)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per latency figure")
    p.add_argument("--max-faces", type=int, default=200, help="score on at most this many faces")
    p.add_argument("--heldout", type=fraction, default=None, metavar="FRACTION",
                   help="score on the faces kdmark's fixed split holds out for validation (e.g. 0.1)")
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 model (quantisation takes a while)")
    p.add_argument("--json", default=None, help="also write the figures as JSON")
    add_tta(p)
    p.set_defaults(func=bench)
