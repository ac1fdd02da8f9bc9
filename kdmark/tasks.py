"""Tasks: an ``nn.Module`` whose ``forward(batch)`` returns ``{"loss": total, "loss_<part>": ..., "output": ...}``.
The training loop only reads ``out["loss"]`` and logs the other scalars. Distillation tasks build on this one."""

from __future__ import annotations

import torch
from torch import nn

from kdmark.losses import CoordLoss, HeatmapLoss
from kdmark.models.landmark_net import LandmarkNet

__all__ = ["SupervisedTask"]


class SupervisedTask(nn.Module):
    """Ground-truth supervision of whatever the model's head outputs:
    ``loss = w_reg * coord_loss(coords) + w_hm * heatmap_loss(heatmaps)`` (each term only when present).

    Each loss averages over the labelled points of the batch; faces without a single labelled point (the
    ``unlabelled=`` faces of a distillation run) count as zeros in a mean over the batch's faces, so a batch of 2
    labelled and 30 unlabelled faces does not weight its 2 faces like a full batch (BENCHMARKS.md, issue 7)."""

    def __init__(self, model: LandmarkNet, coord_loss: nn.Module | None = None,
                 heatmap_loss: nn.Module | None = None, w_reg: float = 1.0, w_hm: float = 1.0):
        super().__init__()
        self.model = model
        self.coord_loss = coord_loss or CoordLoss("wing", scale=model.card["input_size"])
        self.heatmap_loss = heatmap_loss or HeatmapLoss("awing")
        self.w_reg, self.w_hm = w_reg, w_hm

    def supervised(self, output: dict, batch: dict) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "coords" in output:
            losses["loss_coords"] = self.coord_loss(output["coords"], batch["coords"], batch["weights"])
        if "heatmaps" in output:
            losses["loss_heatmaps"] = self.heatmap_loss(output["heatmaps"], batch["heatmaps"], batch["weights"])
        labelled = (batch["weights"].flatten(1) > 0).any(dim=1)
        if not bool(labelled.all()):  # unlabelled faces (``unlabelled=``) count as zeros: a mean over all faces
            share = labelled.float().mean()
            losses = {k: v * share for k, v in losses.items()}
        total = self.w_reg * losses.get("loss_coords", 0.0) + self.w_hm * losses.get("loss_heatmaps", 0.0)
        return {"loss": total, **losses}

    def forward(self, batch: dict) -> dict:
        output = self.model(batch["image"])
        return {**self.supervised(output, batch), "output": output}
