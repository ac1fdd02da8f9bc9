"""The model card every kdmark checkpoint and exported ONNX file carries (scheme, input size, codec, crop policy,
architecture), checked on load: a damaged or hostile card is one line naming the file and the field, never a
traceback deep in model building or an allocation sized by the card. Torch-free (``Predictor`` reads ONNX cards
without PyTorch)."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kdmark.config import CROP_MARGIN
from kdmark.errors import CheckpointError

__all__ = ["ModelCard", "check_card", "CROP_MARGIN", "crop_margin", "is_onnx", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation a card names when it names none (every kdmark model's)
IMAGENET_STD = (0.229, 0.224, 0.225)

CODECS = ("regression", "heatmap", "offset", "joint")
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
    for name in ("mean", "std"):
        v = card.get(name)
        if v is None:
            continue
        if not isinstance(v, list) or len(v) != 3:
            raise _bad(where, name, f"must be three numbers (R, G, B), not {v!r}")
        for x in v:
            _number(where, x, name, 1e-6 if name == "std" else -10.0, 10.0)
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
    if kind == "offset":
        _int(where, codec, "radius", 0, 8, "codec.radius")
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


# card keys the typed fields describe; every other key (``init``: the starting weights, ...) is provenance
_DESCRIBED = {"scheme", "num_points", "input_size", "mean", "std", "codec", "model", "crop", "backbone", "head",
              "precision"}


@dataclass(frozen=True)
class ModelCard(Mapping):
    """What a model is, validated once on load (:func:`kdmark.card.check_card`: one line naming a damaged field):
    landmark ``scheme`` and ``num_points``, ``input_size``, normalisation (``mean``/``std``, applied inside the
    model), crop policy (``margin``, ``use_box``), architecture (``backbone``, ``head``), codec (``codec``: kind,
    ``stride`` and ``sigma`` for heatmaps), ``precision`` of the file, and ``provenance`` (starting weights, what it
    was made from). Read-only; ``card["input_size"]`` reads the stored form too (a copy), ``to_dict()`` gives it
    whole (what checkpoints and ONNX metadata hold)."""

    scheme: str
    num_points: int
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    margin: float
    use_box: bool
    backbone: str
    head: str
    codec: str
    stride: int | None
    sigma: float | None
    precision: str
    provenance: dict = field(repr=False)
    raw: dict = field(repr=False)

    @classmethod
    def from_dict(cls, card, where) -> ModelCard:
        if isinstance(card, ModelCard):
            return card
        check_card(card, where)
        raw = copy.deepcopy(card)
        codec, model = raw["codec"], raw["model"]
        return cls(scheme=raw["scheme"], num_points=raw["num_points"], input_size=raw["input_size"],
                   mean=tuple(raw.get("mean") or IMAGENET_MEAN), std=tuple(raw.get("std") or IMAGENET_STD),
                   margin=float(crop_margin(raw)), use_box=bool((raw.get("crop") or {}).get("use_box", False)),
                   backbone=model["backbone"], head=model["head"], codec=codec["kind"],
                   stride=codec.get("stride"), sigma=codec.get("sigma"), precision=raw.get("precision", "fp32"),
                   provenance={k: copy.deepcopy(v) for k, v in raw.items() if k not in _DESCRIBED}, raw=raw)

    def with_provenance(self, **more) -> ModelCard:
        """This card with more provenance (a zoo model's recipe, data and measured NME from ``models.json``)."""
        return dataclasses.replace(self, provenance={**self.provenance, **copy.deepcopy(more)})

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def __getitem__(self, key: str) -> Any:
        return copy.deepcopy(self.raw[key])

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __hash__(self) -> int:
        return id(self)
