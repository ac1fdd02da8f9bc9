"""``kdmark bench``: size, cost, latency and (with data) accuracy of a model on PyTorch eager, ONNX Runtime FP32
and INT8, optionally against dlib's 68-point shape predictor on the same faces with the same boxes.

Latency is measured here, in this process, one backend after another with the same input, so ratios between them
are meaningful on a noisy machine even when absolute milliseconds drift.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kdmark.config import BenchConfig
from kdmark.data.crops import sample_crops
from kdmark.data.records import DatasetError, Sample
from kdmark.deploy.export import export_onnx, onnx_session, quantize_int8
from kdmark.model import load_model, model_kind

PEERS = ("dlib", "mediapipe")  # the models `bench --vs` runs beside kdmark's on the same faces

__all__ = ["bench", "BenchReport", "latency_ms", "count_macs", "model_cost"]


@dataclass
class BenchReport:
    params: int
    macs: int
    sizes: dict[str, int]  # file sizes in bytes: checkpoint, onnx_fp32, onnx_int8
    latency: dict[str, dict[str, float]]  # "<backend> <threads>t" -> {"p50": ms, "p90": ms}
    accuracy: dict[str, dict] = field(default_factory=dict)  # backend -> metrics dict (+ "faces")
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"params {self.params / 1e6:.3f} M   MACs {self.macs / 1e6:.1f} M   "
               + "   ".join(f"{k} {v / 1e6:.2f} MB" for k, v in self.sizes.items())]
        ref = next(iter(self.latency.values()), None)
        for name, lat in self.latency.items():
            ratio = f"  x{ref['p50'] / lat['p50']:.2f} vs {next(iter(self.latency))}" if ref else ""
            out.append(f"latency {name:<22} p50 {lat['p50']:7.2f} ms   p90 {lat['p90']:7.2f} ms{ratio}")
        for name, m in self.accuracy.items():
            out.append(f"accuracy {name:<12} NME {m['nme'] * 100:.3f}%  FR@{m['threshold']:g} {m['fr'] * 100:.2f}%"
                       f"  AUC@{m['threshold']:g} {m['auc']:.4f}  ({m['faces']} faces, {m['normaliser']})")
        return out + [f"note: {n}" for n in self.notes]

    def to_dict(self) -> dict:
        """The figures as JSON-ready values (``kdmark bench --json``)."""
        return {"params": self.params, "macs": self.macs, "sizes": self.sizes, "latency_ms": self.latency,
                "accuracy": self.accuracy, "notes": self.notes}


def latency_ms(fn, x, runs: int = 30, warmup: int = 5) -> dict[str, float]:
    """p50/p90 wall-clock milliseconds of ``fn(x)`` over ``runs`` calls after ``warmup``."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}


def count_macs(model: torch.nn.Module, size: int) -> tuple[int, int]:
    """(MACs, parameters) of one forward pass at batch 1, counted by torch-pruning's op counter."""
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, torch.rand(1, 3, size, size))
    return int(macs), int(params)


def model_cost(model: torch.nn.Module, size: int, threads: tuple[int, ...] = (1,), runs: int = 20) -> dict:
    """Parameters, MACs and p50 CPU latency at batch 1 (``latency_ms_<n>t`` for each thread count) of a model."""
    macs, params = count_macs(model.eval(), size)
    x = torch.rand(1, 3, size, size)
    before = torch.get_num_threads()
    latency = {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            latency[f"latency_ms_{n}t"] = latency_ms(lambda t: model.predict(t), x, runs)["p50"]
    finally:
        torch.set_num_threads(before)
    return {"params": params, "macs": macs, **latency}


def _onnx_params(path: Path) -> int:
    import onnx

    return int(sum(np.prod(t.dims) for t in onnx.load(str(path)).graph.initializer))


def _faces(data, split, scheme, heldout, max_faces, vs_dlib, detector, notes):
    """(dataset, faces to score, their boxes, dlib's raw detections for them): ground-truth landmark boxes, or with
    peers the faces the detectors find (see ``bench``'s notes)."""
    from kdmark.data import read_dataset

    ds, samples, boxes, dlib_dets = None, [], [], []
    if data is None:
        return ds, samples, boxes, dlib_dets
    ds = read_dataset(data, split=split, scheme=scheme)
    samples = ds.samples
    if heldout:  # the faces kdmark's fixed split held out for validation (what training never saw)
        from kdmark.data.dataset import split_by_photo

        samples = split_by_photo(ds, heldout)[1]
    samples = samples[:max_faces]
    if vs_dlib:
        dlib = _matched(samples, "dlib")  # dlib's predictor is only accurate from its own detector's box
        found = dlib if detector == "dlib" else _matched(samples, detector)
        idx = [i for i in dlib if i in found]
        dlib_dets, boxes = [dlib[i].raw for i in idx], [found[i].box for i in idx]
        if detector == "dlib":
            notes.append(f"dlib's HOG detector found {len(idx)} of {len(samples)} faces; every model is scored "
                         "on those faces, each given the same detector box")
        else:  # kdmark (and MediaPipe) from the detector's boxes; dlib's predictor from its own detections
            notes.append(f"{detector} found {len(found)} of {len(samples)} faces and dlib's HOG detector "
                         f"{len(dlib)}; every model is scored on the {len(idx)} both found, kdmark's and "
                         f"MediaPipe's from the {detector} box, dlib's predictor from its own detector's box")
        samples = [samples[i] for i in idx]
    else:
        boxes = [s.landmark_box() for s in samples]
        notes.append("boxes: the tight ground-truth landmark box of each face (kdmark's training convention)")
    return ds, samples, boxes, dlib_dets


def _matched(samples: list[Sample], detector: str) -> dict[int, object]:
    """Sample index -> the detection (kdmark.deploy.detectors.Detection) of ``detector`` that overlaps the annotated
    face most (landmark boxes, IoU > 0.3), for the faces it finds."""
    from kdmark.data.images import load_image
    from kdmark.deploy.detectors import best_match, make_detector

    detect, found = make_detector(detector), {}
    for i, s in enumerate(samples):
        dets = detect(load_image(s.image))
        k = best_match([d.box for d in dets], s.landmark_box())
        if k is not None:
            found[i] = dets[k]
    return found


def bench(model_path: str | Path, data: str | Path | None = None, split: str | None = None,
          runs: int = BenchConfig.runs, max_faces: int = BenchConfig.max_faces, int8: bool = BenchConfig.int8,
          workdir: str | Path | None = None, heldout: float | None = None, vs: tuple[str, ...] = (),
          detector: str = BenchConfig.detector, tta: str = BenchConfig.tta) -> BenchReport:
    """Measure a checkpoint (see :func:`_bench`); the exported files go to ``workdir``, or to a temporary folder
    that is removed afterwards. ``tta="flip"``: accuracy and latency with the mirrored face averaged in."""
    import shutil

    work = Path(workdir or tempfile.mkdtemp(prefix="kdmark-bench-"))
    try:
        return _bench(model_path, data, split, runs, max_faces, int8, work, heldout, vs, detector, tta)
    finally:
        if workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench(model_path: str | Path, data: str | Path | None, split: str | None, runs: int, max_faces: int,
           int8: bool, work: Path, heldout: float | None, vs: tuple[str, ...], detector: str,
           tta: str) -> BenchReport:
    """Measure a checkpoint: params, MACs, sizes, latency p50/p90 (batch 1, one thread and all threads) for
    PyTorch eager, ONNX Runtime FP32 and INT8; accuracy per backend on ``data`` (or, with ``heldout``, on the
    faces kdmark's fixed validation split holds out of it); and dlib alongside."""
    from kdmark.data.transforms import apply_affine
    from kdmark.metrics import score_samples
    from kdmark.schemes import get_scheme, with_tta

    vs = tuple(dict.fromkeys(vs))
    unknown = [p for p in vs if p not in PEERS]
    if unknown:
        raise DatasetError("--vs", f"{unknown[0]!r} is not a peer kdmark runs; choose from {', '.join(PEERS)}")
    if vs and data is None:  # said before minutes of latency runs, not after
        raise DatasetError("--vs", f"{','.join(vs)} needs --data DATASET: the peers are scored on the same faces")
    vs_dlib = bool(vs)  # any peer: every model is scored on the faces dlib's detector finds, with its boxes
    onnx_only = model_kind(model_path) == "onnx"  # an exported model: its own ONNX file, no PyTorch
    loaded = load_model(model_path, backend="onnx" if onnx_only else "torch")  # a zoo name: its checkpoint
    card, model_path = loaded.card, loaded.path
    size, scheme = card.input_size, get_scheme(card.scheme)
    if onnx_only:
        fp32, (macs, params) = Path(model_path), (0, _onnx_params(Path(model_path)))
        sizes = {"onnx_fp32": fp32.stat().st_size}
    else:
        model = loaded.net
        fp32 = export_onnx(model, work / "model.onnx").path
        macs, params = count_macs(model, size)
        sizes = {"checkpoint": Path(model_path).stat().st_size, "onnx_fp32": fp32.stat().st_size}
    report = BenchReport(params, macs, sizes, {})
    if onnx_only:
        report.notes.append("an exported ONNX model: PyTorch latency and MACs need its checkpoint")
    ds, samples, boxes, dlib_dets = _faces(data, split, scheme, heldout, max_faces, vs_dlib, detector, report.notes)
    notes = report.notes
    crops, back = sample_crops(samples, card, boxes) if samples else (np.random.rand(8, 3, size, size), [])
    int8_path = None
    if int8:
        int8_path = quantize_int8(fp32, work / "model.int8.onnx", crops[:64].astype(np.float32))
        report.sizes["onnx_int8"] = int8_path.stat().st_size
        if not samples:
            notes.append("INT8 calibrated on random inputs (give --data for real faces): its accuracy is unknown")
    x1 = torch.from_numpy(crops[:1].astype(np.float32))
    with_flip = "" if tta == "none" else f"+{tta}"  # every figure's name says when it was measured with TTA
    sessions = {"onnx-fp32": fp32} | ({"onnx-int8": int8_path} if int8_path else {})
    all_threads = os.cpu_count() or 1
    for threads in sorted({1, all_threads}):
        torch.set_num_threads(threads)
        if not onnx_only:
            run = with_tta(model.predict, tta, scheme)
            report.latency[f"torch-eager{with_flip} {threads}t"] = latency_ms(run, x1, runs)
        for name, path in sessions.items():
            run = with_tta(_session_run(onnx_session(path, threads)), tta, scheme)
            report.latency[f"{name}{with_flip} {threads}t"] = latency_ms(run, x1.numpy(), runs)
    torch.set_num_threads(all_threads)
    if samples:
        batch = crops.astype(np.float32)
        preds = {} if onnx_only else {f"torch{with_flip}": with_tta(model.predict, tta, scheme)(
            torch.from_numpy(batch))[0].numpy()}
        for name, path in sessions.items():
            preds[f"{name}{with_flip}"] = with_tta(_session_run(onnx_session(path)), tta, scheme)(batch)[0]
        for name, pts in preds.items():
            img_pts = np.stack([apply_affine(p.astype(np.float64), m) for p, m in zip(pts, back)])
            m, _, _ = score_samples(samples, img_pts, scheme, ds.normaliser)
            report.accuracy[name] = m.to_dict() | {"faces": len(samples)}
    if "dlib" in vs:
        _bench_dlib(report, samples, dlib_dets, scheme, ds.normaliser if samples else None, runs)
    if "mediapipe" in vs:
        _bench_mediapipe(report, samples, boxes, scheme, ds.normaliser if samples else None, runs)
    return report


def _session_run(session):
    """An onnxruntime session as a run function: crops -> (points, scores)."""
    return lambda x: tuple(session.run(["points", "scores"], {"image": x}))


def _bench_mediapipe(report: BenchReport, samples: list[Sample], boxes: list[np.ndarray], scheme, normaliser,
                     runs: int) -> None:
    """MediaPipe's Face Mesh (two passes from the same box, its 468 points mapped to the scheme as the teachers
    issue fitted them) on the same faces."""
    from kdmark.data.images import load_image
    from kdmark.metrics import score_samples
    from kdmark.teachers.landmarkers import MediaPipeLandmarker, TeacherError, asset

    try:
        mp = MediaPipeLandmarker()
    except TeacherError as err:
        report.notes.append(f"--vs mediapipe skipped: {err}")
        return
    if mp.num_points != scheme.num_points:
        report.notes.append(f"--vs mediapipe skipped: its map gives {mp.num_points} points, this model "
                            f"{scheme.num_points}")
        return
    report.sizes["mediapipe_mesh"] = asset("mediapipe_face_landmark.tflite").stat().st_size
    if not samples:
        report.notes.append("--vs mediapipe needs --data: nothing to compare on")
        return
    images = [load_image(s.image) for s in samples]
    report.latency["mediapipe-mesh 1t"] = latency_ms(lambda i: mp(images[i], boxes[i]), 0, runs)
    pts = np.stack([mp(img, b)[0] for img, b in zip(images, boxes)])
    m, _, _ = score_samples(samples, pts, scheme, normaliser)
    report.accuracy["mediapipe-mesh"] = m.to_dict() | {"faces": len(samples)}
    report.notes.append("mediapipe-mesh: two Face Mesh passes per face (192 px), 468 points mapped to 68 by "
                        "kdmark's fitted map (mesh_to_300w.npz)")


def _bench_dlib(report: BenchReport, samples: list[Sample], dets: list[np.ndarray], scheme, normaliser,
                runs: int) -> None:
    from kdmark.data.images import load_image
    from kdmark.metrics import score_samples

    if scheme.num_points != 68:
        report.notes.append(f"--vs dlib skipped: dlib predicts 68 points, this model {scheme.num_points}")
        return
    from kdmark.teachers.landmarkers import DlibLandmarker, TeacherError, dlib_model_file

    try:
        predictor = DlibLandmarker(detect=False)
    except TeacherError:
        report.notes.append("--vs dlib skipped: pip install 'kdmark[dlib]' (dlib-bin, face_recognition_models)")
        return
    report.sizes["dlib_68"] = dlib_model_file().stat().st_size
    if not samples:
        report.notes.append("--vs dlib needs --data: nothing to compare on")
        return
    images = [load_image(s.image) for s in samples]
    report.latency["dlib-68 1t"] = latency_ms(lambda i: predictor.points_from_detection(images[i], dets[i]), 0, runs)
    pts = np.stack([predictor.points_from_detection(img, d) for img, d in zip(images, dets)])
    m, _, _ = score_samples(samples, pts, scheme, normaliser)
    report.accuracy["dlib-68"] = m.to_dict() | {"faces": len(samples)}

