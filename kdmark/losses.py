"""Supervised landmark losses, each a functional form and an ``nn.Module`` (kornia style).

Coordinate losses take (B, K, 2) predictions and targets and optional (B, K) weights (0 for missing or
occluded points); heatmap losses take (B, K, H, W) maps and optional (B, K) weights. All reduce to a mean over
the weighted elements.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "coord_mse", "coord_l1", "coord_smooth_l1", "wing_loss", "adaptive_wing_loss", "heatmap_mse",
    "CoordLoss", "HeatmapLoss", "COORD_LOSSES", "HEATMAP_LOSSES",
]


def _weighted_mean(per_elem: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, K, ...) values over the elements whose (B, K) weight is non-zero."""
    if weights is None:
        return per_elem.mean()
    w = weights.to(per_elem.dtype).reshape(weights.shape + (1,) * (per_elem.dim() - weights.dim()))
    w = w.expand_as(per_elem)
    return (per_elem * w).sum() / w.sum().clamp_min(1e-12)


def coord_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over coordinates (Appl. Sci. loss1)."""
    return _weighted_mean((pred - target) ** 2, weights)


def coord_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    return _weighted_mean((pred - target).abs(), weights)


def coord_smooth_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                    beta: float = 1.0) -> torch.Tensor:
    return _weighted_mean(F.smooth_l1_loss(pred, target, reduction="none", beta=beta), weights)


def wing_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
              w: float = 10.0, epsilon: float = 2.0) -> torch.Tensor:
    """Wing loss (Feng et al., CVPR 2018): ``w ln(1 + |x|/eps)`` below ``w``, ``|x| - C`` above, per coordinate."""
    x = (pred - target).abs()
    c = w - w * math.log(1 + w / epsilon)
    return _weighted_mean(torch.where(x < w, w * torch.log1p(x / epsilon), x - c), weights)


def adaptive_wing_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
                       omega: float = 14.0, theta: float = 0.5, epsilon: float = 1.0, alpha: float = 2.1,
                       map_weight: float = 10.0, map_threshold: float = 0.2) -> torch.Tensor:
    """Adaptive Wing loss on heatmaps (Wang et al., ICCV 2019) with its weight map
    ``map_weight * [maxpool3x3(target) >= map_threshold] + 1`` (the form Hong & Lin use)."""
    y, d = target, (pred - target).abs()
    power = alpha - y
    ratio = theta / epsilon
    a = omega * (1 / (1 + ratio**power)) * power * ratio ** (power - 1) / epsilon
    c = theta * a - omega * torch.log1p(ratio**power)
    loss = torch.where(d < theta, omega * torch.log1p((d / epsilon) ** power), a * d - c)
    mask = (F.max_pool2d(y, 3, stride=1, padding=1) >= map_threshold).to(loss.dtype)
    return _weighted_mean(loss * (map_weight * mask + 1), weights)


heatmap_mse = coord_mse  # the same mean squared error, over every heatmap pixel (Appl. Sci. loss2, MobileFAN L_MSE)


COORD_LOSSES = {"mse": coord_mse, "l1": coord_l1, "smooth_l1": coord_smooth_l1, "wing": wing_loss}
HEATMAP_LOSSES = {"mse": heatmap_mse, "awing": adaptive_wing_loss}


class CoordLoss(nn.Module):
    """A coordinate loss applied in input pixels: [0, 1] coordinates are multiplied by ``scale`` first, so Wing's
    ``w`` and ``epsilon`` keep their published pixel meaning whatever the input size."""

    def __init__(self, kind: str = "wing", scale: float = 1.0, **kwargs: float):
        super().__init__()
        self.fn, self.scale, self.kwargs, self.kind = COORD_LOSSES[kind], scale, kwargs, kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(pred * self.scale, target * self.scale, weights, **self.kwargs)


class HeatmapLoss(nn.Module):
    def __init__(self, kind: str = "awing", **kwargs: float):
        super().__init__()
        self.fn, self.kwargs, self.kind = HEATMAP_LOSSES[kind], kwargs, kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(pred, target, weights, **self.kwargs)
