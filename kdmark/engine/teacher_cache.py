"""Distillation at the cost of training (``kd.cached=true``): each teacher runs once per face, on the unaugmented
crop, before the first step. What a student learns from it is kept small (per point: where, how spread, how sure,
in original-image pixels) and moved with every augmentation by the dataset, which renders the teacher's heatmaps
again in the student's frame (``HeatmapCodec.render``). No teacher runs during training, so a distillation step costs
what a supervised one does; the price is that the teacher sees each face once, unrotated and uncovered, instead of
every augmented view. Measured at equal steps on kdmark-68-s v2 (BENCHMARKS.md, "The zoo campaign", stretch 3):
3.886% held-out NME against online distillation's 3.894%, at 0.68x its wall time; a step still costs 1.2-1.3x a
supervised one (the second heatmap loss), above the 1.15x the issue asks for."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from kdmark.codecs import decode_heatmaps
from kdmark.data.dataset import TeacherTargets, affine_scale
from kdmark.data.transforms import apply_affine

__all__ = ["compute_teacher_targets", "cache_teachers"]


@torch.no_grad()
def compute_teacher_targets(teacher, dataset, batch_size: int = 64, device: torch.device | str = "cpu",
                            progress: bool = False) -> TeacherTargets:
    """Run ``teacher`` (an ``engine.tasks.Teacher`` or a black-box ``PointTeacher``) once over every face of
    ``dataset`` (a ``LandmarkDataset``) without augmentation, and keep its points, spreads and peaks."""
    from tqdm.auto import tqdm

    view = copy.copy(dataset)  # shares the cached crops; no augmentation and no earlier teacher targets
    view.augment, view.teacher_targets = None, []
    loader = DataLoader(view, batch_size=batch_size, shuffle=False, num_workers=0)
    points, sigma, peak = [], [], []
    for batch in tqdm(loader, desc="teacher targets", unit="batch", disable=None if progress else True, leave=False):
        out = teacher(batch["image"].to(device))
        to_image = batch["to_image"].numpy()
        pts = out["points"].float().cpu().numpy()
        points.append(np.stack([apply_affine(p, m) for p, m in zip(pts, to_image)]))
        if "heatmaps" in out:
            heatmaps = out["heatmaps"].float()
            _, _, width, height = decode_heatmaps(heatmaps, spread=True)
            px = width.cpu().numpy() * (view.size / heatmaps.shape[-1])  # heatmap cells -> student input pixels
            sigma.append(px * affine_scale(to_image)[:, None])
            peak.append(height.cpu().numpy())
        else:
            sigma.append(np.full(pts.shape[:2], np.nan, np.float32))
            peak.append(out["scores"].float().cpu().numpy())
    return TeacherTargets(np.concatenate(points).astype(np.float32), np.concatenate(sigma).astype(np.float32),
                          np.concatenate(peak).astype(np.float32))


def cache_teachers(task, data, fabric, batch_size: int = 64, progress: bool = False) -> None:
    """Compute every teacher's targets on ``data.train`` (each process computes all of them: the sampler's split
    changes every epoch), hand them to the dataset, and switch the task to read them from the batch."""
    start = time.perf_counter()
    targets = [compute_teacher_targets(t, data.train, batch_size, fabric.device, progress) for t in task.teachers]
    data.train.teacher_targets = targets
    task.use_cached_teachers(len(targets))
    fabric.print(f"kdmark: {len(targets)} teacher(s) ran once on {len(data.train)} faces in "
                 f"{time.perf_counter() - start:.0f} s (kd.cached=true: no teacher runs during training)")
