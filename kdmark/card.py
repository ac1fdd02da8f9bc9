"""The model card every kdmark checkpoint and exported ONNX file carries (scheme, input size, codec, crop policy,
architecture), checked on load: a damaged or hostile card is one line naming the file and the field, never a
traceback deep in model building or an allocation sized by the card. Torch-free (``Predictor`` reads ONNX cards
without PyTorch)."""

from __future__ import annotations

import math

from kdmark.config import CROP_MARGIN
from kdmark.errors import CheckpointError

__all__ = ["check_card", "CROP_MARGIN", "crop_margin", "is_onnx", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation a card names when it names none (every kdmark model's)
IMAGENET_STD = (0.229, 0.224, 0.225)

CODECS = ("regression", "heatmap", "joint")
PRECISIONS = ("fp32", "int8")
MAX_INPUT = 1024  # pixels a side: kdmark's models run at 64-256; a card asking for more is damaged, not ambitious
MAX_POINTS = 1000  # the largest scheme kdmark knows has 98 points


def crop_margin(card: dict) -> float:
    """The crop margin a model was trained with (its card's ``crop.margin``; ``CROP_MARGIN`` when it names none)."""
    return (card.get("crop") or {}).get("margin", CROP_MARGIN)


def is_onnx(path) -> bool:
    """Whether a model path names an exported ONNX file (by its suffix, in any case): the one place this is decided."""
    return str(path).lower().endswith(".onnx")


def _bad(where, field: str, problem: str):
    return CheckpointError(f"{where}: damaged model card: {field} {problem}")


def _int(where, card: dict, field: str, lo: int, hi: int, name: str | None = None) -> int:
    v = card.get(field)
    name = name or field
    if v is None:
        raise _bad(where, name, "is missing")
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _bad(where, name, f"must be a whole number from {lo} to {hi}, not {v!r}")
    return v


def _number(where, v, name: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not lo <= v <= hi:
        raise _bad(where, name, f"must be a number from {lo:g} to {hi:g}, not {v!r}")
    return float(v)


def _dict(where, card: dict, field: str, required: bool = True) -> dict:
    v = card.get(field)
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise _bad(where, field, "is missing" if v is None else f"must be a mapping, not {type(v).__name__}")
    return v


def _text(where, d: dict, field: str, name: str) -> str:
    v = d.get(field)
    if not isinstance(v, str) or not v:
        raise _bad(where, name, "is missing" if v is None else f"must be a name, not {v!r}")
    return v


def check_card(card, where) -> dict:
    """``card`` itself when every field kdmark reads is present, of its type and within sane bounds; else one
    :class:`CheckpointError` ``"WHERE: damaged model card: FIELD PROBLEM"``."""
    if not isinstance(card, dict):
        raise CheckpointError(f"{where}: damaged model card: must be a mapping, not "
                              f"{'nothing' if card is None else type(card).__name__}")
    _text(where, card, "scheme", "scheme")
    _int(where, card, "num_points", 1, MAX_POINTS)
    size = _int(where, card, "input_size", 16, MAX_INPUT)
    for field in ("mean", "std"):
        v = card.get(field)
        if v is None:
            continue
        if not isinstance(v, list) or len(v) != 3:
            raise _bad(where, field, f"must be three numbers (R, G, B), not {v!r}")
        for x in v:
            _number(where, x, field, 1e-6 if field == "std" else -10.0, 10.0)
    codec = _dict(where, card, "codec")
    kind = codec.get("kind")
    if kind not in CODECS:
        raise _bad(where, "codec.kind", f"must be one of {', '.join(CODECS)}, not {kind!r}")
    if _int(where, codec, "input_size", 16, MAX_INPUT, "codec.input_size") != size:
        raise _bad(where, "codec.input_size", f"is {codec['input_size']} but input_size is {size}")
    if kind != "regression":
        stride = _int(where, codec, "stride", 1, 64, "codec.stride")
        if size % stride:
            raise _bad(where, "codec.stride", f"{stride} does not divide input_size {size}")
        _number(where, codec.get("sigma"), "codec.sigma", 0.05, 50.0)
    model = _dict(where, card, "model")
    _text(where, model, "backbone", "model.backbone")
    _text(where, model, "head", "model.head")
    crop = _dict(where, card, "crop", required=False)
    if "margin" in crop:
        _number(where, crop["margin"], "crop.margin", 0.0, 2.0)
    if "use_box" in crop and not isinstance(crop["use_box"], bool):
        raise _bad(where, "crop.use_box", f"must be true or false, not {crop['use_box']!r}")
    if card.get("precision", "fp32") not in PRECISIONS:
        raise _bad(where, "precision", f"must be one of {', '.join(PRECISIONS)}, not {card['precision']!r}")
    return card
