"""``kdmark.train(cfg)`` and ``kdmark.distill(cfg)``: one run set-up (``engine.setup.prepare``) and one loop
(``engine.loop.fit``), with or without frozen teachers and distillation terms."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from kdmark.config import DistillConfig, TrainConfig
from kdmark.engine.loop import fit
from kdmark.engine.setup import Data, RunResult, cache_faces, claim_run, prepare, readable_samples
from kdmark.engine.tasks import DistillTask, Teacher, build_task, supervised_losses
from kdmark.engine.teacher_cache import cache_teachers
from kdmark.errors import DatasetError, TrainingError
from kdmark.kd_losses import FeatureAlignedKD, FeatureSimilarityKD, HeatmapKD, KDLoss, PooledFeatureKD
from kdmark.models.landmark_net import LandmarkNet

__all__ = ["train", "distill", "build_kd_terms", "add_unlabelled", "make_teacher"]


def train(cfg: TrainConfig) -> RunResult:
    """Train a landmark detector as ``cfg`` says; returns where the checkpoints are and the best metrics.

    Example:
        >>> cfg = load_config(TrainConfig, "recipes/300w_mbv2_heatmap.yaml", ["data.root=../shared/data/300w"])
        >>> result = kdmark.train(cfg)
        >>> result.best_checkpoint
    """
    run = prepare(cfg)
    cache_faces(run.cfg, run.data, run.fabric)
    with claim_run(run.cfg, run.fabric, run.data) as out:  # only now: a run failing on its inputs leaves others be
        return fit(run.cfg, run.fabric, build_task(run.cfg, run.model), run.model, run.data, out)


def add_unlabelled(cfg: DistillConfig, data: Data) -> Data:
    """Append ``cfg.unlabelled``'s faces to ``data``'s training set (in place; returns ``data``) with every point
    marked missing: they add zeros to the supervised losses (a mean over the batch's faces, see ``SupervisedTask``)
    and the distillation terms, which compare the student with its teachers, see every face. Refused for KD-Loss, whose
    regions are drawn around the truth."""
    from kdmark.data import read_dataset

    if not cfg.unlabelled:
        return data
    if cfg.kd.w_kd_loss:
        raise TrainingError("unlabelled faces cannot be distilled with KD-Loss (kd.w_kd_loss): it needs the ground "
                            "truth of every face")
    ds = read_dataset(cfg.unlabelled, split=cfg.unlabelled_split, scheme=data.scheme, skip_bad=cfg.data.skip_bad)
    samples = readable_samples(ds.samples, cfg.data.skip_bad)
    if not samples:
        raise DatasetError(cfg.unlabelled, "no unlabelled faces to distil on")
    data.train.samples = data.train.samples + [dataclasses.replace(s, visible=np.zeros_like(s.visible))
                                               for s in samples]  # appended: cached crops keep their indices
    return data


def make_teacher(spec: str, cfg: DistillConfig, codec, heatmap_size: int):
    """A checkpoint teacher, or a black box (``dlib``, ``mediapipe[:MAP.npz]``) that teaches through its points."""
    from kdmark.teachers import PointTeacher, is_black_box, make_landmarker

    if is_black_box(spec):
        return PointTeacher(make_landmarker(spec), cfg.data.input_size, cfg.data.margin, codec)
    return Teacher(spec, cfg.data.input_size, heatmap_size)


def _black_box(teacher, term: str) -> None:
    if getattr(teacher, "black_box", False):
        raise TrainingError(f"teacher {teacher.name} is a black box (points only): kd.w_{term} needs a teacher's "
                            "features; use a checkpoint teacher for it, or distil points or heatmaps (kd.w_heatmap)")


def _channels(model: LandmarkNet, which: str, size: int) -> list[int]:
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 3, size, size))
    model.train()
    return [f.shape[1] for f in out[which]]


def build_kd_terms(cfg: DistillConfig, student: LandmarkNet, teachers: list[Teacher]) -> list[tuple]:
    """(name, weight, module) for every distillation term the config switches on."""
    k = cfg.kd
    terms = []
    need = max([k.teacher] + ([k.tough, k.tolerant] if k.w_kd_loss else []))
    if need >= len(teachers):
        raise TrainingError(f"the distillation terms use teacher {need}, but {len(teachers)} teacher(s) are given "
                            "(set teachers=[a.ckpt, ...])")
    size = cfg.data.input_size
    if k.w_kd_loss:
        if student.info.head not in ("regression", "joint"):
            raise TrainingError("KD-Loss distils coordinates: the student needs a regression or joint head")
        terms.append(("kd_loss", k.w_kd_loss, KDLoss(k.kd_loss_preset, k.tough, k.tolerant)))
    teacher = teachers[k.teacher] if teachers else None
    for term in ("pooled_feature", "feature_aligned", "feature_similarity"):
        if getattr(k, f"w_{term}"):
            _black_box(teacher, term)
            if k.cached:
                raise TrainingError(f"kd.cached=true keeps the teachers' points and heatmaps, not their features: "
                                    f"kd.w_{term} needs the teacher at every step; set kd.cached=false")
    if k.w_pooled_feature:
        t_ch = _channels(teacher.model, "features", teacher.size)[-1]
        s_ch = student.backbone.channels[-1]
        terms.append(("pooled_feature", k.w_pooled_feature, PooledFeatureKD(s_ch, t_ch, k.pooled_adapter, k.teacher)))
    if k.w_feature_aligned:
        s_ch = _channels(student, "head_features", size)
        t_ch = _channels(teacher.model, "head_features", teacher.size)
        if len(s_ch) != len(t_ch):
            raise TrainingError(f"feature-aligned distillation pairs decoder stages: the student has {len(s_ch)}, "
                                f"the teacher {len(t_ch)}")
        terms.append(("feature_aligned", k.w_feature_aligned, FeatureAlignedKD(s_ch, t_ch, k.teacher)))
    if k.w_feature_similarity:
        terms.append(("feature_similarity", k.w_feature_similarity, FeatureSimilarityKD(k.teacher)))
    if k.w_heatmap:
        terms.append(("heatmap", k.w_heatmap, HeatmapKD(k.heatmap_kind, k.teacher)))
    return terms


def distill(cfg: DistillConfig) -> RunResult:
    """Train a student with frozen teachers (``cfg.teachers``) and the distillation terms of ``cfg.kd``.

    Example:
        >>> cfg = load_config(DistillConfig, "recipes/300w_mbv2_heatmap.yaml",
        ...                   ["teachers=[kdmark-68-teacher]", "kd.w_heatmap=1", "kd.heatmap_kind=awing"])
        >>> kdmark.distill(cfg).best_checkpoint
    """
    run = prepare(cfg)
    fabric, cfg, data, student = run.fabric, run.cfg, add_unlabelled(run.cfg, run.data), run.model
    heatmap_size = cfg.data.input_size // cfg.model.heatmap_stride
    teachers = [make_teacher(spec, cfg, student.codec, heatmap_size) for spec in cfg.teachers]
    for spec, t in zip(cfg.teachers, teachers):
        if t.num_points != data.scheme.num_points:
            raise TrainingError(f"{spec}: a {t.num_points}-point teacher cannot teach {data.scheme.name} points")
    task = DistillTask(student, teachers, build_kd_terms(cfg, student, teachers), cfg.kd.w_sup, cfg.kd.warmup_epochs,
                       cfg.kd.decay, cfg.epochs, **supervised_losses(cfg))
    task.to_teachers(fabric.device)
    cache_faces(cfg, data, fabric)
    if cfg.kd.cached and teachers:
        cache_teachers(task, data, fabric, progress=cfg.progress and fabric.is_global_zero)
    with claim_run(cfg, fabric, data) as out:  # only now: a run that fails on its inputs leaves an earlier run be
        return fit(cfg, fabric, task, student, data, out)
