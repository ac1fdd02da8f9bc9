"""``kdmark export | predict``: ship a model (ONNX, INT8, a web page) and run it on photos, videos and cameras."""

from __future__ import annotations

import argparse
from pathlib import Path

from kdmark.cli.flags import SETTINGS_NOTE, add_config_flags, config_from_args
from kdmark.config import ExportConfig, PredictConfig
from kdmark.errors import DatasetError

__all__ = ["register"]


def export(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)  # the ExportConfig
    if cfg.web:
        from kdmark.deploy.web import export_web

        unused = [flag for flag, given in (("--out", cfg.out), ("--calibration", cfg.calibration)) if given]
        if unused:
            raise DatasetError(unused[0], "not used with --web (the page goes to the --web folder; for an INT8 "
                                          "page give --int8 or --precision int8 with a zoo model)")
        if cfg.int8 and cfg.precision == "fp32":
            raise DatasetError("--int8", "contradicts --precision fp32")
        precision = "int8" if cfg.int8 else cfg.precision
        out = export_web(cfg.model, cfg.web, ort_web=cfg.ort_web, precision=precision)
        print(f"wrote {out}/ (index.html, models, onnxruntime-web); serve it: python -m kdmark.deploy.web.serve {out}")
        return 0
    from kdmark.deploy.export import export_onnx, export_onnx_int8

    out = Path(cfg.out or Path(cfg.model).with_suffix(".onnx"))  # a zoo name: NAME.onnx here
    if cfg.int8:
        if not cfg.calibration:
            raise DatasetError("--int8", "needs --calibration PATH: real faces to calibrate activation ranges on")
        res, report = export_onnx_int8(cfg.model, out, cfg.calibration, cfg.calibration_faces,
                                       opset=cfg.opset, tolerance=cfg.tolerance)
    else:
        res, report = export_onnx(cfg.model, out, opset=cfg.opset, tolerance=cfg.tolerance), None
    print(f"wrote {res.path} ({res.size_bytes / 1e6:.2f} MB); |ONNX - PyTorch|: points max {res.max_abs_error:.2e} "
          f"px, raw output {res.raw_error:.1e} of its range")
    if report:
        print(report)
    return 0


def predict(args: argparse.Namespace) -> int:
    from kdmark.deploy.predict_files import predict_files

    cfg = config_from_args(args)
    return predict_files(list(cfg.inputs), model=cfg.model, boxes=cfg.boxes, json_out=cfg.json, draw=cfg.draw,
                         backend=cfg.backend, batch_size=cfg.batch_size, smooth=cfg.smooth,
                         max_frames=cfg.max_frames, detector=cfg.detector,
                         detector_threshold=cfg.detector_threshold, min_face=cfg.min_face, tta=cfg.tta,
                         precision=cfg.precision)


def register(verbs) -> None:
    """kdmark export | predict."""
    p = verbs.add_parser("export", help="export a checkpoint to ONNX (parity-checked), optionally INT8, or a web page",
                         epilog=SETTINGS_NOTE)
    add_config_flags(p, ExportConfig)  # every flag, default and check comes from the schema
    p.set_defaults(func=export)

    p = verbs.add_parser("predict", help="landmarks for images, folders and videos", epilog=SETTINGS_NOTE)
    add_config_flags(p, PredictConfig)
    p.set_defaults(func=predict)
