"""Batch-1 latency per face of a zoo student with ONNX Runtime FP32 and INT8 variants, 1 and 2 threads, at several
input sizes, beside dlib's shape predictor, in one process; and what INT8 costs in NME.

    python scripts/bench_int8.py kdmark-68-s --data ../shared/data/300w [--sizes 96,128,160] [--runs 200]

INT8 variants: QDQ or QOperator format, per-channel or per-tensor weights, convolutions only or the whole network
(adds, activations, resizes between convolutions too), and onnxruntime's graph optimisation level. Sizes other than
the model's own are the same weights exported at another input size: their latency is real, their accuracy is not
measured. Each latency is the median of ``--runs`` calls, the variants taking turns so machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

VARIANTS = {  # name -> quantize_int8 keyword arguments
    "QDQ, per-channel, convs (kdmark's export before)": {"fmt": "qdq", "per_channel": True, "ops": "conv"},
    "QDQ, per-channel, whole network (now)": {"fmt": "qdq", "per_channel": True, "ops": "network"},
    "QDQ, per-tensor, whole network": {"fmt": "qdq", "per_channel": False, "ops": "network"},
    "QOperator, per-channel, convs": {"fmt": "qoperator", "per_channel": True, "ops": "conv"},
    "QOperator, per-channel, whole network": {"fmt": "qoperator", "per_channel": True, "ops": "network"},
}


def session(path: Path, threads: int, level: str = "all"):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[level]
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="kdmark-68-s")
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--sizes", default="96,128,160", help="multiples of 32 (the heatmap head's FPN)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--faces", type=int, default=128, help="calibration faces (and NME faces)")
    args = ap.parse_args()

    from kdmark import zoo
    from kdmark.checkpoint import load_checkpoint
    from kdmark.data import read_dataset
    from kdmark.data.crops import sample_crops
    from kdmark.data.dataset import split_by_photo
    from kdmark.data.images import load_image
    from kdmark.data.transforms import apply_affine
    from kdmark.deploy.detectors import detector_box
    from kdmark.deploy.export import export_onnx, quantize_int8
    from kdmark.metrics import score_samples
    from kdmark.schemes import get_scheme
    from kdmark.teachers.landmarkers import DlibLandmarker

    net, _ = load_checkpoint(zoo.resolve(args.model))
    own = net.card["input_size"]
    train, held = split_by_photo(read_dataset(args.data, split="train"), 0.1)
    calib = train[: args.faces]
    scheme = get_scheme("300w")
    dlib = DlibLandmarker(detect=False)
    face = load_image(held[0].image)
    det = detector_box(held[0].landmark_box(), "dlib")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            net.card["input_size"] = size
            fp32 = export_onnx(net, Path(tmp) / f"fp32_{size}.onnx").path
            card = dict(net.card)
            images, _ = sample_crops(calib, card, [s.landmark_box() for s in calib])
            held_x, back = sample_crops(held, card, [s.landmark_box() for s in held])
            files = {"FP32": fp32}
            for name, kw in VARIANTS.items():
                try:
                    files[f"INT8 {name}"] = quantize_int8(fp32, Path(tmp) / f"{name}_{size}.onnx".replace(" ", "_")
                                                          .replace(",", ""), images, **kw)
                except Exception as err:  # noqa: BLE001 - a variant onnxruntime cannot build is a result too
                    print(f"{size}px {name}: quantisation failed ({str(err).splitlines()[0][:100]})")
            sessions = {}
            for name, path in files.items():
                for threads in (1, 2):
                    for level in (("all", "basic") if threads == 1 else ("all",)):
                        sessions[(name, threads, level)] = session(path, threads, level)
            x = held_x[:1].astype(np.float32)
            times = {k: [] for k in sessions}
            dlib_times = []
            for s in sessions.values():
                for _ in range(5):
                    s.run(["points"], {"image": x})
            for _ in range(args.runs):  # round robin: noise hits every variant alike
                for k, s in sessions.items():
                    t0 = time.perf_counter()
                    s.run(["points"], {"image": x})
                    times[k].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                dlib.points_from_detection(face, det)
                dlib_times.append(time.perf_counter() - t0)
            for name, path in files.items():
                nme = float("nan")
                if size == own:
                    pts = sessions[(name, 1, "all")].run(["points"], {"image": held_x.astype(np.float32)})[0]
                    pts = np.stack([apply_affine(p.astype(np.float64), m) for p, m in zip(pts, back)])
                    nme = score_samples(held, pts, scheme)[0].nme
                ms = {k[1:]: float(np.median(v) * 1e3) for k, v in times.items() if k[0] == name}
                rows.append((size, name, path.stat().st_size / 1e6, ms[(1, "all")], ms[(1, "basic")], ms[(2, "all")],
                             nme))
            rows.append((size, "dlib shape predictor (1 thread)", 99.7, float(np.median(dlib_times) * 1e3),
                         float("nan"), float("nan"), float("nan")))
            for r in rows[-len(files) - 1:]:
                print(f"{r[0]:4d}px {r[1]:<48} {r[2]:6.2f} MB  1t {r[3]:6.2f}  1t basic-opt {r[4]:6.2f}  "
                      f"2t {r[5]:6.2f} ms  NME {r[6]:.3%}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
