"""ONNX export with a parity check, and INT8 static quantisation calibrated on real faces.

The exported graph takes ``image`` (B, 3, S, S) float RGB in [0, 1] (normalisation is inside) and returns
``points`` (B, K, 2) in input pixels, ``scores`` (B, K) and ``raw`` (the heatmaps or [0, 1] coordinates the
network produced): decoding is part of the graph, so a deployment needs no kdmark code. The model card is stored
as JSON in the ONNX metadata (key ``kdmark_card``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdmark.checkpoint import load_checkpoint
from kdmark.config import ExportConfig
from kdmark.errors import ExportError
from kdmark.io import atomic_write, remove_stale_temporaries
from kdmark.models.landmark_net import LandmarkNet
from kdmark.runtime import CARD_KEY, onnx_session, read_onnx_card

__all__ = ["export_onnx", "quantize_int8", "ExportError", "ExportResult", "read_onnx_card", "onnx_session"]


@dataclass
class ExportResult:
    path: Path
    max_abs_error: float  # points, in input pixels, ONNX Runtime vs PyTorch on random inputs
    size_bytes: int
    raw_error: float = 0.0  # the network's own output (heatmaps or coordinates), relative to its range


class _Decoded(nn.Module):
    """The graph that is exported: image -> (points, scores), decoding included."""

    def __init__(self, model: LandmarkNet):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(image)
        points, scores = self.model.codec.decode(out)
        raw = out["heatmaps"] if "heatmaps" in out else out["coords"]
        return points, scores, raw


def _parity(model: LandmarkNet, path: Path, size: int, batch: int = 3) -> tuple[float, float, float]:
    """(max point error px, 99th-percentile point error px, raw output error relative to its range)."""
    x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_pts, _, ref_raw = _Decoded(model).eval()(x)
    pts, _, raw = onnx_session(path, threads=1).run(None, {"image": x.numpy()})
    err = np.abs(pts - ref_pts.numpy())
    scale = float(np.abs(ref_raw.numpy()).max()) + 1e-12
    return float(err.max()), float(np.percentile(err, 99)), float(np.abs(raw - ref_raw.numpy()).max() / scale)


def _refuse_over_model(model, outputs: dict, inputs: tuple = ()) -> None:
    """One error line when an export would write over its own model file (``export best.ckpt --out best.ckpt``)
    or another input (the calibration data)."""
    from kdmark.io import refuse_overwriting_inputs
    from kdmark.zoo import resolve

    sources = [Path(i) for i in inputs] + ([] if isinstance(model, nn.Module) else [Path(resolve(str(model)))])
    refuse_overwriting_inputs(outputs, sources)


_STAGES = ("export", "pre", "int8", "staged", "staged-int8")  # the temporary files an export of NAME writes


def _temporary(path: Path, stage: str) -> Path:
    """Where one stage of exporting ``path`` is written: ``.NAME-STAGE.PID.tmp`` beside it, the naming
    ``kdmark.io.remove_stale_temporaries`` knows, so what a killed export left is removed by the next one."""
    return path.with_name(f".{path.name}-{stage}.{os.getpid()}.tmp")


def _clean_after_kills(*paths: Path) -> None:
    for path in paths:
        remove_stale_temporaries(path.parent, [path.name] + [f"{path.name}-{s}" for s in _STAGES])


def export_onnx(model: LandmarkNet | str | Path, path: str | Path, opset: int = ExportConfig.opset,
                tolerance: float = ExportConfig.tolerance) -> ExportResult:
    """Export a model (or checkpoint path) to ONNX and check it against PyTorch on random inputs.

    The export fails when the network's raw output differs by more than 1e-4 of its range, or when the 99th
    percentile of point differences exceeds ``tolerance`` input pixels (a heatmap with two near-equal peaks may
    legitimately flip between backends, so the single worst point is reported, not required). On failure no file
    is left at ``path`` and an earlier file there stays untouched; ``path`` may not be the model file itself.
    """
    _refuse_over_model(model, {"--out": path})
    if not isinstance(model, nn.Module):
        model, _ = load_checkpoint(model)
    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = model.info.input_size
    _clean_after_kills(path)
    tmp = _temporary(path, "export")
    wrapper = _Decoded(model).eval()  # eval: the exporter restores the wrapper's mode onto the model afterwards
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (torch.rand(1, 3, size, size),), str(tmp), input_names=["image"],
                          output_names=["points", "scores", "raw"], opset_version=opset, dynamo=False,
                          dynamic_axes={k: {0: "batch"} for k in ("image", "points", "scores", "raw")})
    try:
        _add_card(tmp, model.card)
        err, err99, raw = _parity(model, tmp, size)
        if not (raw <= 1e-4 and err99 <= tolerance):
            raise ExportError(f"{path}: ONNX output differs from PyTorch (points {err99:.3g} px at the 99th "
                              f"percentile, tolerance {tolerance:g}; raw output {raw:.2g} of its range)")
        data = tmp.read_bytes()
        atomic_write(path, lambda f: f.write(data))
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(path, err, path.stat().st_size, raw)


def _add_card(path: Path, card: dict) -> None:
    import onnx

    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card)
    proto.producer_name = "kdmark"
    onnx.save(proto, str(path))


class _Calibration:
    """onnxruntime CalibrationDataReader over (N, 3, S, S) face crops."""

    def __init__(self, images: np.ndarray, batch: int = 8):
        self.batches = iter([images[i:i + batch] for i in range(0, len(images), batch)])

    def get_next(self):
        b = next(self.batches, None)
        return None if b is None else {"image": b.astype(np.float32)}


INT8_OPS = {  # which operators quantize_int8 quantises (scripts/bench_int8.py measures each choice)
    "conv": ["Conv", "ConvTranspose", "Gemm", "MatMul"],
    "network": ["Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Relu", "Clip", "Resize", "Concat", "MaxPool",
                "AveragePool", "GlobalAveragePool"],
}


def quantize_int8(fp32_path: str | Path, path: str | Path, calibration_images: np.ndarray, fmt: str = "qdq",
                  per_channel: bool = True, ops: str = "network") -> Path:
    """Static INT8 quantisation calibrated on real face crops (N, 3, S, S) in [0, 1]: ``fmt`` "qdq" (QuantizeLinear
    / DequantizeLinear pairs that onnxruntime fuses) or "qoperator" (QLinearConv...), per-channel or per-tensor
    weights, and ``ops`` "conv" (convolutions and matrix products only) or "network" (also the adds, activations,
    resizes and concatenations between them, so tensors stay INT8 from one convolution to the next). The heatmap
    decoding stays in float either way. The default (QDQ, per-channel, whole network) is what scripts/bench_int8.py
    found fastest at equal accuracy: quantising only the convolutions left a Q/DQ pair around every add and
    activation, 1.6x slower than FP32 on an AVX2 CPU; the whole network runs at FP32's speed (BENCHMARKS.md)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration_images) == 0:
        raise ExportError(f"{path}: INT8 calibration needs at least one face image")
    path = Path(path)
    pre, tmp = _temporary(path, "pre"), _temporary(path, "int8")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(tmp), _Calibration(calibration_images),
                            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                            op_types_to_quantize=INT8_OPS[ops], calibrate_method=CalibrationMethod.MinMax,
                            nodes_to_exclude=_decoding_nodes(pre) if ops == "network" else None)
        card = read_onnx_card(fp32_path) | {"precision": "int8"}
        _add_card(tmp, card)
        data = tmp.read_bytes()
        atomic_write(path, lambda f: f.write(data))
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return path


def _decoding_nodes(path: Path) -> list[str]:
    """Names of the nodes after the network's last convolution (the in-graph heatmap decoding): kept in float."""
    import onnx

    nodes = onnx.load(str(path)).graph.node
    last_conv = max((i for i, n in enumerate(nodes) if n.op_type in ("Conv", "ConvTranspose")), default=-1)
    return [n.name for n in nodes[last_conv + 1:]]


def export_onnx_int8(model, path: str | Path, calibration: str | Path, faces: int = ExportConfig.calibration_faces,
                     opset: int = ExportConfig.opset,
                     tolerance: float = ExportConfig.tolerance) -> tuple[ExportResult, str]:
    """FP32 ONNX at ``path`` and INT8 beside it (``NAME.int8.onnx``), calibrated on ``faces`` real faces of the
    dataset ``calibration``; returns the FP32 result and a line on the accuracy INT8 costs on those faces.

    Both files appear only when both succeeded: a failure leaves whatever was at either path untouched."""
    from kdmark.data import read_dataset
    from kdmark.data.crops import sample_crops
    from kdmark.data.transforms import apply_affine
    from kdmark.metrics import score_samples
    from kdmark.schemes import get_scheme

    path = Path(path)
    int8_path = path.with_name(path.stem + ".int8.onnx")
    _refuse_over_model(model, {"--out": path, "--out (its INT8 copy)": int8_path}, (calibration,))
    if not isinstance(model, nn.Module):
        model, _ = load_checkpoint(model)
    ds = read_dataset(calibration, scheme=model.info.scheme)  # bad calibration data fails before any writing
    samples = ds.samples[:faces]
    _clean_after_kills(path, int8_path)
    staged, staged_int8 = _temporary(path, "staged"), _temporary(path, "staged-int8")
    try:
        res = export_onnx(model, staged, opset=opset, tolerance=tolerance)
        crops, back = sample_crops(samples, model.card, [s.landmark_box() for s in samples])
        quantize_int8(staged, staged_int8, crops)
        scores = {}
        for name, file in (("fp32", staged), ("int8", staged_int8)):
            pts = onnx_session(file).run(None, {"image": crops})[0]
            img = np.stack([apply_affine(p.astype(np.float64), m) for p, m in zip(pts, back)])
            scores[name], _, _ = score_samples(samples, img, get_scheme(model.info.scheme), ds.normaliser)
        for src, dst in ((staged, path), (staged_int8, int8_path)):
            data = src.read_bytes()
            atomic_write(dst, lambda f, data=data: f.write(data))
    finally:
        staged.unlink(missing_ok=True)
        staged_int8.unlink(missing_ok=True)
    cost = (scores["int8"].nme - scores["fp32"].nme) * 100
    line = (f"wrote {int8_path} ({int8_path.stat().st_size / 1e6:.2f} MB); on {len(samples)} calibration faces: "
            f"NME fp32 {scores['fp32'].nme * 100:.3f}%  int8 {scores['int8'].nme * 100:.3f}%  ({cost:+.3f} points)")
    return ExportResult(path, res.max_abs_error, path.stat().st_size, res.raw_error), line
