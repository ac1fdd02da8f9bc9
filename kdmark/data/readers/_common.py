"""Helpers shared by the readers: error collection, image pairing, point validation."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from kdmark.data.records import DatasetError, Problem

# The one list of image files kdmark reads (compared lower-case: photo.JPG, photo.Jpg and photo.jpg alike)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
# photo formats kdmark cannot decode (Pillow has no HEIF/AVIF/JPEG XL reader without plugins): named when skipped
UNREAD_IMAGE_SUFFIXES = (".heic", ".heif", ".avif", ".jxl")
# names tried when looking for the image beside an annotation file
IMAGE_EXTS = IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES

T = TypeVar("T")


class Errors:
    """Raise on the first bad sample, or (``skip_bad=True``) record it and carry on."""

    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.problems: list[Problem] = []

    def guard(self, fn: Callable[..., T], *args, **kwargs) -> T | None:
        try:
            return fn(*args, **kwargs)
        except DatasetError as err:
            if not self.skip_bad:
                raise
            self.problems.append(Problem(err.path, err.problem))
            return None


def image_beside(annotation: Path, folders: tuple[str, ...] = ()) -> Path:
    """The image with the same stem as ``annotation`` (in its folder, or in ``../<folder>`` for 300VW's
    ``annot``/``imgs`` layout). When none exists the most likely path is returned, and the check reports it."""
    dirs = [annotation.parent] + [annotation.parent.parent / f for f in folders]
    stems = [annotation.stem]
    multi = re.fullmatch(r"(.+)_\d+", annotation.stem)
    if multi:  # AFW/iBUG name the faces of one photo photo_1.pts, photo_2.pts, ... beside photo.jpg
        stems.append(multi.group(1))
    for stem in stems:
        for d in dirs:
            for ext in IMAGE_EXTS:
                candidate = d / (stem + ext)
                if candidate.is_file():
                    return candidate
    return annotation.with_suffix(".jpg")


def check_points(points: np.ndarray, expected: int | None, where: str | Path) -> np.ndarray:
    """Raise DatasetError for a wrong point count or a non-finite coordinate."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if expected is not None and len(points) != expected:
        raise DatasetError(where, f"wrong point count: {len(points)} points, expected {expected}")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise DatasetError(where, f"non-finite coordinate at point {int(np.argmax(bad))} (0-based)")
    return points


def xywh_to_xyxy(box: np.ndarray, one_based: bool = False) -> np.ndarray:
    """[x, y, w, h] -> [x0, y0, x1, y1]; ``one_based`` moves MATLAB's 1-based corner to 0-based."""
    x, y, w, h = (float(v) for v in np.asarray(box).reshape(4))
    off = 1.0 if one_based else 0.0
    return np.array([x - off, y - off, x - off + w, y - off + h])
