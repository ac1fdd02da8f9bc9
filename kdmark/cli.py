"""The ``kdmark`` command. Each verb parses its arguments, calls one API function and prints a summary.

Bad input never produces a traceback here: every error kdmark raises about data, models or configs is one line
on stderr naming the file and the problem, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
from pathlib import Path

from kdmark import __version__
from kdmark.errors import USER_ERRORS, DatasetError, TeacherError

__all__ = ["main"]



def _data_info(args: argparse.Namespace) -> int:
    from kdmark.data import read_dataset
    from kdmark.data.check import check_dataset

    ds = read_dataset(args.path, format=args.format, split=args.split, skip_bad=True)
    problems = check_dataset(ds, decode=not args.fast, progress=sys.stderr.isatty())
    print(f"{ds.root}: {ds.format} format, scheme {ds.scheme.name} ({ds.scheme.num_points} points), "
          f"{len(ds)} faces")
    for line in _tag_lines(ds):
        print(f"  {line}")
    print(f"problems: {len(problems) or 'none'}")
    for p in problems:
        print(f"  {p}")
    if args.json:
        report = {"path": str(ds.root), "format": ds.format, "scheme": ds.scheme.name, "faces": len(ds),
                  "tags": ds.tag_counts(), "problems": [str(p) for p in problems]}
        _write_json(args.json, report)
    return 1 if (problems and args.strict) else 0


SPLITS = ("train", "val", "test", "common", "challenging", "full", "private", "frontal")


def _tag_lines(ds) -> list[str]:
    """One line per split with its subsets in brackets, e.g. ``train  1213  (afw 337, helen 872, lfpw 4)``."""
    counts = ds.tag_counts()
    splits = [t for t in SPLITS if t in counts]
    lines = []
    for split in splits:
        inner: dict[str, int] = {}
        for s in ds.samples:
            if split in s.subsets:
                for t in s.subsets:
                    if t not in SPLITS:
                        inner[t] = inner.get(t, 0) + 1
        detail = ", ".join(f"{t} {n}" for t, n in inner.items())
        lines.append(f"{split:<12} {counts[split]:>6}" + (f"  ({detail})" if detail else ""))
    if not splits:
        lines += [f"{t:<12} {n:>6}" for t, n in counts.items()]
    return lines


def _data_show(args: argparse.Namespace) -> int:
    from kdmark.data import read_dataset
    from kdmark.data.show import draw_grid

    ds = read_dataset(args.path, format=args.format, split=args.split, skip_bad=True)
    picked = random.Random(args.seed).sample(ds.samples, min(args.n, len(ds)))
    crops = titles = None
    if args.augment is not None:
        crops, titles = _augmented_crops(picked, ds.scheme, args)
    out = draw_grid(picked, ds.scheme, args.out, indices=not args.no_indices, cols=args.cols, crops=crops,
                    titles=titles)
    what = "augmented crops of " if crops else ""
    skipped = f"; {len(ds.problems)} bad faces left out (kdmark data info lists them)" if ds.problems else ""
    print(f"wrote {out} ({what}{len(picked)} of {len(ds)} faces{skipped})")
    return 0


def _augmented_crops(samples, scheme, args):
    """What the network sees: the training crop, augmentation and flip, as configured in a recipe."""
    from kdmark.codecs import RegressionCodec
    from kdmark.config import TrainConfig, load_config
    from kdmark.data.pipeline import Augment, LandmarkDataset

    cfg = load_config(TrainConfig, args.augment or None, args.overrides)
    aug = Augment.from_config(dataclasses.replace(cfg.augment, enabled=True))
    size = cfg.data.input_size
    lds = LandmarkDataset(samples, scheme, RegressionCodec(size), size, aug, cfg.data.margin, cfg.data.use_box,
                          cache=False, seed=args.seed)
    crops = []
    for i in range(len(lds)):
        item = lds[i]
        crops.append(((item["image"].permute(1, 2, 0).numpy() * 255).astype("uint8"), item["points"].numpy()))
    return crops, [f"{s.key[-30:]} (augmented)" for s in samples]


def _fit(args: argparse.Namespace, distill: bool) -> int:
    """``kdmark train`` and ``kdmark distill``: the same loop, with or without teachers."""
    from kdmark.config import DistillConfig, TrainConfig, load_config

    if distill:
        from kdmark.runs import distill as run
    else:
        from kdmark.train import train as run
    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe and not Path(recipe).is_file():  # `kdmark train data.root=X`: no recipe
        recipe, overrides = None, [recipe, *overrides]
    result = run(load_config(DistillConfig if distill else TrainConfig, recipe, overrides))
    best = result.metrics.get("best_val_nme")
    if result.rank == 0:
        print(f"best checkpoint: {result.best_checkpoint} (val NME {best * 100:.3f}% at epoch "
              f"{result.metrics.get('best_epoch')})")
    return 0


def _train(args: argparse.Namespace) -> int:
    return _fit(args, distill=False)


def _distill(args: argparse.Namespace) -> int:
    return _fit(args, distill=True)


def _prune(args: argparse.Namespace) -> int:
    from kdmark.config import PruneConfig, load_config
    from kdmark.prune_run import format_report, prune_checkpoint

    cfg = load_config(PruneConfig, None, [f"checkpoint={args.checkpoint}", *args.overrides])
    result = prune_checkpoint(cfg)
    for line in format_report(result):
        print(line)
    print(f"wrote {result.checkpoint} and {result.checkpoint.parent / 'prune_report.json'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from kdmark.run import run_pipeline

    if args.pipeline is not None and "=" in args.pipeline:  # `kdmark run epochs=5`: overrides, default pipeline
        args.overrides, args.pipeline = [args.pipeline, *args.overrides], None
    outputs = run_pipeline(args.pipeline, args.overrides)
    for name, out in outputs.items():
        print(f"{name:<20} {out}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from kdmark.evaluate import evaluate

    res = evaluate(args.checkpoint, args.data, split=args.split, out_dir=args.out, normaliser=args.normaliser,
                   threshold=args.threshold, batch_size=args.batch_size, data_format=args.format,
                   progress=sys.stderr.isatty(), heldout=args.heldout)
    print(f"{args.data}: {res.metrics}")
    for tag, m in res.subsets.items():
        print(f"  {tag:<14} {m}")
    print(f"wrote {', '.join(str(f) for f in res.files)}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.web:
        from kdmark.web import export_web

        out = export_web(args.checkpoint, args.web, ort_web=args.ort_web)
        print(f"wrote {out}/ (index.html, models, onnxruntime-web); serve it: python -m http.server -d {out} 8000")
        return 0
    from kdmark.export import export_onnx, export_onnx_int8

    out = Path(args.out or Path(args.checkpoint).with_suffix(".onnx"))  # a zoo name: NAME.onnx here
    if args.int8:
        if not args.calibration:
            raise DatasetError("--int8", "needs --calibration PATH: real faces to calibrate activation ranges on")
        res, report = export_onnx_int8(args.checkpoint, out, args.calibration, args.calibration_faces,
                                       opset=args.opset, tolerance=args.tolerance)
    else:
        res, report = export_onnx(args.checkpoint, out, opset=args.opset, tolerance=args.tolerance), None
    print(f"wrote {res.path} ({res.size_bytes / 1e6:.2f} MB); |ONNX - PyTorch|: points max {res.max_abs_error:.2e} "
          f"px, raw output {res.raw_error:.1e} of its range")
    if report:
        print(report)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from kdmark.predict_cli import run_predict

    return run_predict(args)


def _models(args: argparse.Namespace) -> int:
    from kdmark import zoo

    if args.name:
        try:
            print(zoo.get(args.name).card.read_text())
        except KeyError as err:
            raise FileNotFoundError(err.args[0]) from None
        return 0
    rows = [("name", "NME 300-W val", "size", "ms/face", "summary")]
    for m in zoo.models():
        i = m.info
        rows.append((m.name + (" (default)" if m.name == zoo.DEFAULT else ""), f"{i['nme']:.3%}",
                     f"{i['size_bytes'] / 1e6:.2f} MB", f"{i['latency_ms']:.2f}", m.summary))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    print("NME: inter-ocular, kdmark's 119 held-out 300-W training faces; size: the file predict runs; ms/face: "
          "onnxruntime, batch 1, 1 thread, this package's measurement (kdmark bench NAME re-measures here). "
          "Terms: kdmark models NAME")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from kdmark.bench import bench

    if args.runs < 1 or args.max_faces < 1:
        raise DatasetError("--runs" if args.runs < 1 else "--max-faces", "must be at least 1")
    vs = tuple(v.strip() for v in args.vs.split(",") if v.strip()) if args.vs else ()  # bench checks the names
    report = bench(args.model, data=args.data, split=args.split, vs=vs, runs=args.runs,
                   max_faces=args.max_faces, int8=not args.no_int8, heldout=args.heldout, detector=args.detector)
    for line in report.lines():
        print(line)
    if args.json:
        _write_json(args.json, {"params": report.params, "macs": report.macs, "sizes": report.sizes,
                                "latency_ms": report.latency, "accuracy": report.accuracy, "notes": report.notes})
    return 0


def _data_asm(args: argparse.Namespace) -> int:
    import numpy as np

    from kdmark.asm import ActiveShapeModel
    from kdmark.data import read_dataset

    ds = read_dataset(args.path, format=args.format, split=args.split)
    shapes = np.stack([s.points for s in ds])
    asm = ActiveShapeModel(args.variance, procrustes=args.procrustes).fit(shapes)
    soft = asm.project(shapes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "soft_landmarks.json", {s.key: np.round(p, 4).tolist() for s, p in zip(ds, soft)})
    asm.plot_modes(out / "modes.png", sides=ds.scheme.sides)
    moved = np.linalg.norm(soft - shapes, axis=-1).mean()
    print(f"{len(ds)} faces: {asm.num_modes} modes keep {args.variance * 100:.0f}% of the shape variance; soft "
          f"landmarks move {moved:.2f} px on average; wrote {out / 'soft_landmarks.json'}, {out / 'modes.png'}")
    return 0


def _label_noise(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, not {text}")
    return value


def _data_synth(args: argparse.Namespace) -> int:
    from kdmark.data.synth import write_synthetic

    out = write_synthetic(args.out, n=args.n, seed=args.seed, size=args.size, label_noise=args.label_noise,
                          progress=sys.stderr.isatty())
    noise = f", training labels with {args.label_noise:.1%} IOD annotation noise" if args.label_noise else ""
    print(f"wrote {args.n} synthetic faces ({args.size} px, seed {args.seed}{noise}) to {out}/train and {out}/test")
    return 0


def _data_label(args: argparse.Namespace) -> int:
    from kdmark.teachers.label import label_images

    rank = world = None
    if args.shard:
        try:
            rank, world = (int(v) for v in args.shard.split("/"))
        except ValueError:
            raise TeacherError(f"--shard {args.shard!r}: expected RANK/WORLD, e.g. 0/4") from None
    try:
        weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    except ValueError:
        raise TeacherError(f"--weights {args.weights!r}: expected numbers separated by commas, e.g. 2,1") from None
    if not 0.0 <= args.min_confidence <= 1.0:  # also refuses nan
        raise TeacherError(f"--min-confidence {args.min_confidence}: expected a number from 0 to 1")
    report = label_images(args.inputs, args.teachers.split(","), args.out, weights, args.min_confidence, args.copy,
                          rank, world, progress=not args.quiet, detector=args.detector)
    print(f"{args.out}: {report.summary()}")
    return 0


def _write_json(path: str | Path, obj: object) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def _add_data_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder or annotation file (format detected)")
    p.add_argument("--format", default="auto", help="force a format instead of detecting it")
    p.add_argument("--split", default=None, help="one split, e.g. train, common, challenging, test")


def build_parser() -> argparse.ArgumentParser:
    """The command line: one sub-parser per verb, each calling the public API (the functions below register them)."""
    parser = argparse.ArgumentParser(prog="kdmark", description="Small, fast facial-landmark detectors by "
                                     "knowledge distillation.")
    parser.add_argument("--version", action="version", version=f"kdmark {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for register in (_data_verbs, _training_verbs, _scoring_verbs, _deploy_verbs):
        register(verbs)
    return parser


def _data_verbs(verbs) -> None:
    """kdmark data info | show | asm | synth | label."""
    data = verbs.add_parser("data", help="inspect datasets").add_subparsers(dest="action", required=True)
    info = data.add_parser("info", help="format, counts per split/subset, and every problem found")
    _add_data_source(info)
    info.add_argument("--fast", action="store_true", help="read image headers only, do not decode pixels")
    info.add_argument("--json", help="also write the report as JSON")
    info.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    info.set_defaults(func=_data_info)
    show = data.add_parser("show", help="draw a grid of faces with landmarks and point indices")
    _add_data_source(show)
    show.add_argument("--out", default="grid.png", help="PNG to write")
    show.add_argument("--n", type=_positive, default=16, help="number of faces")
    show.add_argument("--cols", type=_positive, default=4, help="faces per row of the grid")
    show.add_argument("--seed", type=int, default=0, help="which faces are drawn (a random sample)")
    show.add_argument("--no-indices", action="store_true", help="do not number the points")
    show.add_argument("--augment", nargs="?", const="", default=None, metavar="RECIPE",
                      help="show training crops with augmentation (defaults, or as in RECIPE.yaml)")
    show.add_argument("overrides", nargs="*", help="recipe overrides for --augment, e.g. augment.rotation=45")
    show.set_defaults(func=_data_show)

    asm = data.add_parser("asm", help="ASM soft landmarks (PCA of the shapes) and a plot of the modes")
    _add_data_source(asm)
    asm.add_argument("--variance", type=float, default=0.9, help="share of shape variance kept (0.85/0.9/0.97)")
    asm.add_argument("--procrustes", action="store_true", help="remove rotation before PCA (not in the paper)")
    asm.add_argument("--out", default="asm", help="output folder")
    asm.set_defaults(func=_data_asm)

    sy = data.add_parser("synth", help="write built-in synthetic faces (300-W layout, 68 points, attributes)")
    sy.add_argument("out")
    sy.add_argument("--n", type=_positive, default=2000, help="number of faces to write")
    sy.add_argument("--seed", type=int, default=0, help="the same seed writes the same faces")
    sy.add_argument("--size", type=int, default=256)
    sy.add_argument("--label-noise", type=_label_noise, default=0.0, metavar="IOD",
                    help="human-like noise on the training labels, in inter-ocular distances, e.g. 0.02 (test "
                         "labels stay exact)")
    sy.set_defaults(func=_data_synth)

    lb = data.add_parser("label", help="pseudo-label photos with teachers (dlib, mediapipe, checkpoints) into a "
                                       "300-W-style folder, with confidences")
    lb.add_argument("inputs", nargs="+", help="images or folders of images (searched recursively)")
    lb.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                    help="face detector (default blazeface; dlib: its HOG detector)")
    lb.add_argument("--teachers", default="dlib,mediapipe",
                    help="comma-separated: dlib, mediapipe, mediapipe:MAP.npz (another scheme), or .ckpt/.onnx "
                         "files (default: dlib,mediapipe)")
    lb.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    lb.add_argument("--weights", default=None,
                    help="one weight per teacher, comma-separated (default: by measured accuracy, 1/NME^2)")
    lb.add_argument("--min-confidence", type=float, default=0.5,
                    help="leave out faces whose mean point confidence (teacher agreement) is below this")
    lb.add_argument("--copy", action="store_true", help="copy the photos into the output (default: symlinks)")
    lb.add_argument("--shard", default=None, metavar="RANK/WORLD",
                    help="label every WORLD-th photo from RANK (default: from RANK/WORLD_SIZE or SLURM)")
    lb.add_argument("--quiet", action="store_true", help="no progress bar")
    lb.set_defaults(func=_data_label)


def _training_verbs(verbs) -> None:
    """kdmark train | distill | prune | run."""
    tr = verbs.add_parser("train", help="train a landmark detector from a recipe", epilog=_settings_help("train"),
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    tr.add_argument("recipe", nargs="?", default=None,
                    help="YAML recipe (see recipes/); none: the built-in defaults and the overrides")
    tr.add_argument("overrides", nargs="*", help="key=value overrides, e.g. epochs=10 data.root=PATH")
    tr.set_defaults(func=_train)

    di = verbs.add_parser("distill", help="train a student with frozen teachers and distillation losses",
                          epilog=_settings_help("distill"), formatter_class=argparse.RawDescriptionHelpFormatter)
    di.add_argument("recipe", nargs="?", default=None,
                    help="YAML recipe (see recipes/); none: the built-in defaults and the overrides")
    di.add_argument("overrides", nargs="*", help="key=value overrides, e.g. teachers=[t.ckpt] kd.heatmap=100")
    di.set_defaults(func=_distill)

    pn = verbs.add_parser("prune", help="filter pruning with distillation retraining, and what it bought")
    pn.add_argument("checkpoint")
    pn.add_argument("overrides", nargs="*", help="ratio=0.5 importance=reconstruction|l1|l2|taylor "
                    "schedule=layerwise|global epochs_per_layer=1 finetune_epochs=5 train.data.root=PATH ...")
    pn.set_defaults(func=_prune)

    rn = verbs.add_parser("run", help="run a whole pipeline: teachers, students, eval, export")
    rn.add_argument("pipeline", nargs="?", default=None,
                    help="pipeline YAML (see pipelines/); none: the default pipeline on built-in synthetic faces")
    rn.add_argument("overrides", nargs="*", help="settings for every stage, e.g. data.root=PATH epochs=5")
    rn.set_defaults(func=_run)


def _scoring_verbs(verbs) -> None:
    """kdmark eval | models | bench."""
    ev = verbs.add_parser("eval", help="score a checkpoint on a dataset (NME, FR, AUC, per subset)")
    ev.add_argument("checkpoint")
    ev.add_argument("--data", required=True, help="dataset folder or annotation file")
    ev.add_argument("--split", default=None, help="one split of the dataset, e.g. test, common, challenging")
    ev.add_argument("--format", default="auto")
    ev.add_argument("--normaliser", default=None, help="e.g. inter_ocular, inter_pupil, box")
    ev.add_argument("--threshold", type=float, default=None, help="FR/AUC threshold (default: the scheme's)")
    ev.add_argument("--batch-size", type=_positive, default=32, help="faces per forward pass")
    ev.add_argument("--heldout", type=float, default=None, metavar="FRACTION",
                    help="score only the faces kdmark's fixed split holds out for validation (e.g. 0.1)")
    ev.add_argument("--out", default=None, help="output folder (default: beside the checkpoint)")
    ev.set_defaults(func=_eval)

    mo = verbs.add_parser("models", help="the trained models shipped with kdmark: NME, size, latency, card")
    mo.add_argument("name", nargs="?", default=None, help="print this model's card")
    mo.set_defaults(func=_models)

    be = verbs.add_parser("bench", help="params, MACs, size, latency (torch, ONNX fp32/int8), accuracy, vs dlib")
    be.add_argument("model", help="a zoo name (kdmark models), a .ckpt or an exported .onnx")
    be.add_argument("--data", default=None, help="dataset to measure accuracy on (and calibrate INT8 with)")
    be.add_argument("--split", default=None, help="one split of --data, e.g. train (with --heldout) or common")
    be.add_argument("--vs", default=None, help="also run the peers on the same faces (see --detector): "
                    "dlib (its 68-point predictor), mediapipe (Face Mesh mapped to 68 points), or dlib,mediapipe")
    be.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                    help="with --vs: the detector whose boxes kdmark's model (and MediaPipe) are scored from "
                         "(dlib's predictor always gets its own detector's box)")
    be.add_argument("--runs", type=int, default=30, help="timed runs per latency figure")
    be.add_argument("--max-faces", type=int, default=200, help="score on at most this many faces")
    be.add_argument("--heldout", type=float, default=None, metavar="FRACTION",
                    help="score on the faces kdmark's fixed split holds out for validation (e.g. 0.1)")
    be.add_argument("--no-int8", action="store_true", help="skip the INT8 model (quantisation takes a while)")
    be.add_argument("--json", default=None, help="also write the figures as JSON")
    be.set_defaults(func=_bench)


def _deploy_verbs(verbs) -> None:
    """kdmark export | predict."""
    ex = verbs.add_parser("export", help="export a checkpoint to ONNX (parity-checked), optionally INT8, or a web page")
    ex.add_argument("checkpoint", help="a .ckpt or a zoo name (with --web also an exported .onnx)")
    ex.add_argument("--web", default=None, metavar="FOLDER",
                    help="write a static web page running BlazeFace and this model in the browser, offline")
    ex.add_argument("--ort-web", default=None, metavar="TGZ_OR_FOLDER",
                    help="--web: onnxruntime-web from this npm package (.tgz or folder) instead of kdmark's cache")
    ex.add_argument("--format", default="onnx", choices=["onnx"])
    ex.add_argument("--out", default=None, help="output .onnx (default: beside the checkpoint)")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    ex.add_argument("--tolerance", type=float, default=0.01,
                    help="99th-percentile point difference vs PyTorch allowed, in input pixels")
    ex.add_argument("--int8", action="store_true", help="also write a statically quantised INT8 model")
    ex.add_argument("--calibration", default=None, help="dataset of real faces for INT8 calibration")
    ex.add_argument("--calibration-faces", type=int, default=128)
    ex.set_defaults(func=_export)

    pr = verbs.add_parser("predict", help="landmarks for images, folders and videos")
    pr.add_argument("inputs", nargs="+", metavar="[MODEL] INPUT",
                    help="optionally a model first (zoo name, .ckpt or .onnx; default kdmark-68-s), then images, "
                         "folders of images, videos, or a camera (0, /dev/video0)")
    pr.add_argument("--model", default=None, help="zoo name, .ckpt or .onnx (default: kdmark-68-s)")
    pr.add_argument("--boxes", default=None, help="JSON: image file name -> [[x0, y0, x1, y1], ...]")
    pr.add_argument("--json", default=None, help="write results here (file name -> faces); - for stdout")
    pr.add_argument("--draw", default=None, help="folder for images (and videos) with landmarks drawn")
    pr.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                    help="auto: by file type (zoo models and .onnx on onnxruntime, .ckpt on PyTorch)")
    pr.add_argument("--batch-size", type=_positive, default=32, help="faces per forward pass")
    pr.add_argument("--no-smooth", action="store_true", help="video: no One-Euro smoothing")
    pr.add_argument("--max-frames", type=_positive, default=300,
                    help="a camera input (0 or /dev/video0): stop after this many frames")
    pr.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                    help="face detector: blazeface (MediaPipe's BlazeFace on onnxruntime, default) or dlib (HOG)")
    pr.add_argument("--detector-threshold", type=float, default=None,
                    help="keep faces whose detection score is at least this (default: the detector's own, 0.5 for "
                         "BlazeFace, 0 for dlib; JSON 'detector_score')")
    pr.add_argument("--min-face", type=float, default=0.0, help="ignore detected faces smaller than this (pixels)")
    pr.set_defaults(func=_predict)


def _settings_help(verb: str) -> str:
    """Every key=value setting of the verb's config with its default, for --help (read from the typed schema)."""
    import dataclasses
    import textwrap

    from kdmark.config import DistillConfig, TrainConfig

    def flat(cls, prefix=""):
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if dataclasses.is_dataclass(default):
                yield from flat(type(default), f"{prefix}{f.name}.")
            else:
                yield f"{prefix}{f.name}={default!r}".replace("'", "")

    items = list(flat(DistillConfig if verb == "distill" else TrainConfig))
    body = textwrap.fill("  ".join(items), width=118, initial_indent="  ", subsequent_indent="  ",
                         break_on_hyphens=False)
    return f"settings (key=value, defaults shown; a recipe YAML sets the same keys):\n{body}"


def _positive(text: str) -> int:
    """argparse type: an integer of at least 1 (``--batch-size 0`` is one line, not a traceback later)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line; for a re-raised worker error, the original error's own message."""
    text = str(err).strip()
    if "\n" not in text:
        return text
    last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
    return last.split("Error: ", 1)[1] if "Error: " in last else last


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process (tests call this) and return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (``--augment recipe.yaml augment.rotation=45``)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"kdmark: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:  # a DataLoader worker re-raises our errors as RuntimeError with a traceback inside
        names = [cls.__name__ for cls in USER_ERRORS]
        if not any(f"{name}:" in str(err) for name in names):
            raise
        print(f"kdmark: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdmark: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, read-only folder, a file where a folder should be: one line, no traceback
        import errno

        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EEXIST,
                             errno.ENOTDIR, errno.EISDIR):
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"kdmark: error: {where}{err.strerror or err} (earlier outputs are untouched)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
