"""Face detectors: where ``Predictor``, ``kdmark predict``, ``bench`` and ``data label`` find faces. Torch-free.

- ``blazeface`` (default): MediaPipe's BlazeFace short range on onnxruntime (``blazeface.py``), run on the whole
  photo and on overlapping tiles of it so that small faces in big photos are found too; ~1 ms a pass.
- ``dlib``: dlib's HOG frontal-face detector (``pip install dlib-bin``), upsampled once.

Each detector's box is mapped to the tight landmark box kdmark crops around in training by offsets measured on real
300-W faces (``scripts/calibrate_detector.py``): centre shift (dx, dy) in detector-box sides and the landmark box's
longer side per detector side.

Example:
    >>> detect = make_detector("blazeface")
    >>> for face in detect(image):            # RGB uint8 (H, W, 3)
    ...     face.box, face.score              # landmark box [x0, y0, x1, y1] in image pixels, detector score
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdmark.data.transforms import box_iou
from kdmark.errors import DetectorError

__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "TO_LANDMARK_BOX", "Detection", "FaceDetector", "make_detector",
           "landmark_box", "detector_box", "box_iou", "best_match"]

DETECTORS = ("blazeface", "dlib")
DEFAULT_DETECTOR = "blazeface"

# (dx, dy, s) per detector, medians over the real 300-W faces each finds (scripts/calibrate_detector.py): landmark-box
# centre = detector-box centre + (dx, dy) * side; landmark-box side = s * side. dx is set to 0 (faces are symmetric).
TO_LANDMARK_BOX = {
    "dlib": (0.0, 0.087, 0.995),  # 1160 of 1220 faces; s from the landmark box's width
    "blazeface": (0.0, 0.0458, 0.9705),  # all 1213 train faces (tiles=1); s from the landmark box's longer side
}


@dataclass
class Detection:
    """One face: ``box`` the landmark box kdmark crops around, ``score`` the detector's, ``raw`` the detector's own
    box [x0, y0, x1, y1] (right and bottom exclusive), ``source`` the detector's name."""

    box: np.ndarray
    score: float
    raw: np.ndarray
    source: str


def landmark_box(raw: np.ndarray, detector: str) -> np.ndarray:
    """The landmark box (square) for a detector's own box."""
    dx, dy, s = TO_LANDMARK_BOX[detector]
    side = max(raw[2] - raw[0], raw[3] - raw[1])
    cx, cy = (raw[0] + raw[2]) / 2 + dx * side, (raw[1] + raw[3]) / 2 + dy * side
    half = s * side / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def detector_box(box: np.ndarray, detector: str) -> np.ndarray:
    """The inverse of :func:`landmark_box`: the detector box a landmark box corresponds to."""
    dx, dy, s = TO_LANDMARK_BOX[detector]
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) / s
    cx, cy = (x0 + x1) / 2 - dx * side, (y0 + y1) / 2 - dy * side
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def best_match(boxes, truth: np.ndarray, min_iou: float = 0.3) -> int | None:
    """Index of the box that overlaps ``truth`` most, if by more than ``min_iou`` (else None): how benchmarks and
    calibration match detections to annotated faces."""
    ious = [box_iou(b, truth) for b in boxes]
    best = int(np.argmax(ious)) if ious else None
    return best if best is not None and ious[best] > min_iou else None


class FaceDetector:
    """Calling it on an RGB image gives a :class:`Detection` per face, best first, keeping those that score at
    least ``threshold`` and whose landmark box is at least ``min_face`` pixels wide."""

    name = ""

    def __init__(self, threshold: float, min_face: float = 0.0):
        from kdmark.config import ConfigError

        if not np.isfinite(threshold):
            raise ConfigError(f"detector threshold must be a finite number, not {threshold!r}")
        if not (np.isfinite(min_face) and min_face >= 0):
            raise ConfigError(f"min_face must be a finite number of pixels >= 0, not {min_face!r}")
        self.threshold, self.min_face = threshold, min_face

    def raw(self, image: np.ndarray, **kwargs) -> list[tuple[np.ndarray, float]]:
        raise NotImplementedError

    def __call__(self, image: np.ndarray, **kwargs) -> list[Detection]:
        """``kwargs`` go to the detector's own ``raw`` (e.g. DlibHog's ``upsample`` for this image)."""
        out = []
        for raw, score in self.raw(np.ascontiguousarray(image), **kwargs):
            box = landmark_box(raw, self.name)
            if score >= self.threshold and box[2] - box[0] >= self.min_face:
                out.append(Detection(box, float(score), np.asarray(raw, float), self.name))
        return sorted(out, key=lambda d: -d.score)


class BlazeFaceDetector(FaceDetector):
    """BlazeFace short range (score in [0, 1]; MediaPipe keeps >= 0.5) on the photo and ``tiles`` levels of
    overlapping tiles (0: the whole photo only, as MediaPipe runs it on a selfie camera)."""

    name = "blazeface"

    def __init__(self, threshold: float = 0.5, min_face: float = 0.0, tiles: int = 1, threads: int | None = 1):
        super().__init__(threshold, min_face)
        from kdmark.deploy.detectors.blazeface import BlazeFace

        self.net = BlazeFace(threshold=min(threshold, 0.5), threads=threads, tiles=tiles)

    def raw(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [(box, score) for box, score, _ in self.net.detect_raw(image)]


class DlibHog(FaceDetector):
    """dlib's HOG detector (score: its SVM margin; dlib's own cut-off is 0), ``upsample`` times upsampled (None:
    once for photos under 640 px, not at all for bigger ones, where upsampling costs 4x and finds little more)."""

    name = "dlib"

    def __init__(self, threshold: float = 0.0, min_face: float = 0.0, upsample: int | None = 1):
        super().__init__(threshold, min_face)
        try:
            import dlib
        except ImportError:
            raise DetectorError("the dlib detector needs dlib: pip install dlib-bin") from None
        self.hog, self.upsample = dlib.get_frontal_face_detector(), upsample

    def raw(self, image: np.ndarray, upsample: int | None = None) -> list[tuple[np.ndarray, float]]:
        if upsample is None:
            upsample = self.upsample if self.upsample is not None else int(max(image.shape[:2]) < 640)
        dets, scores, _ = self.hog.run(image, upsample, min(self.threshold, 0.0))
        return [(np.array([d.left(), d.top(), d.right() + 1, d.bottom() + 1], float), float(s))
                for d, s in zip(dets, scores)]


_CACHE: dict = {}


def make_detector(spec: str | FaceDetector | None = None, threshold: float | None = None,
                  min_face: float = 0.0) -> FaceDetector:
    """A detector by name (``blazeface``, ``dlib``; None: the default), or ``spec`` itself if it is one.
    ``threshold`` None keeps the detector's own cut-off. Detectors are cached per setting (loading is the slow
    part)."""
    if isinstance(spec, FaceDetector):
        return spec
    name = spec or DEFAULT_DETECTOR
    if name not in DETECTORS:
        raise DetectorError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
    key = (name, threshold, min_face)
    if key not in _CACHE:
        cls = BlazeFaceDetector if name == "blazeface" else DlibHog
        _CACHE[key] = cls(min_face=min_face) if threshold is None else cls(threshold=threshold, min_face=min_face)
    return _CACHE[key]
