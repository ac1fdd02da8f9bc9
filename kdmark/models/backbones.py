"""Backbones: any timm model as a multi-scale feature extractor (``features_only``)."""

from __future__ import annotations

import timm
import torch
from torch import nn

__all__ = ["Backbone", "create_backbone", "BackboneError"]


class BackboneError(ValueError):
    """An unknown timm model, or pretrained weights that cannot be had."""


class Backbone(nn.Module):
    """A timm feature extractor with its per-level ``channels`` and ``strides``; ``forward`` returns the list."""

    def __init__(self, body: nn.Module, name: str):
        super().__init__()
        self.body, self.name = body, name
        self.channels: list[int] = list(body.feature_info.channels())
        self.strides: list[int] = list(body.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(x))


def create_backbone(name: str, pretrained: bool = False, **kwargs) -> Backbone:
    """``timm.create_model(name, features_only=True)``. Names such as ``mobilenetv2_100``, ``mobilenetv2_050``,
    ``mobilenetv3_large_100``, ``efficientnet_b0``, ``resnet18``, ``resnet50``, ``mobilevitv2_050`` all work.

    Raises:
        BackboneError: unknown name, or ``pretrained=True`` and the weights cannot be downloaded.
    """
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise BackboneError(f"unknown timm model {name!r}" + (f"; similar: {', '.join(close)}" if close else ""))
    try:
        body = timm.create_model(name, pretrained=pretrained, features_only=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if pretrained:
            first = str(err).strip().splitlines()[0][:100] if str(err).strip() else type(err).__name__
            raise BackboneError(f"pretrained weights for {name} could not be loaded (no network or no cached "
                                f"copy: {first}); set model.pretrained=false to train from scratch") from None
        raise BackboneError(f"timm could not build {name}: {err}") from None
    return Backbone(body, name)
