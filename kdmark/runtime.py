"""ONNX Runtime sessions for kdmark's exported models, torch-free: what ``Predictor`` needs to run an ``.onnx`` file
(or a zoo model) without importing PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

from kdmark.errors import CheckpointError

__all__ = ["CARD_KEY", "onnx_session", "read_onnx_card"]

CARD_KEY = "kdmark_card"


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session (``threads`` intra-op threads; None: onnxruntime's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        raise CheckpointError(f"{path}: not a loadable ONNX model ({str(err).splitlines()[0][:120]})") from None


def read_onnx_card(path: str | Path) -> dict:
    """The kdmark model card stored in an exported ONNX file."""
    session = onnx_session(path, threads=1)
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path}: an ONNX model, but not one exported by kdmark (no {CARD_KEY} metadata)")
    return json.loads(meta[CARD_KEY])
