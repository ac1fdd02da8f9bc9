"""``kdmark data label``: pseudo-label photos nobody annotated with several teachers, in the 300-W layout.

For every photo: find the faces (BlazeFace, or dlib's HOG detector), ask each teacher for the landmarks, fuse their
answers (weighted by each teacher's measured accuracy), and keep the faces whose teachers agree. The output folder reads
like any 300-W-style folder (``photo.jpg`` beside ``photo_1.pts``, ``photo_2.pts``, ...), so every kdmark reader,
``kdmark data show`` and training load it; ``labels.csv`` tables boxes, confidences and per-teacher disagreement,
and ``labels*.jsonl`` keep every face's per-point confidence (``kdmark.data.labels``; training weights each
point by it).

Resumable: each finished photo is one line of ``labels.r<rank>.jsonl``; a second run skips the photos already
there. Sharded like training: process ``rank`` of ``world`` takes every ``world``-th photo.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdmark.data.labels import read_label_records
from kdmark.data.readers._common import IMAGE_SUFFIXES, is_image_file
from kdmark.errors import DatasetError, OutputError
from kdmark.io import lock_folder, refuse_overwriting_inputs, unlock_folder
from kdmark.teachers import TeacherError, fuse, make_landmarker, teacher_accuracy, weights_from_accuracy

__all__ = ["label_images", "LabelReport", "list_images", "detector_faces", "IMAGE_SUFFIXES"]


@dataclass
class LabelReport:
    images: int = 0  # photos in this shard
    done_before: int = 0  # skipped: labelled by an earlier run
    faces: int = 0  # faces found
    kept: int = 0
    low_confidence: int = 0  # faces left out: their teachers disagree
    no_face: int = 0  # photos without a face the detector could find
    bad: list[str] = field(default_factory=list)  # unreadable photos, one line each

    def summary(self) -> str:
        return (f"{self.images} photos ({self.done_before} labelled before): {self.faces} faces found, "
                f"{self.kept} kept, {self.low_confidence} left out for low confidence, {self.no_face} photos "
                f"without a face, {len(self.bad)} unreadable")


def list_images(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(image file, path relative to the output folder) for files and folders (searched recursively; any case of
    the suffixes above). A folder's images keep their sub-folders under the folder's own name."""
    found: list[tuple[Path, Path]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if is_image_file(p) and p.is_file())
            found += [(p, Path(item.resolve().name) / p.relative_to(item)) for p in files]
        elif item.is_file():
            found.append((item, Path(item.name)))
        else:
            raise DatasetError(item, "no such file or folder")
    if not found:
        raise DatasetError(", ".join(map(str, inputs)), "no images found")
    return _one_source_each(found)


def _one_source_each(found: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Each output name from one photo: the same photo given twice is labelled once; two photos that would share a
    name (``A/face.jpg B/face.jpg``, or two folders both called ``A``) are refused, since the link would come from
    one and the points from the other."""
    first: dict[str, Path] = {}
    kept = []
    for src, rel in found:
        key = rel.as_posix()
        if key in first:
            if os.path.realpath(first[key]) == os.path.realpath(src):
                continue
            raise DatasetError(src, f"would be labelled as {key}, the name {first[key]} already takes in the "
                                    "output; pass their folders, or rename one")
        first[key] = src
        kept.append((src, rel))
    return kept


def _refuse_inputs_in_out(inputs: Sequence[str | Path], out: Path) -> None:
    """Labels are written beside the photos' links in ``out``: an input inside ``out`` would have its own
    ``.pts`` files replaced, and an ``out`` inside an input folder would be read back as photos by the next run."""
    refuse_overwriting_inputs({"--out": out}, [], [p for p in inputs if Path(p).is_dir()])
    where = Path(os.path.realpath(out))
    for item in map(Path, inputs):
        real = Path(os.path.realpath(item))
        if real == where or where in real.parents:
            raise OutputError(f"{out}: --out holds the input {item}: its labels would be written among (and over) "
                              "the photos' own files; choose an output folder outside the inputs")


def detector_faces(detector=None) -> Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray | None]]]:
    """A function giving (face box in kdmark's convention, raw dlib detection or None) for each face that
    ``detector`` (a name or a kdmark.deploy.detectors.FaceDetector; default BlazeFace) finds: the dlib teacher is handed
    its own detector's box when there is one, and finds it otherwise. dlib upsamples only photos under 640 px,
    as labelling thousands of photos always has."""
    from kdmark.deploy.detectors import DlibHog, make_detector

    detect = DlibHog(upsample=None) if detector == "dlib" else make_detector(detector)
    return lambda image: [(d.box, d.raw if d.source == "dlib" else None) for d in detect(image)]


def _done(out: Path) -> dict[str, str | None]:
    """Photos an earlier run finished, by output name, with the photo each came from (None in records written
    before kdmark kept it). A line cut short by a kill does not count: that photo is labelled again."""
    return {r["image"]: r.get("source") for r in read_label_records(out) if "image" in r}


def _refuse_other_sources(images: list[tuple[Path, Path]], done: dict[str, str | None], out: Path) -> None:
    """A resumed run skips the names already labelled: refuse when a name now comes from another photo, whose
    faces would silently be the earlier photo's."""
    for src, rel in images:
        before = done.get(rel.as_posix())
        if before is not None and before != os.path.realpath(src):
            raise DatasetError(src, f"{out} already holds labels of {rel.as_posix()} from {before}; label this "
                                    "photo into another --out folder")


def _place_image(src: Path, dst: Path, copy: bool) -> None:
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    else:
        os.symlink(src.resolve(), dst)


def _write_table(out: Path, teachers: list[str]) -> Path:
    from kdmark.io import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["image", "face", "x0", "y0", "x1", "y1", "kept", "confidence_mean", "confidence_min"]
               + [f"disagreement_{t}" for t in teachers])
    for rec in sorted(read_label_records(out), key=lambda r: r["image"]):
        for i, f in enumerate(rec.get("faces", []), 1):
            conf = np.asarray(f["confidence"])
            w.writerow([rec["image"], i, *[round(v, 1) for v in f["box"]], int(bool(f.get("pts"))),
                        round(float(conf.mean()), 4), round(float(conf.min()), 4),
                        *[round(v, 4) for v in f["disagreement"]]])
    return atomic_write_text(out / "labels.csv", buf.getvalue())


def _face_size(normaliser, points: np.ndarray) -> float:
    """The scheme's NME normaliser of a face (e.g. inter-ocular); the landmark box's sqrt(area) for schemes whose
    normaliser needs a dataset box."""
    from kdmark.schemes import SchemeError

    try:
        return float(normaliser.distance(points[None])[0])
    except SchemeError:
        w, h = points.max(axis=0) - points.min(axis=0)
        return float(np.sqrt(max(w * h, 1e-9)))


def _shard(rank: int | None, world: int | None) -> tuple[int, int]:
    """This process's (rank, world): given, or from the launcher's environment (torchrun, SLURM), else (0, 1)."""
    def env(names: tuple[str, str], default: int) -> int:
        for name in names:
            if name in os.environ:
                try:
                    return int(os.environ[name])
                except ValueError:
                    raise TeacherError(f"environment {name}={os.environ[name]!r}: expected a whole number") from None
        return default

    rank = env(("RANK", "SLURM_PROCID"), 0) if rank is None else rank
    world = env(("WORLD_SIZE", "SLURM_NTASKS"), 1) if world is None else world
    if world < 1:
        raise TeacherError(f"--shard {rank} of {world}: the world size must be at least 1")
    if not 0 <= rank < world:
        raise TeacherError(f"--shard {rank} of {world}: the rank must be in 0..{world - 1}")
    return rank, world


def _end_cut_line(log_path: Path) -> None:
    """A line cut short by a kill: end it, so the next record starts clean."""
    if log_path.exists() and log_path.stat().st_size and not log_path.read_bytes().endswith(b"\n"):
        with open(log_path, "ab") as f:
            f.write(b"\n")


def fuse_face(image: np.ndarray, box: np.ndarray, det, models, weights, normaliser):
    """Every teacher's points for one face (``det``: dlib's own detection, or None), fused by ``weights``."""
    pts = np.stack([m(image, box, detection=det)[0] for m in models])
    return fuse(pts, weights, _face_size(normaliser, pts.mean(axis=0)))


def label_images(inputs: Sequence[str | Path], teachers: Sequence, out: str | Path,
                 weights: Sequence[float] | None = None, min_confidence: float = 0.5, copy: bool = False,
                 rank: int | None = None, world: int | None = None, progress: bool = True,
                 detector=None, scheme: str | None = None) -> LabelReport:
    """Label the faces in ``inputs`` (files or folders) with ``teachers`` ("dlib", "mediapipe", checkpoint paths,
    or landmarker objects) into ``out``. ``weights``: one per teacher (default: inverse squared measured NME).
    Faces whose mean point confidence is below ``min_confidence`` are left out and counted. Images are linked into
    ``out`` (``copy=True``: copied). ``detector``: "blazeface" (default), "dlib", a
    kdmark.deploy.detectors.FaceDetector, or a function image -> [(box, dlib detection or None), ...]. Every teacher
    must give the points of ``scheme`` (default: the first teacher's). One process labels a shard of ``out`` at a
    time (a lock file per shard); ``out`` may not hold an input nor lie inside an input folder."""
    from kdmark.schemes import get_scheme

    out = Path(out)
    names = [t if isinstance(t, str) else getattr(t, "name", f"teacher{i}") for i, t in enumerate(teachers)]
    if weights is None:
        weights = weights_from_accuracy([teacher_accuracy(t) for t in names])
    weights = np.asarray(weights, np.float64)
    if len(weights) != len(teachers) or not (np.isfinite(weights).all() and (weights > 0).all()):
        raise TeacherError(f"one positive weight per teacher is needed ({len(teachers)} teachers, weights {weights})")
    rank, world = _shard(rank, world)
    images = list_images(inputs)[rank::world]
    models = [make_landmarker(t) if isinstance(t, str) else t for t in teachers]
    scheme = scheme or getattr(models[0], "scheme", "300w")  # the labels' scheme: the teachers'
    for name, m in zip(names, models):
        if m.num_points != get_scheme(scheme).num_points:
            raise TeacherError(f"teacher {name} gives {m.num_points} points; the labels are {scheme}")
    normaliser = get_scheme(scheme).normaliser()
    if detector is None or isinstance(detector, str) or hasattr(detector, "raw"):  # a name or a FaceDetector
        detector = detector_faces(detector)
    _refuse_inputs_in_out(inputs, out)
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out, f".lock.r{rank}", busy=f"is labelling shard {rank} of {world} into this folder")
    try:
        return _label_shard(images, models, names, weights, normaliser, detector, min_confidence, copy, out,
                            rank, world, progress)
    finally:
        unlock_folder(out, f".lock.r{rank}")


def _label_shard(images, models, names, weights, normaliser, detector, min_confidence, copy, out, rank, world,
                 progress) -> LabelReport:
    from tqdm.auto import tqdm

    from kdmark.data.images import load_image
    from kdmark.data.pts import write_pts

    done = _done(out)
    _refuse_other_sources(images, done, out)
    report = LabelReport(images=len(images))
    log_path = out / f"labels.r{rank}.jsonl"
    _end_cut_line(log_path)
    with open(log_path, "a") as log:
        bar = tqdm(images, desc=f"labelling (shard {rank + 1}/{world})", unit="photo",
                   disable=None if progress else True)
        for src, rel in bar:
            key = rel.as_posix()
            if key in done:
                report.done_before += 1
                continue
            try:
                image = load_image(src)
            except DatasetError as err:
                report.bad.append(str(err))
                print(f"kdmark: skipped {err}")
                log.write(json.dumps({"image": key, "source": os.path.realpath(src), "status": "bad",
                                      "problem": err.problem, "faces": []}) + "\n")
                continue
            faces = []
            found = detector(image)
            for i, (box, det) in enumerate(found, 1):
                fused = fuse_face(image, box, det, models, weights, normaliser)
                face = {"box": [float(v) for v in box], "points": np.round(fused.points, 3).tolist(),
                        "confidence": np.round(fused.confidence, 4).tolist(),
                        "disagreement": np.round(fused.disagreement, 5).tolist(), "pts": None}
                report.faces += 1
                if fused.confidence.mean() >= min_confidence:
                    pts_rel = rel.with_name(f"{rel.stem}_{i}.pts")
                    write_pts(out / pts_rel, fused.points)
                    face["pts"] = pts_rel.as_posix()
                    report.kept += 1
                else:
                    report.low_confidence += 1
                faces.append(face)
            if any(f["pts"] for f in faces):
                _place_image(src, out / rel, copy)
            if not found:
                report.no_face += 1
            log.write(json.dumps({"image": key, "source": os.path.realpath(src),
                                  "status": "ok" if found else "no_face", "faces": faces}) + "\n")
            log.flush()
            bar.set_postfix(kept=report.kept)
        os.fsync(log.fileno())
    _write_table(out, names)
    return report
