"""Tasks: an ``nn.Module`` whose ``forward(batch)`` returns ``{"loss": total, "loss_<part>": ..., "output": ...}``.
The training loop only reads ``out["loss"]`` and logs the other scalars. ``SupervisedTask`` learns from the
labels; ``DistillTask`` adds frozen teachers and the distillation terms of :mod:`kdmark.kd_losses`."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdmark.config import TrainConfig
from kdmark.losses import CoordLoss, HeatmapLoss
from kdmark.model import load_model
from kdmark.models.landmark_net import LandmarkNet

__all__ = ["SupervisedTask", "DistillTask", "Teacher", "build_task", "supervised_losses"]


class SupervisedTask(nn.Module):
    """Ground-truth supervision of whatever the model's head outputs:
    ``loss = w_coords * coord_loss(coords) + w_heatmap * heatmap_loss(heatmaps) + w_offsets * L1(offsets)`` (each
    term only when present; the offsets' L1 is over the cells near each labelled point, in cells).

    Each loss averages over the labelled points of the batch; faces without a single labelled point (the
    ``unlabelled=`` faces of a distillation run) count as zeros in a mean over the batch's faces, so a batch of 2
    labelled and 30 unlabelled faces does not weight its 2 faces like a full batch (BENCHMARKS.md, issue 7)."""

    def __init__(self, model: LandmarkNet, coord_loss: nn.Module | None = None,
                 heatmap_loss: nn.Module | None = None, w_coords: float = 1.0, w_heatmap: float = 1.0,
                 w_offsets: float = 1.0):
        super().__init__()
        self.model = model
        self.coord_loss = coord_loss or CoordLoss("wing", scale=model.info.input_size)
        self.heatmap_loss = heatmap_loss or HeatmapLoss("awing")
        self.w_coords, self.w_heatmap, self.w_offsets = w_coords, w_heatmap, w_offsets

    def supervised(self, output: dict, batch: dict) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {}
        if "coords" in output:
            losses["loss_coords"] = self.coord_loss(output["coords"], batch["coords"], batch["weights"])
        if "heatmaps" in output:
            losses["loss_heatmaps"] = self.heatmap_loss(output["heatmaps"], batch["heatmaps"], batch["weights"])
        if "offsets" in output:
            losses["loss_offsets"] = offset_l1(output["offsets"], batch["offsets"], batch["offset_weights"])
        labelled = (batch["weights"].flatten(1) > 0).any(dim=1)
        if not bool(labelled.all()):  # unlabelled faces (``unlabelled=``) count as zeros: a mean over all faces
            share = labelled.float().mean()
            losses = {k: v * share for k, v in losses.items()}
        total = (self.w_coords * losses.get("loss_coords", 0.0) + self.w_heatmap * losses.get("loss_heatmaps", 0.0)
                 + self.w_offsets * losses.get("loss_offsets", 0.0))
        return {"loss": total, **losses}

    def forward(self, batch: dict) -> dict:
        output = self.model(batch["image"])
        return {**self.supervised(output, batch), "output": output}


def offset_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean absolute offset error (in cells) over the weighted cells: ``pred``/``target`` (B, 2K, H, W) with x
    maps first, ``weights`` (B, K, H, W); zero when no cell is weighted."""
    w = torch.cat([weights, weights], dim=1)
    return ((pred - target).abs() * w).sum() / w.sum().clamp_min(1.0)


def supervised_losses(cfg: TrainConfig) -> dict:
    """The supervised terms of a config, as keyword arguments of SupervisedTask (and so of DistillTask)."""
    loss = cfg.loss
    kwargs = {"w": loss.wing_w, "epsilon": loss.wing_epsilon} if loss.coords == "wing" else {}
    return {"coord_loss": CoordLoss(loss.coords, scale=cfg.data.input_size, **kwargs),
            "heatmap_loss": HeatmapLoss(loss.heatmap), "w_coords": cfg.loss.w_coords,
            "w_heatmap": cfg.loss.w_heatmap, "w_offsets": cfg.loss.w_offsets}


def build_task(cfg: TrainConfig, model: LandmarkNet) -> SupervisedTask:
    return SupervisedTask(model, **supervised_losses(cfg))


class Teacher(nn.Module):
    """A frozen teacher around any kdmark checkpoint (or LandmarkNet).

    It always runs in eval mode under ``no_grad``. Inputs are the student's [0, 1] images: each model normalises
    with its own mean/std inside, and images are resized when the teacher was trained at another input size.
    Outputs are mapped to the student's frame: ``coords`` in [0, 1], ``points`` in student input pixels, and
    ``heatmaps`` resized to ``heatmap_size`` when given.
    """

    def __init__(self, model: LandmarkNet | str, student_size: int, heatmap_size: int | None = None):
        super().__init__()
        if not isinstance(model, nn.Module):
            model = load_model(model, backend="torch").net  # a zoo name or a checkpoint
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        info = model.info  # the card, checked once
        self.size, self.student_size, self.heatmap_size = info.input_size, student_size, heatmap_size
        self.num_points = info.num_points

    def train(self, mode: bool = True) -> Teacher:  # noqa: ARG002 - a teacher never leaves eval mode
        return super().train(False)

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.shape[-1] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        out = self.model(image)
        points, scores = self.model.codec.decode(out)
        out["points"] = (points + 0.5) * (self.student_size / self.size) - 0.5
        out["coords"] = (points + 0.5) / self.size
        out["scores"] = scores
        if self.heatmap_size and "heatmaps" in out and out["heatmaps"].shape[-1] != self.heatmap_size:
            out["heatmaps"] = F.interpolate(out["heatmaps"], size=(self.heatmap_size,) * 2, mode="bilinear",
                                            align_corners=False)
        return out


class DistillTask(SupervisedTask):
    """``loss = w_sup * supervised + sum_i weight_i * kd_i(student, teachers, batch)``.

    With every weight 0 (and ``w_sup=1``) it is exactly the supervised task. The ``unlabelled=`` faces count as zeros
    in the supervised mean (see ``SupervisedTask``): weighting a batch's few labelled faces like a full batch swamps
    what the teachers teach on the others (BENCHMARKS.md, issue 7: 10.9% NME against 7.3%).

    Teachers are kept in a plain list, not registered as submodules: Fabric/DDP never wraps them, optimisers never
    see them, checkpoints never hold them.
    """

    def __init__(self, model: LandmarkNet, teachers: list[Teacher], kd: list[tuple[str, float, nn.Module]],
                 w_sup: float = 1.0, warmup_epochs: float = 0.0, decay: str = "none", epochs: float = 0.0,
                 **supervised):
        super().__init__(model, **supervised)
        if decay not in ("none", "linear", "cosine") or (decay != "none" and epochs <= 0):
            raise ValueError(f"distillation decay {decay!r} needs one of none/linear/cosine and epochs > 0")
        self.warmup_epochs, self.decay, self.epochs = warmup_epochs, decay, epochs
        self.set_epoch(0.0)  # sets kd_scale
        self.teachers = list(teachers)
        self.kd_names = [name for name, _, _ in kd]
        self.kd_weights = [float(w) for _, w, _ in kd]
        self.kd = nn.ModuleList(m for _, _, m in kd)  # adapters train with the student
        self.w_sup = w_sup
        self.cached = 0  # > 0: that many teachers' answers come in the batch (kd.cached; engine.teacher_cache)

    def use_cached_teachers(self, n: int) -> None:
        """Read the teachers' answers from the batch (``kd{t}_points`` / ``_scores`` / ``_heatmaps``, made once per
        face and moved with each augmentation) instead of running them; the teachers are let go."""
        self.cached, self.teachers = n, []

    def _cached_outputs(self, batch: dict) -> list[dict]:
        size = batch["image"].shape[-1]
        outs = []
        for t in range(self.cached):
            out = {"points": batch[f"kd{t}_points"], "coords": (batch[f"kd{t}_points"] + 0.5) / size,
                   "scores": batch[f"kd{t}_scores"]}
            if f"kd{t}_heatmaps" in batch:
                out["heatmaps"] = batch[f"kd{t}_heatmaps"]
            outs.append(out)
        return outs

    def set_epoch(self, epoch: float) -> None:
        """Called by the training loop: distillation weights ramp from 0 to full over ``warmup_epochs``, so the
        teacher's term does not swamp the supervised loss while the student's outputs are still random; with
        ``decay`` they then fade to 0 at the last epoch (linear or half-cosine in ``epoch / epochs``), so a teacher
        that speeds up the first epochs does not hold the student to its own errors at the end."""
        ramp = 1.0 if self.warmup_epochs <= 0 else min(1.0, epoch / self.warmup_epochs)
        t = min(max(epoch / self.epochs, 0.0), 1.0) if self.epochs > 0 else 0.0
        fade = {"none": 1.0, "linear": 1.0 - t, "cosine": 0.5 * (1.0 + math.cos(math.pi * t))}[self.decay]
        self.kd_scale = ramp * fade

    def to_teachers(self, device: torch.device) -> None:
        for t in self.teachers:
            t.to(device)

    def forward(self, batch: dict) -> dict:
        output = self.model(batch["image"])
        sup = self.supervised(output, batch)
        result = {**sup, "loss": self.w_sup * sup["loss"], "loss_supervised": sup["loss"]}
        active = [i for i, w in enumerate(self.kd_weights) if w != 0 and self.kd_scale != 0]
        if active:
            teacher_outs = (self._cached_outputs(batch) if self.cached
                            else [t(batch["image"]) for t in self.teachers])
            for i in active:
                term = self.kd[i](output, teacher_outs, batch)
                result[f"loss_kd_{self.kd_names[i]}"] = term
                result["loss"] = result["loss"] + self.kd_scale * self.kd_weights[i] * term
        result["output"] = output
        return result
