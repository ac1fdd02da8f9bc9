"""Pseudo-labels read as they are: several teachers' landmarks for the same faces (one JSONL file per teacher, lines
and faces aligned, as ``../shared/data/pseudo/`` holds them), fused per landmark into training faces whose every
point is weighted by how well the teachers agree on it.

The file format (one JSON object per photo, the same photo on the same line of every file)::

    {"image": "lfw/x.jpg", "status": "ok" | "no_face", "faces": [{"box": [x0, y0, x1, y1], "points": [[x, y], ...]}]}

``image`` is relative to the photos' folder; coordinates are 0-based pixel centres.

The fusion (:func:`fuse`), for each face and each landmark ``k``:

1. start from the teachers' median point;
2. weigh teacher ``t`` by ``W[t, k]`` (its measured precision at that point: :data:`HAND_WEIGHTS`, or fitted on
   labelled faces by :func:`fit_weights`) times a Cauchy factor ``1 / (1 + (r / c)^2)`` of its distance ``r`` to
   the current estimate (in inter-ocular units), so a teacher that leaves the others (dlib on a turned face) loses
   its say on that point; the weighted mean is the new estimate (three rounds);
3. the point's confidence is ``exp(-s^2 / (2 tau^2))``, ``s`` the weighted RMS distance of the teachers from the
   fused point (inter-ocular units): agreement, not any one teacher's opinion of itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdmark.data.records import DatasetError, Sample

__all__ = ["PseudoLabels", "read_pseudo", "fuse", "fit_weights", "HAND_WEIGHTS", "REGIONS_68", "is_pseudo_folder",
           "pseudo_samples"]

# iBUG 68 regions (0-based point ranges)
REGIONS_68 = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
              "mouth": range(48, 68)}

# Set by hand from the measured per-region error (% inter-ocular) of each teacher on 330 HELEN test faces that are
# not in shared/ (../shared/data/pseudo/README.md): weight = 1 / error^2, per region.
_REGION_ERROR = {
    "dlib": {"jaw": 4.30, "brows": 3.11, "nose": 2.04, "eyes": 1.61, "mouth": 2.15},
    "mediapipe": {"jaw": 6.26, "brows": 4.38, "nose": 2.47, "eyes": 2.19, "mouth": 2.84},
    "kdmark-68-teacher": {"jaw": 5.59, "brows": 3.60, "nose": 2.19, "eyes": 1.77, "mouth": 2.57},
}


def _hand_weights() -> dict[str, np.ndarray]:
    out = {}
    for teacher, errors in _REGION_ERROR.items():
        w = np.zeros(68)
        for region, idx in REGIONS_68.items():
            w[list(idx)] = 1.0 / errors[region] ** 2
        out[teacher] = w
    return out


HAND_WEIGHTS = _hand_weights()
"""teacher name -> (68,) per-point weight, set by hand (see ``_REGION_ERROR``)."""


@dataclass
class PseudoLabels:
    """Every face of a pseudo-label folder, the teachers' points stacked.

    Attributes:
        images: (N,) photo path per face (relative to the photos' folder).
        face_index: (N,) the face's position in its photo's ``faces`` list.
        boxes: (N, 4) detector boxes.
        points: (N, T, K, 2) each teacher's points.
        teachers: the T teacher names (the JSONL file stems).
        photos: how many photos the files list; ``no_face``: how many of them have no face.
    """

    images: list[str]
    face_index: np.ndarray
    boxes: np.ndarray
    points: np.ndarray
    teachers: list[str]
    photos: int
    no_face: int


def is_pseudo_folder(path: str | Path) -> bool:
    """True for a folder of per-teacher JSONL files (and not a ``kdmark data label`` output, whose records are
    ``labels*.jsonl`` beside ``.pts`` files)."""
    path = Path(path)
    return path.is_dir() and any(path.glob("*.jsonl")) and not any(path.glob("labels*.jsonl"))


def _read_lines(f: Path) -> list[dict]:
    recs = []
    try:
        text = f.read_text()
    except OSError as err:
        raise DatasetError(f, f"cannot read ({err.strerror or err})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise DatasetError(f"{f}:{n}", "not a JSON line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or not isinstance(
                rec.get("faces", []), list):
            raise DatasetError(f"{f}:{n}", "expected {\"image\": ..., \"faces\": [...]}")
        recs.append(rec)
    return recs


def read_pseudo(folder: str | Path, teachers: tuple[str, ...] | list[str] = (), num_points: int = 68) -> PseudoLabels:
    """Read the teachers' files of ``folder`` (``TEACHER.jsonl``; ``teachers`` picks some, default all) and check
    they line up: same photos on the same lines, same number of faces and identical boxes.

    Raises:
        DatasetError: a missing or malformed file, files that do not line up, a face with the wrong point count.
    """
    folder = Path(folder)
    files = [folder / f"{t}.jsonl" for t in teachers] if teachers else sorted(folder.glob("*.jsonl"))
    if not files:
        raise DatasetError(folder, "no TEACHER.jsonl files in this pseudo-label folder")
    for f in files:
        if not f.is_file():
            have = ", ".join(p.stem for p in sorted(folder.glob("*.jsonl"))) or "none"
            raise DatasetError(f, f"no such teacher file (teachers here: {have})")
    names = [f.stem for f in files]
    per_teacher = [_read_lines(f) for f in files]
    n_lines = {len(r) for r in per_teacher}
    if len(n_lines) != 1:
        raise DatasetError(folder, "the teachers' files do not line up: "
                           + ", ".join(f"{n} {len(r)} lines" for n, r in zip(names, per_teacher)))
    images, index, boxes, points, no_face = [], [], [], [], 0
    for line, recs in enumerate(zip(*per_teacher), 1):
        image = recs[0]["image"]
        faces = [r.get("faces", []) for r in recs]
        if any(r["image"] != image for r in recs) or len({len(f) for f in faces}) != 1:
            raise DatasetError(f"{files[0]}:{line}", f"the teachers' files do not line up at {image}")
        if not faces[0]:
            no_face += 1
        for i in range(len(faces[0])):
            pts = []
            for f, name in zip(faces, names):
                p = np.asarray(f[i].get("points"), dtype=np.float64)
                if p.shape != (num_points, 2) or not np.isfinite(p).all():
                    raise DatasetError(f"{folder / (name + '.jsonl')}:{line}",
                                       f"face {i} of {image}: expected {num_points} finite (x, y) points, got "
                                       f"shape {p.shape}")
                pts.append(p)
            images.append(image)
            index.append(i)
            boxes.append(np.asarray(faces[0][i].get("box", [np.nan] * 4), dtype=np.float64))
            points.append(np.stack(pts))
    k = num_points
    return PseudoLabels(images, np.asarray(index, int), np.asarray(boxes).reshape(-1, 4),
                        np.asarray(points).reshape(-1, len(names), k, 2), names, len(per_teacher[0]), no_face)


def interocular(points: np.ndarray) -> np.ndarray:
    """(...,) outer-eye-corner distance of 68-point shapes (..., 68, 2) (iBUG points 37 and 46)."""
    return np.linalg.norm(points[..., 36, :] - points[..., 45, :], axis=-1)


def fuse(points: np.ndarray, weights: np.ndarray, cauchy: float | None = 0.05, tau: float = 0.06,
         rounds: int = 3, normaliser: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fuse teachers per landmark (module docstring): ``points`` (N, T, K, 2), ``weights`` (T, K) per point or
    (T,) per teacher -> (fused (N, K, 2), confidence (N, K) in (0, 1]). ``cauchy`` and ``tau`` are in units of
    ``normaliser`` (N,) (default: the inter-ocular distance of the fused points); ``cauchy=None`` is the plain
    weighted mean. One teacher: confidence 1 (nothing to compare)."""
    points = np.asarray(points, np.float64)
    w0 = np.asarray(weights, np.float64)
    w0 = (w0[:, None] if w0.ndim == 1 else w0)[None]  # (1, T, K or 1)
    w = np.broadcast_to(w0, points.shape[:3])
    if cauchy is None:
        est = (w[..., None] * points).sum(1) / w.sum(1)[..., None]
    else:
        est = np.median(points, axis=1)  # (N, K, 2): a robust start
    norm = np.maximum(interocular(est) if normaliser is None else np.asarray(normaliser, np.float64), 1e-9)
    norm = norm.reshape(-1, 1, 1)
    for _ in range(rounds if cauchy is not None else 0):
        r = np.linalg.norm(points - est[:, None], axis=-1) / norm  # (N, T, K)
        w = w0 / (1.0 + (r / cauchy) ** 2)
        est = (w[..., None] * points).sum(1) / w.sum(1)[..., None]
    if points.shape[1] == 1:
        return est, np.ones(est.shape[:2])
    r = np.linalg.norm(points - est[:, None], axis=-1) / norm
    spread = np.sqrt((w * r**2).sum(1) / w.sum(1))  # (N, K)
    return est, np.exp(-0.5 * (spread / tau) ** 2)


def fit_weights(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-point, per-teacher weights fitted on labelled faces: ``points`` (N, T, K, 2) the teachers' predictions,
    ``truth`` (N, K, 2) -> (T, K) inverse mean squared error (inter-ocular units), normalised to sum 1 per point."""
    io = np.maximum(interocular(truth), 1e-6)[:, None, None]
    err = (np.linalg.norm(points - truth[:, None], axis=-1) / io) ** 2  # (N, T, K)
    w = 1.0 / np.maximum(err.mean(0), 1e-8)
    return w / w.sum(0, keepdims=True)


def teacher_weights(teachers: list[str], fusion: str | dict) -> np.ndarray:
    """(T, K) weights for ``teachers``: ``fusion`` "hand" (:data:`HAND_WEIGHTS`; unknown teachers weigh like the
    mean), "equal", a JSON file ``{"weights": {teacher: [K numbers]}}`` (what ``fit_weights`` gives, saved by
    ``scripts/fit_fusion.py``), or such a dict."""
    if fusion == "equal":
        return np.ones((len(teachers), 68))
    if fusion == "hand":
        table = HAND_WEIGHTS
    else:
        data = fusion
        if isinstance(fusion, str):
            try:
                data = json.loads(Path(fusion).read_text())
            except (OSError, ValueError) as err:
                raise DatasetError(fusion, f"not a readable fusion-weights JSON file ({err})") from None
        table = {k: np.asarray(v, np.float64) for k, v in data.get("weights", {}).items()}
    mean = np.mean([np.asarray(v) for v in table.values()], axis=0)
    return np.stack([np.asarray(table.get(t, mean), np.float64) for t in teachers])


def pseudo_samples(folder: str | Path, images: str | Path, teachers: tuple[str, ...] = (),
                   fusion: str = "hand", cauchy: float = 0.05, tau: float = 0.06,
                   min_confidence: float = 0.3, weight: float = 1.0) -> tuple[list[Sample], dict]:
    """Training faces from a pseudo-label folder: fused points, per-point weights ``weight * confidence``; faces
    whose mean confidence is under ``min_confidence`` (the teachers disagree: often not a face) are left out.
    Returns (samples, counts) where counts has photos, faces, kept, dropped."""
    pl = read_pseudo(folder, teachers)
    images = Path(images)
    if not images.is_dir():
        raise DatasetError(images, "the photos' folder of this pseudo-label folder does not exist (set images:)")
    fused, conf = fuse(pl.points, teacher_weights(pl.teachers, fusion), cauchy, tau)
    keep = conf.mean(1) >= min_confidence
    samples = []
    for i in np.flatnonzero(keep):
        image = pl.images[i]
        samples.append(Sample(image=images / image, points=fused[i], visible=np.ones(len(fused[i]), bool),
                              box=pl.boxes[i], subsets=("extra", "pseudo", image.split("/", 1)[0]),
                              source=f"{Path(folder) / pl.teachers[0]}.jsonl:{image}#{pl.face_index[i]}",
                              key=f"{image}#{pl.face_index[i]}", weights=weight * conf[i]))
    counts = {"photos": pl.photos, "faces": len(pl.images), "kept": int(keep.sum()),
              "dropped": int((~keep).sum()), "teachers": pl.teachers,
              "mean_confidence": float(conf[keep].mean()) if keep.any() else 0.0}
    return samples, counts
