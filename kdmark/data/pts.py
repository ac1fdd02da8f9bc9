"""The iBUG ``.pts`` grammar (300-W, 300VW, Menpo): reading, and writing for tools and fixtures.

Accepted variants (docs/datasets.md §1.2): ``version: 1`` or ``version: 1.0``; one or two spaces after ``n_points:``;
LF or CRLF line ends; no newline after ``}``; a bare list of N coordinate lines with no header at all. Extra
trailing tokens on a point line are tolerated. Coordinates in the file are 1-based (MATLAB convention) and
are returned 0-based.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kdmark.errors import DatasetError
from kdmark.io import atomic_write_text

__all__ = ["read_pts", "write_pts"]


def _parse_point(line: str, path: Path, lineno: int) -> tuple[float, float]:
    tokens = line.split()
    if len(tokens) < 2:
        raise DatasetError(path, f"line {lineno}: expected 'x y', got {line!r}")
    try:
        x, y = float(tokens[0]), float(tokens[1])
    except ValueError:
        raise DatasetError(path, f"line {lineno}: coordinates are not numbers: {line!r}") from None
    return x, y


def _body(lines: list[str], path: Path) -> tuple[int | None, list[tuple[int, str]]]:
    """Split a file into (declared N or None, [(lineno, point line)])."""
    n_points = None
    for lineno, line in enumerate(lines, 1):
        if line.lower().startswith("n_points:"):
            try:
                n_points = int(line.split(":", 1)[1])
            except ValueError:
                raise DatasetError(path, f"line {lineno}: bad n_points line {line!r}") from None
    if "{" in lines:
        start = lines.index("{") + 1
        if "}" not in lines[start:]:
            raise DatasetError(path, "no closing '}' after the points")
        end = lines.index("}", start)
        return n_points, [(i + 1, lines[i]) for i in range(start, end) if lines[i]]
    if n_points is not None or any(line.lower().startswith("version") for line in lines):
        raise DatasetError(path, "header found but no '{' line opening the points")
    return None, [(i + 1, line) for i, line in enumerate(lines) if line]  # bare list of coordinates


def read_pts(path: str | Path, expected: int | None = None) -> np.ndarray:
    """Read a ``.pts`` file into a (N, 2) float64 array of 0-based pixel coordinates.

    Raises:
        DatasetError: the file cannot be read, does not follow the grammar, declares a count it does not hold,
            holds a count other than ``expected``, or has a non-finite coordinate.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="strict")
    except OSError as err:
        raise DatasetError(path, f"cannot read: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise DatasetError(path, "not a text file") from None
    lines = [line.strip() for line in text.splitlines()]
    n_points, body = _body(lines, path)
    if not body:
        raise DatasetError(path, "no points")
    points = np.array([_parse_point(line, path, lineno) for lineno, line in body], dtype=np.float64)
    if n_points is not None and len(points) != n_points:
        raise DatasetError(path, f"declares n_points {n_points} but holds {len(points)} points")
    if expected is not None and len(points) != expected:
        raise DatasetError(path, f"wrong point count: {len(points)} points, expected {expected}")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        raise DatasetError(path, f"non-finite coordinate at point {int(np.argmax(bad))} (0-based)")
    return points - 1.0


def write_pts(path: str | Path, points: np.ndarray, version: str = "1") -> None:
    """Write 0-based ``points`` (N, 2) as a 300-W style ``.pts`` file (1-based, 6 decimals, atomically)."""
    path = Path(path)
    pts = np.asarray(points, dtype=np.float64) + 1.0
    if not all(math.isfinite(v) for v in pts.ravel()):
        raise DatasetError(path, "refusing to write non-finite coordinates")
    body = "".join(f"{x:.6f} {y:.6f}\n" for x, y in pts)
    atomic_write_text(path, f"version: {version}\nn_points:  {len(pts)}\n{{\n{body}}}\n")
