"""``kdmark data info | show | asm | synth | label``: look at datasets, make them, label photos with teachers."""

from __future__ import annotations

import argparse
import random
import sys

from kdmark.cli.args import add_data_source, non_negative, positive
from kdmark.errors import TeacherError

__all__ = ["register"]


def info(args: argparse.Namespace) -> int:
    from kdmark.data import read_dataset
    from kdmark.data.check import check_dataset, split_lines
    from kdmark.io import atomic_write_json

    ds = read_dataset(args.path, format=args.format, split=args.split, skip_bad=True)
    problems = check_dataset(ds, decode=not args.fast, progress=sys.stderr.isatty())
    print(f"{ds.root}: {ds.format} format, scheme {ds.scheme.name} ({ds.scheme.num_points} points), "
          f"{len(ds)} faces")
    for line in split_lines(ds):
        print(f"  {line}")
    print(f"problems: {len(problems) or 'none'}")
    for p in problems:
        print(f"  {p}")
    if args.json:
        atomic_write_json(args.json, {"path": str(ds.root), "format": ds.format, "scheme": ds.scheme.name,
                                      "faces": len(ds), "tags": ds.tag_counts(),
                                      "problems": [str(p) for p in problems]})
    return 1 if (problems and args.strict) else 0


def show(args: argparse.Namespace) -> int:
    from kdmark.data import read_dataset
    from kdmark.data.show import augmented_crops, draw_grid

    ds = read_dataset(args.path, format=args.format, split=args.split, skip_bad=True)
    picked = random.Random(args.seed).sample(ds.samples, min(args.n, len(ds)))
    crops = titles = None
    if args.augment is not None:
        from kdmark.config import TrainConfig, load_config

        cfg = load_config(TrainConfig, args.augment or None, args.overrides)
        crops = augmented_crops(picked, ds.scheme, cfg, args.seed)
        titles = [f"{s.key[-30:]} (augmented)" for s in picked]
    out = draw_grid(picked, ds.scheme, args.out, indices=not args.no_indices, cols=args.cols, crops=crops,
                    titles=titles)
    what = "augmented crops of " if crops else ""
    skipped = f"; {len(ds.problems)} bad faces left out (kdmark data info lists them)" if ds.problems else ""
    print(f"wrote {out} ({what}{len(picked)} of {len(ds)} faces{skipped})")
    return 0


def asm(args: argparse.Namespace) -> int:
    from kdmark.asm import write_soft_landmarks
    from kdmark.data import read_dataset

    ds = read_dataset(args.path, format=args.format, split=args.split)
    done = write_soft_landmarks(ds, args.out, args.variance, args.procrustes)
    print(f"{done['faces']} faces: {done['modes']} modes keep {args.variance * 100:.0f}% of the shape variance; soft "
          f"landmarks move {done['moved_px']:.2f} px on average; wrote {', '.join(str(f) for f in done['files'])}")
    return 0


def synth(args: argparse.Namespace) -> int:
    from kdmark.data.synth import write_synthetic

    out = write_synthetic(args.out, n=args.n, seed=args.seed, size=args.size, label_noise=args.label_noise,
                          progress=sys.stderr.isatty())
    noise = f", training labels with {args.label_noise:.1%} IOD annotation noise" if args.label_noise else ""
    print(f"wrote {args.n} synthetic faces ({args.size} px, seed {args.seed}{noise}) to {out}/train and {out}/test")
    return 0


def label(args: argparse.Namespace) -> int:
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


def register(verbs) -> None:
    """kdmark data info | show | asm | synth | label."""
    data = verbs.add_parser("data", help="inspect datasets").add_subparsers(dest="action", required=True)
    p = data.add_parser("info", help="format, counts per split/subset, and every problem found")
    add_data_source(p)
    p.add_argument("--fast", action="store_true", help="read image headers only, do not decode pixels")
    p.add_argument("--json", help="also write the report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when any problem is found")
    p.set_defaults(func=info)

    p = data.add_parser("show", help="draw a grid of faces with landmarks and point indices")
    add_data_source(p)
    p.add_argument("--out", default="grid.png", help="PNG to write")
    p.add_argument("--n", type=positive, default=16, help="number of faces")
    p.add_argument("--cols", type=positive, default=4, help="faces per row of the grid")
    p.add_argument("--seed", type=int, default=0, help="which faces are drawn (a random sample)")
    p.add_argument("--no-indices", action="store_true", help="do not number the points")
    p.add_argument("--augment", nargs="?", const="", default=None, metavar="RECIPE",
                   help="show training crops with augmentation (defaults, or as in RECIPE.yaml)")
    p.add_argument("overrides", nargs="*", help="recipe overrides for --augment, e.g. augment.rotation=45")
    p.set_defaults(func=show)

    p = data.add_parser("asm", help="ASM soft landmarks (PCA of the shapes) and a plot of the modes")
    add_data_source(p)
    p.add_argument("--variance", type=float, default=0.9, help="share of shape variance kept (0.85/0.9/0.97)")
    p.add_argument("--procrustes", action="store_true", help="remove rotation before PCA (not in the paper)")
    p.add_argument("--out", default="asm", help="output folder")
    p.set_defaults(func=asm)

    p = data.add_parser("synth", help="write built-in synthetic faces (300-W layout, 68 points, attributes)")
    p.add_argument("out")
    p.add_argument("--n", type=positive, default=2000, help="number of faces to write")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes the same faces")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--label-noise", type=non_negative, default=0.0, metavar="IOD",
                   help="human-like noise on the training labels, in inter-ocular distances, e.g. 0.02 (test "
                        "labels stay exact)")
    p.set_defaults(func=synth)

    p = data.add_parser("label", help="pseudo-label photos with teachers (dlib, mediapipe, checkpoints) into a "
                                      "300-W-style folder, with confidences")
    p.add_argument("inputs", nargs="+", help="images or folders of images (searched recursively)")
    p.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                   help="face detector (default blazeface; dlib: its HOG detector)")
    p.add_argument("--teachers", default="dlib,mediapipe",
                   help="comma-separated: dlib, mediapipe, mediapipe:MAP.npz (another scheme), or .ckpt/.onnx "
                        "files (default: dlib,mediapipe)")
    p.add_argument("--out", required=True, help="output folder (re-running it resumes)")
    p.add_argument("--weights", default=None,
                   help="one weight per teacher, comma-separated (default: by measured accuracy, 1/NME^2)")
    p.add_argument("--min-confidence", type=non_negative, default=0.5,
                   help="leave out faces whose mean point confidence (teacher agreement) is below this")
    p.add_argument("--copy", action="store_true", help="copy the photos into the output (default: symlinks)")
    p.add_argument("--shard", default=None, metavar="RANK/WORLD",
                   help="label every WORLD-th photo from RANK (default: from RANK/WORLD_SIZE or SLURM)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=label)
