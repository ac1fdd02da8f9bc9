"""Landmark models used as black boxes: image and face box in, points out.

Every landmarker is called as ``landmarker(image, box) -> (points (K, 2), score)`` on an RGB uint8 image, with
``box`` [x0, y0, x1, y1] in kdmark's face-box convention (the tight box around the face's 68 landmarks; dlib and
BlazeFace detections are converted to it), and returns points in the same image's pixels. Three kinds:

- :class:`DlibLandmarker`: dlib's 68-point shape predictor (``face_recognition_models``), iBUG 68 points.
- :class:`MediaPipeLandmarker`: MediaPipe's Face Mesh (468 points, run by the LiteRT interpreter from the ``.tflite``
  file kdmark ships), mapped to a landmark scheme by a linear :class:`MeshMap` fitted on labelled faces.
- :class:`CheckpointLandmarker`: any kdmark model, with test-time augmentation (flip, scale, shift).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdmark.data.transforms import apply_affine, box_square, crop_matrix, invert_affine, warp_image
from kdmark.deploy.detectors import DlibHog, best_match, detector_box
from kdmark.errors import TeacherError

__all__ = ["DlibLandmarker", "MediaPipeLandmarker", "CheckpointLandmarker", "MeshMap", "TeacherError",
           "asset", "box_of", "dlib_model_file", "fit_mesh_map", "fit_mesh_map_on", "meshes_for"]


def asset(name: str) -> Path:
    """A file shipped in ``kdmark/teachers/assets``."""
    return Path(str(importlib.resources.files("kdmark.teachers") / "assets" / name))


def box_of(points: np.ndarray) -> np.ndarray:
    """The tight [x0, y0, x1, y1] box around points."""
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


# --- dlib ------------------------------------------------------------------------------------------------------------


def dlib_model_file() -> Path:
    """dlib's 68-point model shipped in face_recognition_models, found without importing the package (its
    ``__init__`` needs pkg_resources)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise TeacherError("dlib's 68-point model needs face_recognition_models: pip install 'kdmark[dlib]'")
    return Path(spec.origin).parent / "models" / "shape_predictor_68_face_landmarks.dat"


class DlibLandmarker:
    """dlib's 68-point shape predictor (trained on 300-W's training faces: its scores on them flatter it).

    The predictor is only accurate from its own HOG detector's box: on kdmark's 119 held-out 300-W faces it scores
    2.88% NME from the detector's boxes but 4.97% from the ground-truth landmark boxes mapped to the detector's
    convention by the median offsets (``kdmark.deploy.detectors.TO_LANDMARK_BOX``); a face's own detection is
    therefore used when given (``detection=``), or found (``detect=True``: the HOG detection that overlaps the box
    best), and the mapped box only when the detector finds nothing there."""

    name, scheme, num_points = "dlib", "300w", 68

    def __init__(self, detect: bool = True):
        try:
            import dlib
        except ImportError:
            raise TeacherError("the dlib teacher needs dlib: pip install 'kdmark[dlib]'") from None
        self._dlib, self.detect = dlib, detect
        self.predictor = dlib.shape_predictor(str(dlib_model_file()))
        self.detector = DlibHog(upsample=0) if detect else None  # kdmark's dlib detector, upsampled per image

    def points_from_detection(self, image: np.ndarray, det: np.ndarray) -> np.ndarray:
        """68 points from a raw dlib detector box [x0, y0, x1, y1] (right and bottom exclusive)."""
        rect = self._dlib.rectangle(int(round(det[0])), int(round(det[1])), int(round(det[2])) - 1,
                                    int(round(det[3])) - 1)
        shape = self.predictor(np.ascontiguousarray(image), rect)
        return np.array([[p.x, p.y] for p in shape.parts()], float)

    def _find(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The raw HOG detection that overlaps ``box`` best (small crops upsampled once), or None."""
        found = self.detector(image, upsample=0 if min(image.shape[:2]) >= 160 else 1)
        k = best_match([d.box for d in found], box)
        return None if k is None else found[k].raw

    def __call__(self, image: np.ndarray, box: np.ndarray, detection: np.ndarray | None = None,
                 **_) -> tuple[np.ndarray, float]:
        if detection is None and self.detect:
            detection = self._find(image, box)
        found = detection is not None
        det = detection if found else detector_box(box, "dlib")
        return self.points_from_detection(image, det), 1.0 if found else 0.5


# --- MediaPipe Face Mesh ---------------------------------------------------------------------------------------------


@dataclass
class MeshMap:
    """A linear map from MediaPipe's 468 mesh points to a scheme's K points: ``P = W @ (M - c) / s * s + c`` with
    ``c`` the mesh centroid and ``s`` its RMS radius, so the map commutes with shifting, scaling and rotating the
    face. Fitted by ridge regression on labelled faces (:func:`fit_mesh_map`); ``card`` says on what."""

    weights: np.ndarray  # (K, 468)
    scheme: str
    card: dict

    def __call__(self, mesh: np.ndarray) -> np.ndarray:
        c = mesh.mean(axis=0)
        s = math.sqrt(((mesh - c) ** 2).sum(axis=1).mean())
        return self.weights @ ((mesh - c) / s) * s + c

    def save(self, path: str | Path) -> Path:
        from kdmark.io import atomic_write

        path = Path(path)
        atomic_write(path, lambda f: np.savez_compressed(f, weights=self.weights.astype(np.float32),
                                                         scheme=self.scheme, card=json.dumps(self.card)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MeshMap:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["weights"].astype(np.float64), str(z["scheme"]), json.loads(str(z["card"])))
        except (OSError, ValueError, KeyError) as err:
            raise TeacherError(f"{path}: not a kdmark mesh map ({type(err).__name__})") from None


def fit_mesh_map(meshes: np.ndarray, targets: np.ndarray, scheme: str, ridge: float = 1.0,
                 card: dict | None = None) -> MeshMap:
    """Ridge regression of ``targets`` (N, K, 2) on ``meshes`` (N, 468, 2) in each mesh's normalised frame; x and y
    share the weights (so the map is rotation-equivariant)."""
    xs, ys = [], []
    for mesh, target in zip(meshes, targets):
        c = mesh.mean(axis=0)
        s = math.sqrt(((mesh - c) ** 2).sum(axis=1).mean())
        xs.append((mesh - c) / s)
        ys.append((target - c) / s)
    x = np.concatenate(xs, axis=1)  # (468, 2N): one column per coordinate of every face
    y = np.concatenate(ys, axis=1)  # (K, 2N)
    w = y @ x.T @ np.linalg.inv(x @ x.T + ridge * np.eye(x.shape[0]))
    return MeshMap(w, scheme, dict(card or {}, faces=len(meshes), ridge=ridge))


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 (native libraries' own logging) for the duration; Python's errors still show."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipeLandmarker:
    """MediaPipe's Face Mesh as a landmark teacher, mapped to ``mesh_map``'s scheme (default: the shipped 468 -> 68
    iBUG map). Two passes, as MediaPipe's own tracker does: the first from the face box, the second from the box of
    its own mesh, rotated so the eyes are level. ``score`` is the model's face-presence probability."""

    name = "mediapipe"
    INPUT = 192
    ROI_SCALE = 1.5  # MediaPipe's region of interest: the mesh's box enlarged 1.5 times
    EYES = (33, 263)  # outer eye corners in the 468-point mesh (image-left, image-right on a frontal face)

    def __init__(self, mesh_map: MeshMap | str | Path | None = None, model: str | Path | None = None,
                 threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise TeacherError("the MediaPipe teacher needs the LiteRT interpreter: pip install "
                               "'kdmark[mediapipe]' (ai-edge-litert)") from None
        if not isinstance(mesh_map, MeshMap):
            mesh_map = MeshMap.load(mesh_map or asset("mesh_to_300w.npz"))
        self.map = mesh_map
        self.scheme, self.num_points = mesh_map.scheme, mesh_map.weights.shape[0]
        with _quiet_stderr():  # LiteRT's C++ logs "INFO: Created TensorFlow Lite XNNPACK delegate" on stderr
            self.interpreter = Interpreter(model_path=str(model or asset("mediapipe_face_landmark.tflite")),
                                           num_threads=threads)
            self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outs = {tuple(o["shape"]): o["index"] for o in self.interpreter.get_output_details()}
        self._mesh, self._flag = outs[(1, 1, 1, 1404)], outs[(1, 1, 1, 1)]

    def mesh(self, image: np.ndarray, cx: float, cy: float, side: float, angle: float = 0.0,
             depth: bool = False) -> tuple[np.ndarray, float]:
        """(468, 2) mesh points in image pixels and the face probability, for the square ROI (cx, cy, side);
        ``depth=True``: (468, 3), the model's depth too (larger is farther from the camera), in image pixels."""
        m = crop_matrix(cx, cy, side, self.INPUT, angle)
        crop = warp_image(image, m, self.INPUT).astype(np.float32) / 255.0
        self.interpreter.set_tensor(self._input, crop[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._mesh).reshape(468, 3).astype(np.float64)
        flag = float(self.interpreter.get_tensor(self._flag).reshape(()))
        back = invert_affine(m)
        points = apply_affine(raw[:, :2], back)
        if depth:
            points = np.column_stack([points, raw[:, 2] * math.sqrt(abs(np.linalg.det(back[:, :2])))])
        return points, 1.0 / (1.0 + math.exp(-flag))

    def mesh_for_box(self, image: np.ndarray, box: np.ndarray, depth: bool = False) -> tuple[np.ndarray, float]:
        """Two passes: the ROI around the face box, then around the first mesh's box, rotated to level eyes (the
        ROI sizes and the rotation's sign were checked on 300-W training faces: 4.1% NME after mapping, against
        4.4% unrotated and 4.8% for one pass)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        mesh, _ = self.mesh(image, (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * self.ROI_SCALE)
        lo, hi = mesh.min(axis=0), mesh.max(axis=0)
        (lx, ly), (rx, ry) = mesh[self.EYES[0]], mesh[self.EYES[1]]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        c = (lo + hi) / 2
        return self.mesh(image, c[0], c[1], float(max(hi - lo)) * self.ROI_SCALE, angle, depth)

    def __call__(self, image: np.ndarray, box: np.ndarray, **_) -> tuple[np.ndarray, float]:
        mesh, score = self.mesh_for_box(image, box)
        return self.map(mesh), score


# --- kdmark checkpoints ----------------------------------------------------------------------------------------------


class CheckpointLandmarker:
    """A kdmark model (``.ckpt``, ``.onnx`` or LandmarkNet) with test-time augmentation: the face is seen as is,
    mirrored, 5% larger and smaller and shifted by 3% of its side; the points are mapped back and averaged."""

    VARIANTS = ((1.0, 0.0, 0.0, False), (1.0, 0.0, 0.0, True), (1.05, 0.0, 0.0, False), (0.95, 0.0, 0.0, False),
                (1.0, 0.03, 0.03, False))  # (scale, shift x, shift y, flip)

    def __init__(self, model, tta: bool = True, threads: int | None = None):
        from kdmark.deploy.predict import Predictor
        from kdmark.schemes import get_scheme

        self.predictor = Predictor(model, threads=threads)
        self.name = Path(model).name if isinstance(model, str | Path) else "model"
        self.scheme, self.num_points = self.predictor.card.scheme, self.predictor.num_points
        self.flip = list(get_scheme(self.scheme).flip)
        self.variants = self.VARIANTS if tta else self.VARIANTS[:1]

    def __call__(self, image: np.ndarray, box: np.ndarray, **_) -> tuple[np.ndarray, float]:
        p = self.predictor
        cx, cy, side0 = box_square(box, p.margin)
        crops, backs = [], []
        for scale, sx, sy, flip in self.variants:
            m = crop_matrix(cx + sx * side0, cy + sy * side0, side0 * scale, p.size)
            crop = warp_image(image, m, p.size)
            if flip:
                crop = crop[:, ::-1]
                m = np.array([[-1.0, 0.0, p.size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
            crops.append(np.ascontiguousarray(crop).astype(np.float32).transpose(2, 0, 1) / 255.0)
            backs.append(invert_affine(m))
        pts, scores = p.run(np.stack(crops))
        out = []
        for (_, _, _, flip), q, back in zip(self.variants, pts, backs):
            q = apply_affine(q.astype(np.float64), back)
            out.append(q[self.flip] if flip else q)
        return np.mean(out, axis=0), float(np.mean(scores))


def meshes_for(landmarker: MediaPipeLandmarker, samples: list, progress: bool = False) -> np.ndarray:
    """(N, 468, 2) MediaPipe meshes of labelled faces, each found from the box of its ground-truth points (the box
    convention every detector's box is converted to)."""
    from tqdm.auto import tqdm

    from kdmark.data.images import load_image

    out = []
    for s in tqdm(samples, desc="face mesh", unit="face", disable=None if progress else True, leave=False):
        out.append(landmarker.mesh_for_box(load_image(s.image), s.landmark_box())[0])
    return np.stack(out)


def fit_mesh_map_on(samples: list, scheme: str, ridge: float = 1.0, progress: bool = False,
                    card: dict | None = None) -> MeshMap:
    """Fit the 468 -> K map on labelled faces of any scheme the mesh covers (68-point 300-W, WFLW's 98, ...)."""
    identity = MeshMap(np.zeros((0, 468)), scheme, {})
    lm = MediaPipeLandmarker(mesh_map=identity)
    meshes = meshes_for(lm, samples, progress)
    return fit_mesh_map(meshes, np.stack([s.points for s in samples]), scheme, ridge, card)
