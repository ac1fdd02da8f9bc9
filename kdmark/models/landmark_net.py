"""LandmarkNet = backbone + head + codec, and the model card that travels with its weights."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdmark.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard
from kdmark.codecs import HeatmapCodec, JointCodec, OffsetCodec, RegressionCodec, create_codec
from kdmark.models.backbones import create_backbone
from kdmark.models.heads import DeconvHead, HeatmapHead, JointHead, OffsetHead, RegressionHead

__all__ = ["LandmarkNet", "build_model", "codec_for", "HEADS", "IMAGENET_MEAN", "IMAGENET_STD"]


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

    @property
    def info(self) -> ModelCard:
        """The card, typed and checked (``kdmark.ModelCard``): what every other module reads of a model. ``card`` is
        the stored form (a dict) that checkpoints and ONNX metadata hold."""
        return ModelCard.from_dict(self.card, "model")

    def set_crop(self, margin: float, use_box: bool) -> None:
        """Record how faces are cropped for this model (its box margin, and whether a dataset's box is used), so
        inference crops as training did."""
        self.card["crop"] = {"margin": margin, "use_box": use_box}


def _heatmap_codec(m: dict, size: int) -> HeatmapCodec:
    return HeatmapCodec(size, m["heatmap_stride"], m["sigma"])


def _regression_head(m: dict, backbone, k: int) -> nn.Module:
    return RegressionHead(backbone.channels[-1], k, tuple(m["hidden"]))


def _heatmap_head(m: dict, backbone, k: int) -> nn.Module:
    return HeatmapHead(backbone.channels, backbone.strides, k, m["head_channels"], m["heatmap_stride"])


def _offset_head(m: dict, backbone, k: int) -> nn.Module:
    return OffsetHead(backbone.channels, backbone.strides, k, m["head_channels"], m["heatmap_stride"])


def _deconv_head(m: dict, backbone, k: int) -> nn.Module:
    layers = int(round(math.log2(backbone.strides[-1] / m["heatmap_stride"])))
    return DeconvHead(backbone.channels[-1], k, m["head_channels"], m["deconv_kernel"], layers)


def _joint_head(m: dict, backbone, k: int) -> nn.Module:
    return JointHead(_regression_head(m, backbone, k), _heatmap_head(m, backbone, k))


# ONE table pairs each head (``model.head``) with the codec that makes its targets and decodes its outputs:
# name -> (head builder (model config, backbone, points), codec builder (model config, input size))
HEADS = {
    "regression": (_regression_head, lambda m, size: RegressionCodec(size)),
    "heatmap": (_heatmap_head, _heatmap_codec),
    "offset": (_offset_head, lambda m, size: OffsetCodec(size, m["heatmap_stride"], m["sigma"])),
    "deconv": (_deconv_head, _heatmap_codec),
    "joint": (_joint_head, lambda m, size: JointCodec(size, m["heatmap_stride"], m["sigma"], m["eval_output"])),
}


def _entry(head: str):
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
    return HEADS[head]


def codec_for(model_cfg: dict, input_size: int) -> RegressionCodec | HeatmapCodec | JointCodec:
    """The codec a ``ModelConfig`` (as a dict) implies: it makes the training targets before any model exists."""
    return _entry(model_cfg["head"])[1](model_cfg, input_size)


def build_model(model_cfg: dict, num_points: int, input_size: int, scheme: str) -> LandmarkNet:
    """Build a LandmarkNet from a ``ModelConfig`` as a dict (the form stored in checkpoints)."""
    m = model_cfg
    backbone = create_backbone(m["backbone"], pretrained=m.get("pretrained", False))
    head_kind = m["head"]
    head = _entry(head_kind)[0](m, backbone, num_points)
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
