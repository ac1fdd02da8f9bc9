"""Geometry shared by cropping, augmentation and drawing: one 2x3 affine maps image pixels to crop pixels.

All coordinates are 0-based pixel centres. A crop of ``size`` pixels covering a square of side ``side`` centred
at (cx, cy) maps x to ``(x - cx) * size / side + (size - 1) / 2``, so the square's centre lands on the crop's
centre pixel. Points and pixels go through the same matrix, so they cannot drift apart.
"""

from __future__ import annotations

import cv2
import numpy as np

from kdmark.data.records import Sample

__all__ = ["box_square", "face_square", "crop_matrix", "warp_image", "apply_affine", "invert_affine", "box_iou"]


def box_square(box, margin: float) -> tuple[float, float, float]:
    """(cx, cy, side) of the square crop around a box [x0, y0, x1, y1]: its centre, its longer side (at least 1 px)
    enlarged by ``margin`` of that side on every side. Training, evaluation and inference all crop through this."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + 2.0 * margin)
    return (x0 + x1) / 2.0, (y0 + y1) / 2.0, side


def face_square(sample: Sample, margin: float = 0.25, use_box: bool = True) -> tuple[float, float, float]:
    """:func:`box_square` around a face: the dataset box if there is one (``use_box``), else the tight landmark
    box."""
    return box_square(sample.box if (use_box and sample.box is not None) else sample.landmark_box(), margin)


def crop_matrix(cx: float, cy: float, side: float, size: int, angle_deg: float = 0.0) -> np.ndarray:
    """2x3 affine from image pixels to a ``size`` x ``size`` crop of the square (cx, cy, side), rotated by
    ``angle_deg`` (counter-clockwise as seen on screen) about the centre."""
    s = size / side
    a = np.deg2rad(angle_deg)
    cos, sin = np.cos(a) * s, np.sin(a) * s
    c = (size - 1) / 2.0
    # x' = cos*(x-cx) + sin*(y-cy) + c ; y' = -sin*(x-cx) + cos*(y-cy) + c  (y axis points down)
    return np.array([[cos, sin, c - cos * cx - sin * cy], [-sin, cos, c + sin * cx - cos * cy]])


def warp_image(image: np.ndarray, matrix: np.ndarray, size: int, border_value: int = 0) -> np.ndarray:
    """Resample ``image`` through ``matrix`` into a ``size`` x ``size`` crop (bilinear, constant border)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(border_value,) * 3)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (..., 2) points through a 2x3 affine."""
    pts = np.asarray(points, np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The 2x3 affine that undoes ``matrix`` (crop pixels back to image pixels)."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def box_iou(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Intersection over union of the [x0, y0, x1, y1] box ``a`` with the box ``b`` (a float), or with each row of
    an (N, 4) array ``b`` (an array; BlazeFace's NMS)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rows = np.atleast_2d(b)
    ix = np.clip(np.minimum(a[2], rows[:, 2]) - np.maximum(a[0], rows[:, 0]), 0.0, None)
    iy = np.clip(np.minimum(a[3], rows[:, 3]) - np.maximum(a[1], rows[:, 1]), 0.0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1]) - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou if b.ndim == 2 else float(iou[0])
