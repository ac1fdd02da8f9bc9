"""Head pose from 68 landmarks: yaw, pitch and roll in degrees, as dlib users get from ``cv2.solvePnP`` and
MediaPipe users from its pose matrix.

The 3-D model is kdmark's measured mean face (``kdmark/assets/mean_face_68.json``, made by
``scripts/make_mean_face.py``: MediaPipe's Face Mesh depth on the 300-W training faces, aligned and averaged). The jaw
line is left out of the fit (its points follow the face's outline, which moves over the skull as the head turns),
and so are points the model is unsure of. The camera is a pinhole with focal length the image's longer side and its
centre at the image centre, which is all a photo says.

Angles (degrees), as seen in the photo:
    yaw > 0   the nose points to the image's right (the person turns to their left)
    pitch > 0 the nose points up
    roll > 0  the face is turned counter-clockwise on screen (rotating a photo counter-clockwise by 10 degrees adds
              10 degrees of roll)
The rotation from the head frame (x across the face to the image's right, y down, z away from the camera) to the
camera's is ``R = Rz(-roll) @ Ry(-yaw) @ Rx(-pitch)``; a frontal, upright face is (0, 0, 0).

Example:
    >>> pose = kdmark.head_pose(face.landmarks, image.shape, face.scores)   # Pose(yaw=..., pitch=..., roll=...)
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
from typing import NamedTuple

import numpy as np

__all__ = ["Pose", "head_pose", "mean_face", "rotation", "project_axes"]

FIT_POINTS = np.arange(17, 68)  # brows, nose, eyes, mouth: not the jaw line
MIN_SCORE = 0.3  # points the model is less sure of than this are left out of the fit (when scores are given)


class Pose(NamedTuple):
    """Head pose in degrees (see the module docstring for the signs), and ``error``: the fit's RMS reprojection
    error in pixels (large when the landmarks do not look like a face); ``rvec`` and ``tvec``: the fit itself
    (OpenCV's rotation vector and the translation in mm, head -> camera), which :func:`project_axes` draws from."""

    yaw: float
    pitch: float
    roll: float
    error: float = 0.0
    rvec: tuple = ()
    tvec: tuple = ()

    def to_dict(self) -> dict:
        return {"yaw": round(self.yaw, 2), "pitch": round(self.pitch, 2), "roll": round(self.roll, 2),
                "error_px": round(self.error, 2)}


@functools.cache
def mean_face() -> np.ndarray:
    """The (68, 3) mean face in millimetres, in the head frame."""
    path = importlib.resources.files("kdmark") / "assets" / "mean_face_68.json"
    return np.asarray(json.loads(path.read_text())["points"], np.float64)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The head -> camera rotation of a pose (degrees)."""
    a, b, g = (-math.radians(v) for v in (pitch, yaw, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(g), -math.sin(g), 0], [math.sin(g), math.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _angles(r: np.ndarray) -> tuple[float, float, float]:
    b = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    a = math.atan2(r[2, 1], r[2, 2])
    g = math.atan2(r[1, 0], r[0, 0])
    return -math.degrees(b), -math.degrees(a), -math.degrees(g)


def camera(shape: tuple) -> np.ndarray:
    """The pinhole camera kdmark assumes for a photo of ``shape`` (H, W, ...)."""
    h, w = shape[:2]
    f = float(max(h, w))
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])


def _solve(landmarks: np.ndarray, shape: tuple, scores: np.ndarray | None) -> Pose:
    import cv2

    pts = np.asarray(landmarks, np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"head pose needs the 68 iBUG points, not an array of shape {pts.shape}")
    idx = FIT_POINTS
    if scores is not None:
        sure = idx[np.asarray(scores)[idx] >= MIN_SCORE]
        idx = sure if len(sure) >= 12 else idx
    if not np.isfinite(pts[idx]).all():
        raise ValueError("head pose: the landmarks are not finite")
    model, image, k = mean_face()[idx], np.ascontiguousarray(pts[idx]), camera(shape)
    try:
        ok, rvec, tvec = cv2.solvePnP(model, image, k, None, flags=cv2.SOLVEPNP_EPNP)
        if ok and tvec[2, 0] > 0:
            ok, rvec, tvec = cv2.solvePnP(model, image, k, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
        else:
            ok, rvec, tvec = cv2.solvePnP(model, image, k, None, flags=cv2.SOLVEPNP_ITERATIVE)
    except cv2.error as err:
        raise ValueError(f"head pose: the fit failed ({err.msg.strip()})") from None
    if not ok or tvec[2, 0] <= 0:
        raise ValueError("head pose: no pose puts these points in front of the camera")
    proj, _ = cv2.projectPoints(model, rvec, tvec, k, None)
    err = float(np.sqrt(((proj.reshape(-1, 2) - image) ** 2).sum(axis=1).mean()))
    return Pose(*_angles(cv2.Rodrigues(rvec)[0]), err, tuple(rvec.ravel().tolist()), tuple(tvec.ravel().tolist()))


def head_pose(landmarks: np.ndarray, shape: tuple, scores: np.ndarray | None = None) -> Pose:
    """The pose of a face from its 68 landmarks (image pixels) in an image of ``shape`` (H, W[, C]); ``scores``
    (68,) leave the unsure points out of the fit."""
    return _solve(landmarks, shape, scores)


def project_axes(pose: Pose, shape: tuple, length_mm: float = 60.0) -> np.ndarray:
    """(4, 2) image points of a fitted ``pose`` (from :func:`head_pose` on an image of ``shape``): the nose tip,
    and the ends of the head's x, y and z axes drawn from it (right, up and toward the camera), for drawing it."""
    import cv2

    nose = mean_face()[30]
    ends = np.array([nose, nose + [length_mm, 0, 0], nose + [0, -length_mm, 0], nose + [0, 0, -length_mm]])
    proj, _ = cv2.projectPoints(ends, np.array(pose.rvec), np.array(pose.tvec), camera(shape), None)
    return proj.reshape(4, 2)
