"""ONNX Runtime sessions for kdmark's exported models, torch-free: what ``Predictor`` needs to run an ``.onnx`` file
(or a zoo model) without importing PyTorch."""

from __future__ import annotations

import json
import platform
from functools import cache
from pathlib import Path

from kdmark.card import check_card
from kdmark.errors import CheckpointError, ConfigError

__all__ = ["CARD_KEY", "PRECISIONS", "int8_is_fast", "onnx_session", "pick_precision", "read_onnx_card", "session_card"]

CARD_KEY = "kdmark_card"
PRECISIONS = ("auto", "fp32", "int8")

_DOT_PRODUCT_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}  # x86 VNNI / AMX, Arm dot product


def _has_dot_product(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text names an 8-bit dot-product instruction set (its first flags line)."""
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            return bool(_DOT_PRODUCT_FLAGS & set(line.split(":", 1)[1].split()))
    return False


@cache
def int8_is_fast() -> bool:
    """Whether this CPU has the 8-bit dot-product instructions onnxruntime's INT8 kernels need to beat FP32
    (x86 VNNI or AMX, Arm's dot product). Measured (BENCHMARKS.md, "INT8 where it is faster"): kdmark-68-s's INT8
    file runs 1.25x faster than FP32 on one thread of an AVX-512 VNNI EPYC, 1.44x slower on an AVX2-only one."""
    if platform.system() == "Darwin" and platform.machine() == "arm64":  # every Apple-silicon core has dot product
        return True
    try:
        with open("/proc/cpuinfo") as f:
            return _has_dot_product(f.read())
    except OSError:
        return False


def check_precision(precision) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def pick_precision(precision: str, has_int8: bool) -> str:
    """"fp32" or "int8" for a model that ships an INT8 copy (``has_int8``) or not: "auto" is INT8 where it ships and
    :func:`int8_is_fast`; "int8" where none ships is refused."""
    check_precision(precision)
    if precision == "int8" and not has_int8:
        raise CheckpointError("precision='int8': this model ships no INT8 file (export one: kdmark export MODEL "
                              "--int8 --calibration FACES, then run the .int8.onnx file)")
    if precision == "auto":
        return "int8" if has_int8 and int8_is_fast() else "fp32"
    return precision


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
    return session_card(onnx_session(path, threads=1), path)


def session_card(session, path: str | Path) -> dict:
    """The kdmark model card in the metadata of an open session of the ONNX file ``path`` (checked)."""
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path}: an ONNX model, but not one exported by kdmark (no {CARD_KEY} metadata)")
    try:
        card = json.loads(meta[CARD_KEY])
    except ValueError as err:
        raise CheckpointError(f"{path}: damaged model card: its {CARD_KEY} metadata is not JSON ({err})") from None
    return check_card(card, path)
