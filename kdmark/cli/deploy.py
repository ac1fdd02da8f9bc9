"""``kdmark export | predict``: ship a model (ONNX, INT8, a web page) and run it on photos, videos and cameras."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdmark.cli.args import add_tta, finite, non_negative, positive
from kdmark.errors import DatasetError

__all__ = ["register"]


def export(args: argparse.Namespace) -> int:
    if args.web:
        from kdmark.deploy.web import export_web

        unused = [flag for flag, given in (("--out", args.out), ("--calibration", args.calibration)) if given]
        if unused:
            raise DatasetError(unused[0], "not used with --web (the page goes to the --web folder; for an INT8 "
                                          "page give --int8 or --precision int8 with a zoo model)")
        if args.int8 and args.precision == "fp32":
            raise DatasetError("--int8", "contradicts --precision fp32")
        precision = "int8" if args.int8 else args.precision
        out = export_web(args.checkpoint, args.web, ort_web=args.ort_web, precision=precision)
        print(f"wrote {out}/ (index.html, models, onnxruntime-web); serve it: python -m kdmark.deploy.web.serve {out}")
        return 0
    from kdmark.deploy.export import export_onnx, export_onnx_int8

    out = Path(args.out or Path(args.checkpoint).with_suffix(".onnx"))  # a zoo name: NAME.onnx here
    if args.int8:
        if not args.calibration:
            raise DatasetError("--int8", "needs --calibration PATH: real faces to calibrate activation ranges on")
        res, report = export_onnx_int8(args.checkpoint, out, args.calibration, args.calibration_faces,
                                       opset=args.opset, tolerance=args.tolerance)
    else:
        res, report = export_onnx(args.checkpoint, out, opset=args.opset, tolerance=args.tolerance), None
    print(f"wrote {res.path} ({res.size_bytes / 1e6:.2f} MB); |ONNX - PyTorch|: points max {res.max_abs_error:.2e} "
          f"px, raw output {res.raw_error:.1e} of its range")
    if report:
        print(report)
    return 0


def predict(args: argparse.Namespace) -> int:
    from kdmark.deploy.predict_files import predict_files

    return predict_files(args.inputs, model=args.model, boxes=args.boxes, json_out=args.json, draw=args.draw,
                         backend=args.backend, batch_size=args.batch_size, smooth=not args.no_smooth,
                         max_frames=args.max_frames, detector=args.detector,
                         detector_threshold=args.detector_threshold, min_face=args.min_face, tta=args.tta,
                         precision=args.precision)


def register(verbs) -> None:
    """kdmark export | predict."""
    p = verbs.add_parser("export", help="export a checkpoint to ONNX (parity-checked), optionally INT8, or a web page")
    p.add_argument("checkpoint", help="a .ckpt or a zoo name (with --web also an exported .onnx)")
    p.add_argument("--web", default=None, metavar="FOLDER",
                   help="write a static web page running BlazeFace and this model in the browser, offline")
    p.add_argument("--ort-web", default=None, metavar="TGZ_OR_FOLDER",
                   help="--web: onnxruntime-web from this npm package (.tgz or folder) instead of kdmark's cache")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--out", default=None, help="output .onnx (default: beside the checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="99th-percentile point difference vs PyTorch allowed, in input pixels")
    p.add_argument("--int8", action="store_true", help="also write a statically quantised INT8 model")
    p.add_argument("--calibration", default=None, help="dataset of real faces for INT8 calibration")
    p.add_argument("--calibration-faces", type=int, default=128)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"],
                   help="--web with a zoo model: which shipped file the page runs (auto: INT8 where one ships, "
                        "the smaller download)")
    p.set_defaults(func=export)

    p = verbs.add_parser("predict", help="landmarks for images, folders and videos")
    p.add_argument("inputs", nargs="+", metavar="[MODEL] INPUT",
                   help="optionally a model first (zoo name, .ckpt or .onnx; default kdmark-68-s), then images, "
                        "folders of images, videos, or a camera (0, /dev/video0)")
    p.add_argument("--model", default=None, help="zoo name, .ckpt or .onnx (default: kdmark-68-s)")
    p.add_argument("--boxes", default=None, help="JSON: image file name -> [[x0, y0, x1, y1], ...]")
    p.add_argument("--json", default=None, help="write results here (file name -> faces); - for stdout")
    p.add_argument("--draw", default=None, help="folder for images (and videos) with landmarks drawn")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                   help="auto: by file type (zoo models and .onnx on onnxruntime, .ckpt on PyTorch)")
    p.add_argument("--batch-size", type=positive, default=32, help="faces per forward pass")
    p.add_argument("--no-smooth", action="store_true", help="video: no One-Euro smoothing")
    p.add_argument("--max-frames", type=positive, default=300,
                   help="a camera input (0 or /dev/video0): stop after this many frames")
    p.add_argument("--detector", default="blazeface", choices=["blazeface", "dlib"],
                   help="face detector: blazeface (MediaPipe's BlazeFace on onnxruntime, default) or dlib (HOG)")
    p.add_argument("--detector-threshold", type=finite, default=None,
                   help="keep faces whose detection score is at least this (default: the detector's own, 0.5 for "
                        "BlazeFace, 0 for dlib; JSON 'detector_score')")
    p.add_argument("--min-face", type=non_negative, default=0.0,
                   help="ignore detected faces smaller than this (pixels)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "int8"],
                   help="a zoo model that ships an INT8 file: auto runs it where this CPU makes it faster than "
                        "FP32 (VNNI / dot-product instructions), else FP32")
    add_tta(p)
    p.set_defaults(func=predict)
