"""Backbones: any timm model as a multi-scale feature extractor (``features_only``), starting from random weights,
timm's pretrained weights, or a weights file saved by timm or by torchvision (``model.pretrained=PATH``)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from kdmark.errors import BackboneError
from kdmark.io import sha256_of
from kdmark.weights import load_weights_only, why_unreadable

__all__ = ["Backbone", "create_backbone", "BackboneError", "load_weights_file"]


class Backbone(nn.Module):
    """A timm feature extractor with its per-level ``channels`` and ``strides``; ``forward`` returns the list."""

    def __init__(self, body: nn.Module, name: str):
        super().__init__()
        self.body, self.name = body, name
        self.channels: list[int] = list(body.feature_info.channels())
        self.strides: list[int] = list(body.feature_info.reduction())
        self.weights: dict | None = None  # where the starting weights came from, when from a file

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def create_backbone(name: str, pretrained: bool | str = False, **kwargs) -> Backbone:
    """``timm.create_model(name, features_only=True)``. Names such as ``mobilenetv2_100``, ``mobilenetv2_050``,
    ``mobilenetv3_large_100``, ``efficientnet_b0``, ``resnet18``, ``resnet50``, ``mobilevitv2_050`` all work.

    ``pretrained``: False (random weights), True (timm's weights, downloaded or cached) or the path of a weights
    file (see :func:`load_weights_file`); a file's provenance is kept in ``backbone.weights``.

    Raises:
        BackboneError: unknown name, pretrained weights that cannot be had, or a weights file that does not fit.
    """
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise BackboneError(f"unknown timm model {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
    from_file = isinstance(pretrained, str) and pretrained != ""
    try:
        body = timm.create_model(name, pretrained=bool(pretrained) and not from_file, features_only=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if pretrained:
            first = str(err).strip().splitlines()[0][:100] if str(err).strip() else type(err).__name__
            raise BackboneError(f"pretrained weights for {name} could not be loaded (no network or no cached "
                                f"copy: {first}); set model.pretrained=PATH to a weights file, or "
                                "model.pretrained=false to train from scratch") from None
        raise BackboneError(f"timm could not build {name}: {err}") from None
    backbone = Backbone(body, name)
    backbone.weights = load_weights_file(body, pretrained, name) if from_file else None
    return backbone


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise BackboneError(f"{path}: no such weights file (model.pretrained)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = load_weights_only(path)
    except Exception as err:  # noqa: BLE001 - truncated zips, pickles, random bytes: all one line
        raise BackboneError(f"{path}: not a readable weights file ({why_unreadable(path, err)})") from None
    for key in ("state_dict", "model", "module"):  # common wrappers: {"state_dict": ...}, timm's train checkpoints
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_file(model: nn.Module, path: str | Path, name: str = "") -> dict:
    """Load a state dict saved by timm or by torchvision into ``model`` (a timm model, whole or ``features_only``).

    Keys are matched by name when the file uses the model's own names (timm's layout; a classifier the feature
    extractor does not have is left out). Otherwise the file is matched by order: the model's tensors must be the
    file's first tensors with the same shapes, in the same order (torchvision's MobileNetV2 and timm's
    ``mobilenetv2_100`` list the same layers in the same order under other names; so do other families whose
    layers line up one to one). Prints one line saying what was loaded; returns the provenance recorded in the model
    card (file, sha256, layout, tensors loaded and left out).

    Raises:
        BackboneError: the file is unreadable or does not fit (the first tensor that differs is named).
    """
    path = Path(path)
    source = _read_state_dict(path)
    target = model.state_dict()
    label = name or type(model).__name__
    if all(k in source for k in target):
        layout = "names"
        mapped = {k: source[k] for k in target}
        for k, v in mapped.items():
            if v.shape != target[k].shape:
                raise BackboneError(f"{path}: does not fit {label}: {k} is {tuple(target[k].shape)} in the model, "
                                    f"{tuple(v.shape)} in the file")
        left_out = [k for k in source if k not in target]
    else:
        layout = "order"
        src_items = list(source.items())
        if len(src_items) < len(target):
            raise BackboneError(f"{path}: does not fit {label}: the model has {len(target)} tensors, the file "
                                f"{len(src_items)} (and their names differ)")
        mapped = {}
        for (k, t), (sk, sv) in zip(target.items(), src_items):
            if sv.shape != t.shape:
                raise BackboneError(f"{path}: does not fit {label}: tensor {k} is {tuple(t.shape)} in the model, "
                                    f"the file's tensor at the same place ({sk}) is {tuple(sv.shape)}")
            mapped[k] = sv
        left_out = [k for k, _ in src_items[len(target):]]
    model.load_state_dict(mapped, strict=True)
    digest = sha256_of(path)
    how = "by name" if layout == "names" else "by layer order (another library's names)"
    print(f"kdmark: loaded {len(mapped)} tensors into {label} from {path} ({how}); left out {len(left_out)} "
          f"({_describe(left_out)})")
    return {"file": str(path), "sha256": digest, "layout": layout, "loaded": len(mapped), "left_out": left_out}


def _describe(keys: list[str]) -> str:
    if not keys:
        return "none"
    heads = sorted({k.rsplit(".", 1)[0] for k in keys})
    return ", ".join(heads[:4]) + (", ..." if len(heads) > 4 else "")
