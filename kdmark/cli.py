"""The ``kdmark`` command. Each verb parses its arguments, calls one API function and prints a summary.

Bad input never produces a traceback here: every error kdmark raises about data, models or configs is one line
on stderr naming the file and the problem, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from kdmark import __version__
from kdmark.data.records import DatasetError
from kdmark.metrics import MetricError
from kdmark.schemes import SchemeError

__all__ = ["main"]

USER_ERRORS = (DatasetError, MetricError, SchemeError, FileNotFoundError)


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
    out = draw_grid(picked, ds.scheme, args.out, indices=not args.no_indices, cols=args.cols)
    print(f"wrote {out} ({len(picked)} of {len(ds)} faces)")
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
    parser = argparse.ArgumentParser(prog="kdmark", description="Small, fast facial-landmark detectors by "
                                     "knowledge distillation.")
    parser.add_argument("--version", action="version", version=f"kdmark {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)

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
    show.add_argument("--n", type=int, default=16, help="number of faces")
    show.add_argument("--cols", type=int, default=4)
    show.add_argument("--seed", type=int, default=0)
    show.add_argument("--no-indices", action="store_true", help="do not number the points")
    show.set_defaults(func=_data_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process (tests call this) and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        print(f"kdmark: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdmark: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
