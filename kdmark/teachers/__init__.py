"""Teachers that know more than the labels: dlib's shape predictor and MediaPipe's face mesh as black boxes, any
kdmark checkpoint, the fusion of their answers into pseudo-labels, and the adapter that lets a black box teach a
student during distillation.

Example:
    >>> from kdmark.teachers import make_landmarker
    >>> points, score = make_landmarker("mediapipe")(image, box)   # (68, 2) iBUG points in image pixels
"""

from __future__ import annotations

import numpy as np

from kdmark.teachers.landmarkers import (
    CheckpointLandmarker,
    DlibLandmarker,
    MediaPipeLandmarker,
    MeshMap,
    TeacherError,
    box_of,
    fit_mesh_map,
)

__all__ = ["BLACK_BOX", "is_black_box", "make_landmarker", "fuse", "Fused", "teacher_accuracy", "DlibLandmarker",
           "MediaPipeLandmarker", "CheckpointLandmarker", "MeshMap", "fit_mesh_map", "TeacherError", "box_of",
           "PointTeacher"]

BLACK_BOX = ("dlib", "mediapipe")
"""Teacher names that are not checkpoints: they give points, never features or heatmaps of their own."""

# NME_io of each black-box teacher on the 119 held-out 300-W faces (kdmark's fixed split), boxes from the ground
# truth: `python scripts/label_quality.py` (BENCHMARKS.md, issue 16). dlib trained on these faces: it is flattered.
MEASURED_NME = {"dlib": 0.0309, "mediapipe": 0.0393}

CONFIDENCE_SCALE = 0.05  # a point whose teachers spread by this share of the face's normaliser gets confidence e^-1


def is_black_box(spec: str) -> bool:
    return str(spec).split(":", 1)[0] in BLACK_BOX


def make_landmarker(spec: str, **kwargs):
    """``"dlib"``, ``"mediapipe"`` (its 468 points mapped to 68), ``"mediapipe:MAP.npz"`` (mapped by a map fitted
    with scripts/fit_mesh_map.py, e.g. to WFLW's 98 points) or a kdmark model file (``.ckpt`` / ``.onnx``)."""
    if spec == "dlib":
        return DlibLandmarker(**kwargs)
    if spec == "mediapipe" or str(spec).startswith("mediapipe:"):
        mesh_map = spec.split(":", 1)[1] if ":" in spec else None
        return MediaPipeLandmarker(mesh_map=mesh_map, **kwargs)
    return CheckpointLandmarker(spec, **kwargs)


def teacher_accuracy(spec: str) -> float:
    """A teacher's measured NME: the table above for black boxes, the best validation NME in a checkpoint."""
    if spec in MEASURED_NME:
        return MEASURED_NME[spec]
    if is_black_box(spec):  # a black box with a map fitted elsewhere: weigh it as the 68-point one
        return MEASURED_NME[spec.split(":", 1)[0]]
    from kdmark import zoo

    if zoo.is_zoo_name(spec):  # a shipped model: its card's held-out NME
        nme = zoo.get(spec).info.get("nme")
        if nme:
            return float(nme)
    if str(spec).endswith(".ckpt"):
        from kdmark.checkpoint import read_checkpoint

        nme = read_checkpoint(spec).get("metrics", {}).get("val", {}).get("nme")
        if nme:
            return float(nme)
    raise TeacherError(f"{spec}: no measured accuracy to weight it by; give --weights explicitly")


class Fused:
    """Fused landmarks of one face: ``points`` (K, 2), per-point ``confidence`` (K,) in (0, 1], and each teacher's
    mean distance from the fused points (``disagreement``, in units of the face normaliser)."""

    def __init__(self, points: np.ndarray, confidence: np.ndarray, disagreement: np.ndarray):
        self.points, self.confidence, self.disagreement = points, confidence, disagreement


def fuse(points: np.ndarray, weights: np.ndarray, normaliser: float, scale: float = CONFIDENCE_SCALE) -> Fused:
    """Weighted mean of T teachers' points (T, K, 2) with weights (T,); confidence of point k is
    ``exp(-(spread_k / (scale * normaliser))^2)`` where ``spread_k`` is the weighted RMS distance of the teachers'
    points from the fused one (one teacher: confidence 1, nothing to compare). One face of
    :func:`kdmark.data.pseudo.fuse` without its robust step."""
    from kdmark.data.pseudo import fuse as fuse_faces

    points = np.asarray(points, np.float64)
    norm = max(float(normaliser), 1e-9)
    fused, confidence = fuse_faces(points[None], weights, cauchy=None, tau=scale / np.sqrt(2), normaliser=[norm])
    dist = np.linalg.norm(points - fused[0], axis=-1)  # (T, K)
    return Fused(fused[0], confidence[0], dist.mean(axis=1) / norm)


def weights_from_accuracy(nmes: list[float]) -> np.ndarray:
    """Inverse-variance weights: a teacher half as wrong counts four times as much."""
    return np.array([1.0 / max(n, 1e-6) ** 2 for n in nmes])


class PointTeacher:
    """A black-box landmarker as a distillation teacher: called on the student's batch of [0, 1] crops, it returns
    ``points`` (student input pixels), ``coords`` ([0, 1]) and ``scores``, and ``heatmaps`` rendered from its points
    by the student's codec when the student has a heatmap head, so point and heatmap distillation terms work as with
    a checkpoint teacher. It has no features: feature terms refuse it.

    The face is assumed where kdmark's crops put it: centred, its box ``1 / (1 + 2 margin)`` of the crop side
    (augmentation moves it a little; both black boxes re-fit the box from their own first answer)."""

    black_box = True

    def __init__(self, landmarker, student_size: int, margin: float, codec=None):
        self.landmarker, self.size, self.margin, self.codec = landmarker, student_size, margin, codec
        self.name = getattr(landmarker, "name", "teacher")
        self.num_points = landmarker.num_points

    def to(self, device):  # noqa: ARG002 - runs on the CPU; its outputs follow the batch
        return self

    def __call__(self, image):
        import torch

        s = self.size
        side = s / (1 + 2 * self.margin)
        c = (s - 1) / 2
        box = np.array([c - side / 2, c - side / 2, c + side / 2, c + side / 2])
        arr = (image.detach().float().permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
        pts, scores = zip(*(self.landmarker(a, box) for a in arr))
        pts = np.stack(pts).astype(np.float32)
        out = {"points": torch.from_numpy(pts), "coords": torch.from_numpy((pts + 0.5) / s),
               "scores": torch.tensor(scores, dtype=torch.float32)[:, None].expand(-1, pts.shape[1])}
        if self.codec is not None:
            ones = np.ones(pts.shape[1], bool)
            targets = [self.codec.encode(p, ones) for p in pts]
            if "heatmaps" in targets[0]:
                out["heatmaps"] = torch.from_numpy(np.stack([t["heatmaps"] for t in targets]))
        return {k: v.to(image.device) for k, v in out.items()}
