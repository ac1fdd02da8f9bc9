"""LandmarkNet = backbone + head + codec, and the model card that travels with its weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdmark.codecs import HeatmapCodec, JointCodec, RegressionCodec, create_codec
from kdmark.models.backbones import create_backbone
from kdmark.models.heads import DeconvHead, HeatmapHead, JointHead, RegressionHead

__all__ = ["LandmarkNet", "build_model", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LandmarkNet(nn.Module):
    """A landmark detector. ``forward(x)`` returns the head's raw outputs (what losses read);
    ``predict(x)`` decodes them into (B, K, 2) points in input pixels and (B, K) scores.

    ``x`` is (B, 3, S, S) float RGB in [0, 1]; normalisation with ``card["mean"]``/``card["std"]`` happens inside,
    so exported models take plain [0, 1] images.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, codec, card: dict):
        super().__init__()
        self.backbone, self.head, self.codec, self.card = backbone, head, codec, card
        self.register_buffer("mean", torch.tensor(card["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(card["std"]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone((x - self.mean) / self.std)
        out = self.head(features)
        out["features"] = features
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.codec.decode(self(x))


def codec_for(model_cfg: dict, input_size: int) -> RegressionCodec | HeatmapCodec | JointCodec:
    """The codec a ``ModelConfig`` (as a dict) implies: it makes the training targets before any model exists."""
    m = model_cfg
    if m["head"] == "regression":
        return RegressionCodec(input_size)
    if m["head"] == "joint":
        return JointCodec(input_size, m["heatmap_stride"], m["sigma"], m["eval_output"])
    return HeatmapCodec(input_size, m["heatmap_stride"], m["sigma"])


def build_model(model_cfg: dict, num_points: int, input_size: int, scheme: str) -> LandmarkNet:
    """Build a LandmarkNet from a ``ModelConfig`` as a dict (the form stored in checkpoints)."""
    m = model_cfg
    backbone = create_backbone(m["backbone"], pretrained=m.get("pretrained", False))
    stride = m["heatmap_stride"]
    head_kind = m["head"]
    if head_kind == "regression":
        head = RegressionHead(backbone.channels[-1], num_points, tuple(m["hidden"]))
    elif head_kind == "heatmap":
        head = HeatmapHead(backbone.channels, backbone.strides, num_points, m["head_channels"], stride)
    elif head_kind == "deconv":
        layers = int(round(math.log2(backbone.strides[-1] / stride)))
        head = DeconvHead(backbone.channels[-1], num_points, m["head_channels"], m["deconv_kernel"], layers)
    elif head_kind == "joint":
        head = JointHead(RegressionHead(backbone.channels[-1], num_points, tuple(m["hidden"])),
                         HeatmapHead(backbone.channels, backbone.strides, num_points, m["head_channels"], stride))
    else:
        raise ValueError(f"unknown head {head_kind!r}")
    codec = codec_for(m, input_size)
    card = {"scheme": scheme, "num_points": num_points, "input_size": input_size, "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD), "backbone": m["backbone"], "head": head_kind, "codec": codec.card(),
            "model": dict(m)}
    if backbone.weights is not None:  # provenance of the starting weights, for the model card
        card["init"] = {k: v for k, v in backbone.weights.items() if k != "left_out"}
    elif m.get("pretrained") is True:
        card["init"] = {"source": f"timm pretrained weights of {m['backbone']}"}
    return LandmarkNet(backbone, head, codec, card)


def model_from_card(card: dict) -> LandmarkNet:
    """Rebuild the architecture described by a checkpoint's card (weights not loaded)."""
    model = dict(card["model"], pretrained=False)
    net = build_model(model, card["num_points"], card["input_size"], card["scheme"])
    net.codec = create_codec(card["codec"])
    net.card = dict(card)  # keep everything the card carries (crop policy, precision, provenance)
    return net
