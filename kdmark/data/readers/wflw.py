"""WFLW list files (docs/datasets.md §2): 207-token main lists, 197-token subset lists, and the release layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdmark.data.readers._common import Errors, check_points
from kdmark.data.records import DatasetError, Sample

__all__ = ["WFLW_ATTRIBUTES", "parse_wflw_line", "read_wflw_lists", "find_wflw_lists"]

WFLW_ATTRIBUTES = ("largepose", "expression", "illumination", "makeup", "occlusion", "blur")
_MAIN = ("list_98pt_rect_attr_train.txt", "list_98pt_rect_attr_test.txt")


def parse_wflw_line(
    line: str, where: str, allow_missing_path: bool = False
) -> tuple[np.ndarray, np.ndarray | None, dict[str, bool], str | None]:
    """Parse one WFLW annotation line into (points (98, 2), box or None, attribute flags, image path or None).

    Accepts the 207-token main format (coordinates, ``x_min y_min x_max y_max``, 6 flags, path), the 197-token
    subset format (coordinates, path) and, with ``allow_missing_path``, the same two without the path. The path
    is everything after the fixed tokens, so a path with spaces survives.
    """
    tokens = line.split()
    n = len(tokens)
    if n in (207, 206):
        fixed, has_rect = 206, True
    elif n in (197, 196):
        fixed, has_rect = 196, False
    elif n > 207:  # a path with spaces after the full line
        fixed, has_rect = 206, True
    else:
        raise DatasetError(where, f"expected 207 tokens (or 197 in a subset list), got {n}")
    if n == fixed and not allow_missing_path:
        raise DatasetError(where, "no image path at the end of the line")
    try:
        values = np.array([float(t) for t in tokens[:fixed]])
    except ValueError:
        raise DatasetError(where, "a coordinate, box or flag token is not a number") from None
    points = check_points(values[:196], 98, where)
    box, attrs = None, {}
    if has_rect:
        box = values[196:200].copy()
        attrs = {name: bool(int(v)) for name, v in zip(WFLW_ATTRIBUTES, values[200:206], strict=False)}
    path = line.strip().split(None, fixed)[fixed] if n > fixed else None
    return points, box, attrs, path


def find_wflw_lists(root: Path) -> list[tuple[Path, str | None]]:
    """(list file, split) pairs of a WFLW release folder: the main train/test lists, else the subset lists."""
    found = []
    for name in _MAIN:
        hits = sorted(root.rglob(name))
        if hits:
            found.append((hits[0], "train" if "train" in name else "test"))
    if not found:
        found = [(p, "test") for p in sorted(root.rglob("list_98pt_test*.txt"))]
    return found


def _images_root(list_file: Path) -> Path:
    for base in list(list_file.parents)[:4]:
        if (base / "WFLW_images").is_dir():
            return base / "WFLW_images"
    return list_file.parent


def _subset_of(list_file: Path) -> str | None:
    stem = list_file.stem
    for name in WFLW_ATTRIBUTES:
        if stem.endswith("_" + name):
            return name
    return None


def read_wflw_lists(lists: list[tuple[Path, str | None]], errors: Errors, split: str | None = None) -> list[Sample]:
    """Read WFLW list files; faces listed in several subset files become one sample with several subset tags."""
    by_key: dict[str, Sample] = {}
    for list_file, file_split in lists:
        if split is not None and file_split != split:
            continue
        images, subset = _images_root(list_file), _subset_of(list_file)
        try:
            lines = list_file.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            errors.guard(_raise, list_file, f"cannot read: {err}")
            continue
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{list_file}:{lineno}"
            got = errors.guard(parse_wflw_line, line, where)
            if got is None:
                continue
            points, box, attrs, rel = got
            # A photo can hold many faces, so the key is the path plus the first point (PIPNet keys by both).
            key = f"{rel}@{points[0, 0]:.3f},{points[0, 1]:.3f}"
            tags = tuple(t for t in (file_split, subset) if t) + tuple(a for a, on in attrs.items() if on)
            if key in by_key:
                old = by_key[key]
                old.subsets = tuple(dict.fromkeys(old.subsets + tags))
                continue
            by_key[key] = Sample(images / rel, points, np.ones(98, bool), box, attrs, tags, where, key)
    return list(by_key.values())


def _raise(path: Path, problem: str) -> None:
    raise DatasetError(path, problem)
