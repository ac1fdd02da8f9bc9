"""Dataset checks behind ``kdmark data info``: images that cannot be read, boxes outside the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kdmark.data.images import image_size, load_image
from kdmark.data.records import Dataset, DatasetError, Problem, Sample

__all__ = ["check_dataset", "check_sample", "split_lines", "SPLITS"]

SPLITS = ("train", "val", "test", "common", "challenging", "full", "private", "frontal")


def check_sample(sample: Sample, decode: bool = True) -> list[Problem]:
    """Problems of one sample: unreadable image, box of zero size or outside the image, non-finite points."""
    problems = []
    if not np.isfinite(sample.points).all():
        problems.append(Problem(sample.source, "non-finite coordinate"))
    try:
        if decode:
            h, w = load_image(sample.image).shape[:2]
        else:
            w, h = image_size(sample.image)
    except DatasetError as err:
        kind = "missing" if "missing" in err.problem else "image"
        return problems + [Problem(err.path, err.problem, kind)]
    if sample.box is not None:
        x0, y0, x1, y1 = sample.box
        if not np.isfinite(sample.box).all() or x1 <= x0 or y1 <= y0:
            problems.append(Problem(sample.source, f"face box {_fmt(sample.box)} has zero or negative size"))
        elif x1 < 0 or y1 < 0 or x0 >= w or y0 >= h:
            problems.append(Problem(sample.source, f"face box {_fmt(sample.box)} lies outside the {w}x{h} image"))
    return problems


def _fmt(box: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def check_dataset(dataset: Dataset, decode: bool = True, progress: bool = True) -> list[Problem]:
    """Every problem in ``dataset``: the reader's skipped faces, then one line per bad sample.

    When not one image of the dataset exists (an annotation-only release such as the COFW-68 or WFLW subset
    lists), that is reported once instead of once per face.
    """
    problems = list(dataset.problems)
    found = []
    for sample in tqdm(dataset.samples, desc="checking", unit="face", disable=not progress, leave=False):
        found.append(check_sample(sample, decode))
    missing = [p for ps in found for p in ps if p.kind == "missing"]
    if missing and len(missing) == len(dataset.samples):
        roots = sorted({str(Path(p.path).parent) for p in missing})
        where = roots[0] if len(roots) == 1 else f"{roots[0]} (and {len(roots) - 1} more folders)"
        problems.append(Problem(where, f"no images found: all {len(missing)} faces are annotations only", "missing"))
        found = [[p for p in ps if p.kind != "missing"] for ps in found]
    return problems + [p for ps in found for p in ps]


def split_lines(ds: Dataset) -> list[str]:
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
