"""The four seed methods' distillation losses. Each is an ``nn.Module`` called as
``loss(student_out, teacher_outs, batch)``; ``engine.tasks.DistillTask`` adds ``sum(weight * loss)`` to the
supervised loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdmark.losses import adaptive_wing_loss

__all__ = ["KDLoss", "KDPreset", "KD_PRESETS", "PooledFeatureKD", "FeatureAlignedKD", "FeatureSimilarityKD",
           "HeatmapKD", "kd_loss_regions", "similarity_matrix"]


@dataclass(frozen=True)
class KDPreset:
    """KD-Loss constants (docs/methods.md §1(b)): ``code`` follows the authors' code, ``paper_fig`` their figures."""

    alpha_tough: tuple[float, float]  # (alpha in R_P, alpha- in R_N)
    alpha_tolerant: tuple[float, float]
    beta: float
    l1_slope: float
    ramp: bool  # paper figures: omega ramps from alpha- at B to 0 at G inside R_L
    w_main: float
    w_tough: float
    w_tolerant: float


KD_PRESETS = {
    "code": KDPreset((1.9, -0.45), (1.8, -0.40), 0.15, 3.0, False, 2.0, 1.0, 1.0),
    "paper_fig": KDPreset((1.0, -0.5), (1.0, -0.5), 0.4, 1.0, True, 1.0, 1.0, 1.0),
}


@torch.no_grad()
def kd_loss_regions(p: torch.Tensor, g: torch.Tensor, t: torch.Tensor, alpha: tuple[float, float], beta: float,
                    ramp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(omega weights, reflected teacher T') per coordinate, computed without gradients.

    T' = G + s|T - G| and B = G + s beta |T - G| with s = sign(P - G). omega = alpha in R_P (student beyond T'),
    alpha- in R_N (student between B and T'), 0 in R_L (between G and B), or a ramp there with ``ramp``.
    """
    s = torch.sign(p - g)
    gap = (t - g).abs()
    t_ref, b = g + s * gap, g + s * beta * gap
    omega = alpha[0] * (torch.sign(p - t_ref) * torch.sign(t_ref - g) > 0).to(p.dtype)
    omega = omega + alpha[1] * (torch.sign(t_ref - p) * torch.sign(p - b) >= 0).to(p.dtype)
    if ramp:
        inner = (p - g).abs() < (b - g).abs()
        omega = torch.where(inner, alpha[1] * (p - g).abs() / (b - g).abs().clamp_min(1e-12), omega)
    return omega, t_ref


class KDLoss(nn.Module):
    """Fard & Mahoor's KD-Loss = Loss_Main + ALoss_Tough + ALoss_Tolerant on regression coordinates.

    Coordinates are the codec's [0, 1] crop coordinates (the authors' (112 - x)/224 labels differ only by sign and
    offset, which this element-wise loss does not see). ``tough`` and ``tolerant`` index the run's teachers.
    """

    def __init__(self, preset: str | KDPreset = "code", tough: int = 0, tolerant: int = 1):
        super().__init__()
        self.preset = KD_PRESETS[preset] if isinstance(preset, str) else preset
        self.tough, self.tolerant = tough, tolerant

    def terms(self, p: torch.Tensor, g: torch.Tensor, t_tough: torch.Tensor,
              t_tol: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.preset
        out = {}
        for name, t, alpha, w in (("tough", t_tough, c.alpha_tough, c.w_tough),
                                  ("tolerant", t_tol, c.alpha_tolerant, c.w_tolerant)):
            omega, t_ref = kd_loss_regions(p, g, t, alpha, c.beta, c.ramp)
            out[f"aloss_{name}"] = w * (omega * (t_ref - p).abs()).mean()
        phi, d = (g - t_tol).abs().detach(), (g - p).abs()
        main = torch.where(d <= phi, c.l1_slope * d, d * d + c.l1_slope * phi - phi * phi)
        out["main"] = c.w_main * main.mean()
        return out

    def forward(self, student: dict, teachers: list[dict], batch: dict) -> torch.Tensor:
        t = self.terms(student["coords"], batch["coords"], teachers[self.tough]["coords"],
                       teachers[self.tolerant]["coords"])
        return t["main"] + t["aloss_tough"] + t["aloss_tolerant"]


class PooledFeatureKD(nn.Module):
    """Appl. Sci. 2024 loss3: MSE between globally pooled backbone features through 1x1 adapters.

    ``side="student"`` (default) projects the student's pooled feature to the teacher's width (FitNets): the
    teacher's feature is a fixed target, so the loss cannot be lowered by shrinking both sides. ``side="teacher"``
    projects the teacher to the student's width, the reading of the paper's normalisation by C_m.
    """

    def __init__(self, student_channels: int, teacher_channels: int, side: str = "student", teacher: int = 0):
        super().__init__()
        self.side, self.teacher = side, teacher
        cin, cout = (student_channels, teacher_channels) if side == "student" else (teacher_channels, student_channels)
        self.adapter = nn.Linear(cin, cout, bias=False)  # a 1x1 convolution on a pooled vector

    def forward(self, student: dict, teachers: list[dict], batch: dict) -> torch.Tensor:
        s = student["features"][-1].mean(dim=(2, 3))
        t = teachers[self.teacher]["features"][-1].mean(dim=(2, 3))
        if self.side == "student":
            s = self.adapter(s)
        else:
            t = self.adapter(t)
        return F.mse_loss(s, t)


def _resize_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return x if x.shape[-2:] == ref.shape[-2:] else F.interpolate(x, size=ref.shape[-2:], mode="bilinear",
                                                                  align_corners=False)


class FeatureAlignedKD(nn.Module):
    """MobileFAN L_FA: per decoder stage, an adapter Conv1x1 (no bias) + BN + ReLU maps the student's stage output
    to the teacher's width, then MSE to the teacher's stage output; summed over stages. Each stage has its own
    adapter (the public code's third stage reuses the second's: not reproduced)."""

    def __init__(self, student_channels: list[int], teacher_channels: list[int], teacher: int = 0):
        super().__init__()
        self.teacher = teacher
        self.adapters = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cs, ct, 1, bias=False), nn.BatchNorm2d(ct), nn.ReLU(inplace=True))
            for cs, ct in zip(student_channels, teacher_channels))

    def forward(self, student: dict, teachers: list[dict], batch: dict) -> torch.Tensor:
        total = 0.0
        for adapter, s, t in zip(self.adapters, student["head_features"], teachers[self.teacher]["head_features"]):
            total = total + F.mse_loss(adapter(s), _resize_like(t, s))
        return total


def similarity_matrix(f: torch.Tensor) -> torch.Tensor:
    """(B, HW, HW) cosine similarities between the feature vectors at every pair of spatial positions."""
    q = f.flatten(2)  # (B, C, HW)
    norms = q.norm(dim=1)  # (B, HW)
    return q.transpose(1, 2) @ q / (norms[:, :, None] * norms[:, None, :] + 1e-9)


class FeatureSimilarityKD(nn.Module):
    """MobileFAN L_FS: per stage, sum over position pairs of the squared difference of the student's and the
    teacher's cosine-similarity matrices, divided by (HW)^2, averaged over the batch; summed over stages. Raw
    student features (no adapter): the matrices are (HW)x(HW) whatever the channel counts."""

    def __init__(self, teacher: int = 0):
        super().__init__()
        self.teacher = teacher

    def forward(self, student: dict, teachers: list[dict], batch: dict) -> torch.Tensor:
        total = 0.0
        for s, t in zip(student["head_features"], teachers[self.teacher]["head_features"]):
            a_s, a_t = similarity_matrix(s), similarity_matrix(_resize_like(t, s))
            hw = a_s.shape[-1]
            total = total + ((a_s - a_t) ** 2).sum(dim=(1, 2)).mean() / hw**2
        return total


class HeatmapKD(nn.Module):
    """Hong & Lin: the teacher's heatmaps supervise the student's. ``kind="mse"`` is their code (mean squared
    error, weighted 100 there); ``kind="l2sum"`` the paper's sum over images and landmarks of L2 distances;
    ``kind="awing"`` (kdmark's) the Adaptive Wing loss with the teacher's maps as the target, i.e. the loss the
    heatmaps are supervised with (weight ~1): MSE spreads its pull over the background and barely shapes the
    peaks, so a student taught by MSE alone stays far behind its teacher (see BENCHMARKS.md)."""

    def __init__(self, kind: str = "mse", teacher: int = 0):
        super().__init__()
        self.kind, self.teacher = kind, teacher

    def forward(self, student: dict, teachers: list[dict], batch: dict) -> torch.Tensor:
        s = student["heatmaps"]
        t = _resize_like(teachers[self.teacher]["heatmaps"], s)
        if self.kind == "mse":
            return F.mse_loss(s, t)
        if self.kind == "awing":
            return adaptive_wing_loss(s, t)
        return (s - t).flatten(2).norm(dim=-1).sum() / s.shape[0]
