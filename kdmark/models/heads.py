"""Heads. Each takes the backbone's feature list and returns a dict of outputs:
``coords`` (B, K, 2) in [0, 1] and/or ``heatmaps`` (B, K, H, W), plus ``head_features`` for distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RegressionHead", "HeatmapHead", "OffsetHead", "DeconvHead", "JointHead"]


def conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class RegressionHead(nn.Module):
    """Global average pooling -> [FC-BN-ReLU] x len(hidden) -> FC(2K) -> sigmoid (Appl. Sci. 2024)."""

    def __init__(self, in_channels: int, num_points: int, hidden: tuple[int, ...] = (256,)):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for h in hidden:
            layers += [nn.Linear(c, h, bias=False), nn.BatchNorm1d(h), nn.ReLU(True)]
            c = h
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(c, 2 * num_points)
        self.num_points = num_points

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled = features[-1].mean(dim=(2, 3))
        hidden = self.mlp(pooled)
        coords = torch.sigmoid(self.out(hidden)).reshape(-1, self.num_points, 2)
        return {"coords": coords, "head_features": [pooled]}


class HeatmapHead(nn.Module):
    """Bilinear x2 upsampling + Conv-BN-ReLU stages from the deepest feature down to ``stride``, adding a 1x1
    lateral projection of the backbone feature of the same stride at each stage, then a 1x1 conv to K sigmoid
    heatmaps (Appl. Sci. 2024 heatmap branch, with FPN-style laterals so fine detail reaches the heatmaps)."""

    def __init__(self, channels: list[int], strides: list[int], num_points: int, width: int = 96, stride: int = 4):
        super().__init__()
        self.strides = strides
        self.inp = conv_bn_relu(channels[-1], width, 1)
        self.stages = nn.ModuleList()
        self.laterals = nn.ModuleDict()
        s = strides[-1]
        while s > stride:
            s //= 2
            self.stages.append(conv_bn_relu(width, width))
            if s in strides:
                self.laterals[str(s)] = nn.Conv2d(channels[strides.index(s)], width, 1)
        self.out = nn.Conv2d(width, num_points, 1)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.inp(features[-1])
        stage_features = []
        s = self.strides[-1]
        for stage in self.stages:
            s //= 2
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
            if str(s) in self.laterals:
                lateral = self.laterals[str(s)](features[self.strides.index(s)])
                if x.shape[-2:] != lateral.shape[-2:]:  # an input that is not a multiple of 32 (e.g. 120 px)
                    x = x[..., : lateral.shape[-2], : lateral.shape[-1]]
                x = x + lateral
            x = stage(x)
            stage_features.append(x)
        return {"heatmaps": torch.sigmoid(self.out(x)), "head_features": stage_features}


class OffsetHead(HeatmapHead):
    """PIPNet-style coarse heatmap with offsets (Jin et al., IJCV 2021): the HeatmapHead's trunk, K heatmaps and a
    1x1 conv to 2K maps that hold, at each cell near a point, the point's position relative to that cell (x then
    y, in cells). The decoded point is the argmax cell plus its offsets, so precision does not hang on the grid:
    a coarser stride (fewer upsampling stages) keeps sub-pixel points at fewer MACs."""

    def __init__(self, channels: list[int], strides: list[int], num_points: int, width: int = 96, stride: int = 8):
        super().__init__(channels, strides, num_points, width, stride)
        self.offsets = nn.Conv2d(width, 2 * num_points, 1)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = super().forward(features)
        out["offsets"] = self.offsets(out["head_features"][-1])
        return out


class DeconvHead(nn.Module):
    """MobileFAN / SimpleBaseline decoder: ``n`` x [ConvTranspose(k, s2) + BN + ReLU] from the deepest feature,
    then a 1x1 conv to K heatmaps (no activation). Weights N(0, 0.001) as in both papers' code."""

    def __init__(self, in_channels: int, num_points: int, width: int = 128, kernel: int = 2, layers: int = 3):
        super().__init__()
        pad, out_pad = {2: (0, 0), 3: (1, 1), 4: (1, 0)}[kernel]
        self.deconvs = nn.ModuleList()
        c = in_channels
        for _ in range(layers):
            self.deconvs.append(nn.Sequential(
                nn.ConvTranspose2d(c, width, kernel, stride=2, padding=pad, output_padding=out_pad, bias=False),
                nn.BatchNorm2d(width), nn.ReLU(True)))
            c = width
        self.out = nn.Conv2d(width, num_points, 1)
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d | nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        x, stage_features = features[-1], []
        for deconv in self.deconvs:
            x = deconv(x)
            stage_features.append(x)
        return {"heatmaps": self.out(x), "head_features": stage_features}


class JointHead(nn.Module):
    """Regression and heatmap heads on one backbone (Appl. Sci. 2024): both outputs, trained together."""

    def __init__(self, regression: RegressionHead, heatmap: HeatmapHead):
        super().__init__()
        self.regression, self.heatmap = regression, heatmap

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        reg, hm = self.regression(features), self.heatmap(features)
        return {"coords": reg["coords"], "heatmaps": hm["heatmaps"],
                "head_features": reg["head_features"] + hm["head_features"]}
