"""Cached distillation (kd.cached=true, issue 26 item 3): a teacher's answer computed once per face and moved with
each augmentation must be the answer a perfect teacher would give on the augmented view, and the run must never
call its teacher during training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdmark.codecs import HeatmapCodec, decode_heatmaps
from kdmark.config import DistillConfig, load_config
from kdmark.data import read_dataset
from kdmark.data.dataset import Augment, LandmarkDataset, TeacherTargets, affine_scale
from kdmark.engine.tasks import Teacher
from kdmark.engine.teacher_cache import compute_teacher_targets
from kdmark.errors import TrainingError
from kdmark.jobs.train import distill
from tests.test_train import TINY


def test_spread_of_a_gaussian_is_exact():
    codec = HeatmapCodec(64, stride=4, sigma=1.5)
    pts = np.array([[20.3, 31.7], [40.0, 12.2]], np.float32)
    for sigma_px in (4.0, 7.2):  # 1.0 and 1.8 heatmap cells
        maps = torch.from_numpy(codec.render(pts, np.full(2, sigma_px), np.array([1.0, 0.7])))[None]
        uv, grid_peak, width, height = decode_heatmaps(maps, spread=True)
        assert width.numpy() == pytest.approx(np.full((1, 2), sigma_px / 4), abs=1e-4)
        assert ((uv[0].numpy() + 0.5) * 4 - 0.5) == pytest.approx(pts, abs=1e-3)
        assert height[0].numpy() == pytest.approx([1.0, 0.7], abs=1e-4)
        assert (grid_peak[0].numpy() < height[0].numpy() + 1e-6).all()


def test_render_with_the_codec_sigma_is_the_codec_target():
    codec = HeatmapCodec(64, stride=4, sigma=1.5)
    pts = np.random.default_rng(0).uniform(5, 58, (68, 2)).astype(np.float32)
    want = codec.encode(pts, np.ones(68, bool))["heatmaps"]
    assert np.allclose(codec.render(pts, np.full(68, np.nan), np.ones(68)), want, atol=1e-6)
    assert np.allclose(codec.render(pts, np.full(68, 1.5 * 4), np.ones(68)), want, atol=1e-6)


@pytest.fixture(scope="module")
def faces(w300_root):
    ds = read_dataset(w300_root, split="train")
    return ds.samples[:6], ds.scheme


def test_moved_targets_follow_every_augmentation(faces):
    """A teacher that answered the truth on the unaugmented crop: after rotation, scale, shift and flip its moved
    points are the augmented truth, its heatmaps the codec's targets, and its spreads scale with the zoom."""
    samples, scheme = faces
    codec = HeatmapCodec(64, 4, 1.5)
    ds = LandmarkDataset(samples, scheme, codec, 64, augment=Augment(flip=1.0))
    n, k = len(samples), scheme.num_points
    ds.teacher_targets = [TeacherTargets(np.stack([s.points for s in samples]).astype(np.float32),
                                         np.full((n, k), np.nan, np.float32), np.ones((n, k), np.float32)),
                          TeacherTargets(np.stack([s.points for s in samples]).astype(np.float32),
                                         np.full((n, k), 10.0, np.float32), np.full((n, k), 0.5, np.float32))]
    for i in range(n):
        item = ds[i]
        assert torch.allclose(item["kd0_points"], item["points"], atol=1e-3)
        assert torch.allclose(item["kd0_heatmaps"], item["heatmaps"], atol=1e-5)
        full = np.linalg.inv(np.vstack([item["to_image"].numpy(), [0, 0, 1]]))[:2]
        _, _, width, _ = decode_heatmaps(item["kd1_heatmaps"][None], spread=True)
        want = np.clip(10.0 * affine_scale(full) / 4, 0.75, 4.5)
        uv = (item["points"].numpy() + 0.5) / 4 - 0.5
        inside = ((uv > 1) & (uv < 14)).all(axis=1)  # the 16-cell map's border replicates: no exact fit there
        assert inside.sum() > k / 2
        assert width[0].numpy()[inside] == pytest.approx(np.full(inside.sum(), want), rel=1e-3)
        assert item["kd1_scores"].max().item() == 0.5


def test_computed_targets_are_the_teachers_answer_on_the_crop(tiny_checkpoint, faces):
    samples, scheme = faces
    teacher = Teacher(str(tiny_checkpoint), 64, 16)
    ds = LandmarkDataset(samples, scheme, teacher.model.codec, 64)
    targets = compute_teacher_targets(teacher, ds, batch_size=4)
    ds.teacher_targets = [targets]
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    out = teacher(batch["image"])
    assert torch.allclose(batch["kd0_points"], out["points"], atol=1e-3)
    _, _, width, height = decode_heatmaps(out["heatmaps"], spread=True)
    assert torch.allclose(batch["kd0_scores"], height, atol=1e-6)
    ok = torch.isfinite(width) & (width > 0.75) & (width < 4.5)
    _, _, got, got_height = decode_heatmaps(batch["kd0_heatmaps"], spread=True)
    assert torch.allclose(got[ok], width[ok], rtol=1e-3)
    assert torch.allclose(got_height[ok], height[ok], rtol=1e-3)


def _tiny(w300_root, tmp_path, teacher, *extra):
    return load_config(DistillConfig, None, [f"data.root={w300_root}", f"out_dir={tmp_path}", *TINY, "epochs=1",
                                             f"teachers=[{teacher}]", "kd.w_heatmap=1", "kd.heatmap_kind=awing",
                                             *extra])


def test_cached_run_never_calls_its_teacher(w300_root, tiny_checkpoint, tmp_path, monkeypatch):
    calls = {"n": 0}
    forward = Teacher.forward

    def counted(self, image):
        calls["n"] += 1
        return forward(self, image)

    monkeypatch.setattr(Teacher, "forward", counted)
    result = distill(_tiny(w300_root, tmp_path / "cached", tiny_checkpoint, "kd.cached=true"))
    before_training = calls["n"]
    assert before_training == 1  # 24 faces, one batch of 64: the teacher ran once, before training
    assert result.best_checkpoint.exists()
    distill(_tiny(w300_root, tmp_path / "online", tiny_checkpoint))
    assert calls["n"] - before_training == 3  # online: once per step (24 faces, batch 8)


def test_cached_refuses_feature_terms(w300_root, tiny_checkpoint, tmp_path):
    cfg = _tiny(w300_root, tmp_path, tiny_checkpoint, "kd.cached=true", "kd.w_pooled_feature=1")
    with pytest.raises(TrainingError, match="kd.cached=true keeps the teachers' points"):
        distill(cfg)
    assert not (tmp_path / "config.yaml").exists()
