"""``Predictor``: photo (or video frame) in, landmarks in original-image pixels out, from a checkpoint or an ONNX
file, on PyTorch or onnxruntime. Faces come from ``boxes`` or from a face detector
(``kdmark.deploy.detectors``: BlazeFace by default, or dlib's HOG).

Example:
    >>> p = kdmark.Predictor()                            # the shipped kdmark-68-s; or a zoo name, .ckpt, .onnx
    >>> faces = p.predict("photo.jpg")                    # BlazeFace finds the faces
    >>> faces[0].landmarks.shape, faces[0].scores.shape   # (68, 2) image pixels, (68,) per-point confidence
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdmark import zoo
from kdmark.config import PredictConfig
from kdmark.data.crops import face_crop, sample_crops
from kdmark.data.transforms import apply_affine, invert_affine
from kdmark.deploy.detectors import best_match, make_detector
from kdmark.errors import ConfigError, DatasetError, DetectorError

__all__ = ["Predictor", "Face", "Tracker", "DetectorError", "OneEuroFilter", "predict_video", "face_crop",
           "sample_crops"]


@dataclass
class Face:
    """One face: ``box`` [x0, y0, x1, y1] it was cropped from, ``landmarks`` (K, 2) and ``scores`` (K,) in image
    pixels; ``detector_score`` when kdmark found the face itself, ``track_id`` when it came from a
    :class:`Tracker` (the same id for the same face from frame to frame), and ``pose`` (68-point models: yaw, pitch,
    roll in degrees, :func:`kdmark.head_pose`). ``to_dict()`` gives the JSON form written by ``kdmark predict``."""

    box: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    detector_box: np.ndarray | None = field(default=None, repr=False)
    detector_score: float | None = None  # the detector's score when kdmark found the face itself
    track_id: int | None = None
    image_shape: tuple | None = field(default=None, repr=False)  # (H, W) of the image the face is in

    @property
    def pose(self):
        """:class:`kdmark.pose.Pose` (yaw, pitch, roll in degrees) from the 68 landmarks, or None for other
        schemes; computed on first use (about 0.4 ms)."""
        if len(self.landmarks) != 68 or self.image_shape is None:
            return None
        cached = self.__dict__.get("_pose")
        if cached is None or cached[0] is not self.landmarks:
            from kdmark.pose import head_pose

            try:
                pose = head_pose(self.landmarks, self.image_shape, self.scores)
            except ValueError:  # points no face could make (the fit fails): no pose rather than a wrong one
                pose = None
            cached = (self.landmarks, pose)
            self.__dict__["_pose"] = cached
        return cached[1]

    def to_dict(self) -> dict:
        out = {"box": [round(float(v), 2) for v in self.box],
               "landmarks": np.round(self.landmarks, 3).tolist(), "scores": np.round(self.scores, 4).tolist()}
        if self.detector_score is not None:
            out["detector_score"] = round(float(self.detector_score), 4)
        if self.track_id is not None:
            out["track_id"] = self.track_id
        pose = self.pose
        if pose is not None:
            out["pose"] = pose.to_dict()
        return out


def check_boxes(boxes, shape: tuple, where: str = "box") -> list[np.ndarray]:
    """``boxes`` as a list of float (4,) [x0, y0, x1, y1], each finite, with x0 < x1 and y0 < y1, overlapping the
    (H, W) image and at most 4 times its larger side; else one ``DatasetError`` naming the box."""
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DatasetError(where, "boxes must be numbers: [[x0, y0, x1, y1], ...]") from None
    if arr.size == 0:
        return []
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DatasetError(where, f"boxes must be [[x0, y0, x1, y1], ...], not an array of shape {arr.shape}")
    h, w = shape[:2]
    out = []
    for i, (x0, y0, x1, y1) in enumerate(arr):
        name = f"{where} {i} [{x0:g}, {y0:g}, {x1:g}, {y1:g}]"
        if not np.isfinite([x0, y0, x1, y1]).all():
            raise DatasetError(name, "not finite")
        if x1 <= x0 or y1 <= y0:
            raise DatasetError(name, "zero or negative size (x1 must exceed x0, y1 exceed y0)")
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise DatasetError(name, f"outside the {w} x {h} image")
        if max(x1 - x0, y1 - y0) > 4 * max(w, h):
            raise DatasetError(name, f"more than 4 times the size of the {w} x {h} image")
        out.append(np.array([x0, y0, x1, y1]))
    return out


class Predictor:
    """Landmarks for the faces in an image.

    Args:
        model: a zoo model's name (default ``kdmark-68-s``, see ``kdmark models``), a ``.ckpt`` or ``.onnx`` path,
            or a LandmarkNet.
        backend: "torch", "onnx" or "auto" (by file type).
        threads: CPU threads for inference (None: the library default).
        margin: crop margin around the face box (None: as in training).
        batch_size: faces per forward pass.
        detector: "blazeface" (default), "dlib", or a kdmark.deploy.detectors.FaceDetector.
        detector_threshold: keep detections scoring at least this (None: the detector's own cut-off, 0.5 for
            BlazeFace's probability, 0 for dlib's margin).
        min_face: ignore detected faces whose box is smaller than this many pixels.
        tta: test-time augmentation, "none" or "flip" (the mirrored crop too, averaged; twice the network time).
        precision: for a zoo model that ships an INT8 file too: "auto" (INT8 where this CPU has the dot-product
            instructions that make it faster than FP32, ``kdmark.runtime.int8_is_fast``), "fp32" or "int8".
    """

    def __init__(self, model=zoo.DEFAULT, backend: str = "auto", threads: int | None = None,
                 margin: float | None = None, batch_size: int = PredictConfig.batch_size, detector=None,
                 detector_threshold: float | None = None, min_face: float = 0.0, tta: str = "none",
                 precision: str = "auto"):
        from kdmark.model import load_model
        from kdmark.schemes import get_scheme, with_tta

        self.model = load_model(model, backend, precision, threads)  # kdmark.Model: card, backend, predict
        self.card = self.model.card
        self.run = with_tta(self.model.predict, tta, get_scheme(self.card.scheme))
        self.detector = make_detector(detector, detector_threshold, min_face)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
        self.margin = margin if margin is not None else self.card.margin
        self.size, self.batch_size = self.card.input_size, batch_size

    @property
    def num_points(self) -> int:
        return self.card.num_points

    def predict_crops(self, items: list[tuple[np.ndarray, np.ndarray]]) -> list[Face]:
        """Faces for (image, box) pairs, in batches of ``batch_size``."""
        faces = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            crops, mats = zip(*(face_crop(img, box, self.margin, self.size) for img, box in chunk))
            pts, scores = self.run(np.stack(crops))
            for (img, box), p, s, m in zip(chunk, pts, scores, mats):
                faces.append(Face(np.asarray(box, float), apply_affine(p.astype(np.float64), invert_affine(m)), s,
                                  image_shape=tuple(img.shape[:2])))
        return faces

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(landmark box, detection score) for the faces the detector finds, with this predictor's threshold and
        minimum face size (photos and videos alike)."""
        return [(d.box, d.score) for d in self.detector(image)]

    def predict(self, image, boxes: list | np.ndarray | None = None, bgr: bool = False) -> list[Face]:
        """Landmarks for each face of one image: a path, the bytes of an image file, a PIL image or an RGB array
        (uint8 (H, W, 3); grey, RGBA, uint16 and float arrays are converted, see ``kdmark.data.images.as_rgb``;
        ``bgr=True`` for OpenCV's ``cv2.imread`` arrays). ``boxes`` [[x0, y0, x1, y1], ...] tight around the
        faces (the box convention kdmark trains with), or None to find them with the detector. An image without
        faces gives an empty list; a box that is not finite, inverted or off the image is one ``DatasetError``."""
        return self.predict_many([image], None if boxes is None else [boxes], bgr)[0]

    def predict_many(self, images, boxes: list | None = None, bgr: bool = False) -> list[list[Face]]:
        """``predict`` for a list of images (like face-alignment's ``get_landmarks_from_batch``): the faces of all
        of them go through the network together, ``batch_size`` crops at a time. ``boxes``: one list per image, or
        None (the detector)."""
        from kdmark.data.images import as_rgb

        if boxes is not None and len(boxes) != len(images):
            raise DatasetError("boxes", f"{len(boxes)} box lists for {len(images)} images; give one list per image")
        imgs = [as_rgb(im, bgr) for im in images]
        per_image, scores = [], []
        for i, img in enumerate(imgs):
            if boxes is None or boxes[i] is None:
                found = self.detect(img)
                per_image.append([b for b, _ in found])
                scores.append([s for _, s in found])
            else:
                per_image.append(check_boxes(boxes[i], img.shape))
                scores.append([None] * len(per_image[-1]))
        faces = self.predict_crops([(img, b) for img, bs in zip(imgs, per_image) for b in bs])
        out, start = [], 0
        for bs, sc in zip(per_image, scores):
            mine = faces[start:start + len(bs)]
            for face, score in zip(mine, sc):
                face.detector_score = score
            out.append(mine)
            start += len(bs)
        return out

    def track(self, fps: float = 30.0, redetect_every: int = 15, smooth: bool = True) -> Tracker:
        """A :class:`Tracker` for a stream of the caller's own frames: ``faces = tracker.update(frame)``, with a
        ``track_id`` per face that stays the same from frame to frame."""
        return Tracker(self, fps, redetect_every, smooth)

    __call__ = predict


# (min_cutoff Hz, beta) for video landmarks, chosen on the exact-ground-truth clips of kdmark/deploy/videobench.py: the
# classic (1.0, 0.05) lags moving faces (+16% NME); (8.0, 0.5) cuts jitter by 4-6% with NME within +-1.5%.
VIDEO_ONE_EURO = (8.0, 0.5)


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., CHI 2012) for landmark tracks: little lag on fast motion, little jitter
    when still. ``min_cutoff`` (Hz) sets smoothing at rest, ``beta`` how fast it opens up with speed."""

    def __init__(self, fps: float, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.dt, self.min_cutoff, self.beta, self.d_cutoff = 1.0 / fps, min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def _alpha(self, cutoff: np.ndarray | float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / self.dt)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x
        dx = (x - self.x) / self.dt
        self.dx = self.dx + self._alpha(self.d_cutoff) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + self._alpha(cutoff) * (x - self.x)
        return self.x.copy()


class Tracker:
    """Faces followed through frames the caller supplies (a webcam loop, a decoded stream, a robot's camera):
    ``tracker = predictor.track(fps=30); faces = tracker.update(frame)``.

    Each face keeps its ``track_id`` from frame to frame. A face is found by the detector every ``redetect_every``
    frames (and on any frame with no face yet); in between, its crop follows the box of its own raw landmarks in the
    frame before, so a frame costs the landmark network alone. A re-detection replaces the box of the track it
    overlaps (drift never outlives one), starts a track for a new face and ends a track whose face has gone; a track
    whose face has left the frame ends at once.
    ``smooth``: a One-Euro filter per track (kdmark's video setting, ``VIDEO_ONE_EURO``) cuts jitter; ``Face.landmarks``
    are the smoothed points. ``detect`` replaces the predictor's detector (an RGB image -> list of boxes)."""

    def __init__(self, predictor: Predictor, fps: float = 30.0, redetect_every: int = 15, smooth: bool = True,
                 detect=None):
        if isinstance(redetect_every, bool) or not isinstance(redetect_every, int) or redetect_every < 1:
            raise ConfigError(f"redetect_every must be a positive integer, not {redetect_every!r}")
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise ConfigError(f"fps must be a positive number, not {fps!r}")
        self.predictor, self.fps, self.redetect_every, self.smooth = predictor, float(fps), redetect_every, smooth
        self._detect = detect
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new scene or stream); the next frame runs the detector."""
        self.tracks: list[_Track] = []
        self.frame_index, self._next_id = 0, 0

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, float | None]]:
        if self._detect is not None:
            return [(np.asarray(b, float), None) for b in self._detect(image)]
        return self.predictor.detect(image)

    def update(self, frame, bgr: bool = False) -> list[Face]:
        """The faces of the next frame (an RGB array, or ``bgr=True`` for OpenCV's frames), each with its
        ``track_id`` and the score of the detection that last placed it."""
        from kdmark.data.images import as_rgb

        image = as_rgb(frame, bgr)
        h, w = image.shape[:2]  # a face that has left the frame ends its track (its box would be refused)
        self.tracks = [t for t in self.tracks if t.box[2] > 0 and t.box[3] > 0 and t.box[0] < w and t.box[1] < h]
        if self.frame_index % self.redetect_every == 0 or not self.tracks:
            self.tracks = self._match(self.detect(image))
        faces = self.predictor.predict(image, [t.box for t in self.tracks]) if self.tracks else []
        for face, track in zip(faces, self.tracks):
            lo, hi = face.landmarks.min(axis=0), face.landmarks.max(axis=0)
            track.box = np.concatenate([lo, hi])  # the raw points place the next crop
            if self.smooth:
                face.landmarks = track.filter(face.landmarks)
            face.track_id, face.detector_score = track.id, track.score
        self.frame_index += 1
        return faces

    def _match(self, detected: list[tuple[np.ndarray, float | None]]) -> list[_Track]:
        """Tracks after a re-detection: a track overlapping a detection takes the detection's box (keeping its id
        and smoothing filter); a detection no track overlaps starts a new track; a track no detection overlaps
        ends."""
        matched, used = [], set()
        for track in self.tracks:
            free = [i for i in range(len(detected)) if i not in used]
            k = best_match([detected[i][0] for i in free], track.box)
            if k is not None:
                used.add(free[k])
                track.box, track.score = np.asarray(detected[free[k]][0], float), detected[free[k]][1]
                matched.append(track)
        for i, (box, score) in enumerate(detected):
            if i not in used:
                matched.append(_Track(self._next_id, np.asarray(box, float), score,
                                      OneEuroFilter(self.fps, *VIDEO_ONE_EURO)))
                self._next_id += 1
        return matched


@dataclass
class _Track:
    id: int
    box: np.ndarray
    score: float | None
    filter: OneEuroFilter


def predict_video(predictor: Predictor, path: str | Path, redetect_every: int = 15, smooth: bool = True,
                  progress: bool = False, stats: dict | None = None, detect=None, max_frames: int | None = None):
    """Yield (frame index, RGB frame, faces) for a video file or a camera, the faces followed by a
    :class:`Tracker` (``track_id`` per face; ``redetect_every``, ``smooth`` and ``detect`` as there).

    ``stats`` (a dict) receives ``fps``, ``frames_read`` and ``frames_expected`` (the container's count, 0 when
    unknown), so a caller can tell a truncated file. ``path`` may be a camera index (``0``); ``max_frames`` stops
    after that many frames (a camera never ends)."""
    import cv2
    from tqdm.auto import tqdm

    from kdmark.errors import DatasetError

    camera = isinstance(path, int)  # a camera index (0: the first webcam)
    cap = cv2.VideoCapture(path if camera else str(path))
    if not cap.isOpened():
        raise DatasetError(f"camera {path}" if camera else path,
                           "cannot open this camera" if camera else "not a readable video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = None if camera else int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if stats is not None:
        stats["fps"] = fps
    tracker = Tracker(predictor, fps, redetect_every, smooth, detect)
    bar = tqdm(total=total, desc=f"camera {path}" if camera else Path(path).name, unit="frame",
               disable=not progress, leave=False)
    index = 0
    try:
        while max_frames is None or index < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield index, frame, tracker.update(frame)
            index += 1
            bar.update(1)
    finally:
        bar.close()
        cap.release()
        if stats is not None:
            stats.update(frames_read=index, frames_expected=total or 0)
