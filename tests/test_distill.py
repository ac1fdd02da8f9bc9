"""Distillation losses against values worked by hand, the teacher wrapper's guarantees, and KD weight 0 = plain
supervised training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdmark.asm import ActiveShapeModel
from kdmark.config import ModelConfig, to_dict
from kdmark.engine.tasks import DistillTask, SupervisedTask, Teacher
from kdmark.kd_losses import (
    FeatureAlignedKD,
    FeatureSimilarityKD,
    HeatmapKD,
    KDLoss,
    PooledFeatureKD,
    similarity_matrix,
)
from kdmark.models.landmark_net import build_model


def _kd(p, preset="code"):
    """KD-Loss terms for one coordinate: G = 0, Tough teacher at 0.4, Tolerant teacher at 0.5."""
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    return {k: v.item() for k, v in KDLoss(preset).terms(t(p), t(0.0), t(0.4), t(0.5)).items()}


# Worked by hand from docs/methods.md §1(b), code preset: beta 0.15, so B_tough = 0.06 and B_tol = 0.075;
# alpha = (1.9, -0.45) tough, (1.8, -0.40) tolerant; main = 2 * (3d if d <= 0.5 else d^2 + 3*0.5 - 0.25).
@pytest.mark.parametrize(
    "p, tough, tolerant, main",
    [
        (0.8, 1.9 * 0.4, 1.8 * 0.3, 2 * (0.64 + 1.5 - 0.25)),  # beyond both teachers (R_P)
        (0.2, -0.45 * 0.2, -0.40 * 0.3, 2 * 3 * 0.2),  # between boundary and teacher (R_N)
        (0.03, 0.0, 0.0, 2 * 3 * 0.03),  # inside the boundary (R_L): no assistive pull
        (-0.8, 1.9 * 0.4, 1.8 * 0.3, 2 * (0.64 + 1.5 - 0.25)),  # the other side of G: teachers reflected
    ],
    ids=["beyond-teacher", "between-boundary-and-teacher", "inside-boundary", "reflected"],
)
def test_kd_loss_code_preset_regions(p, tough, tolerant, main):
    got = _kd(p)
    assert got["aloss_tough"] == pytest.approx(tough)
    assert got["aloss_tolerant"] == pytest.approx(tolerant)
    assert got["main"] == pytest.approx(main)


# paper_fig preset: alpha (1, -0.5), beta 0.4 (B_tough = 0.16, B_tol = 0.2), slope 1, ramp in R_L.
@pytest.mark.parametrize(
    "p, tough, tolerant, main",
    [
        (0.8, 0.4, 0.3, 0.64 + 0.5 - 0.25),  # the figure's ALoss 0.4 at P = 0.8
        (0.16, -0.5 * 0.24, -0.5 * (0.16 / 0.2) * 0.34, 0.16),  # the figure's -0.12 at B (tolerant: ramp)
        (0.08, -0.25 * 0.32, -0.5 * (0.08 / 0.2) * 0.42, 0.08),  # ramp: omega = -0.5 |P - G| / |B - G|
    ],
    ids=["beyond-teacher", "at-boundary", "inside-boundary-ramp"],
)
def test_kd_loss_paper_preset_regions(p, tough, tolerant, main):
    got = _kd(p, "paper_fig")
    assert got["aloss_tough"] == pytest.approx(tough)
    assert got["aloss_tolerant"] == pytest.approx(tolerant)
    assert got["main"] == pytest.approx(main)


def test_kd_loss_main_is_continuous_and_masks_carry_no_gradient():
    loss = KDLoss("code")
    g, tu, tl = torch.zeros(1, 1), torch.full((1, 1), 0.4), torch.full((1, 1), 0.5)
    below = loss.terms(torch.full((1, 1), 0.5 - 1e-7), g, tu, tl)["main"]
    above = loss.terms(torch.full((1, 1), 0.5 + 1e-7), g, tu, tl)["main"]
    assert below.item() == pytest.approx(above.item(), abs=1e-5)
    p = torch.full((1, 1), 0.8, requires_grad=True)
    loss.terms(p, g, tu, tl)["aloss_tough"].backward()
    assert p.grad.item() == pytest.approx(1.9)  # d/dP of 1.9 * |0.4 - P| at P = 0.8: the mask is a constant


def test_feature_similarity_by_hand():
    s = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, C=2, H=1, W=2): positions (1, 0) and (0, 1)
    t = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]])  # positions (1, 0) and (2, 0): parallel
    assert similarity_matrix(s)[0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    loss = FeatureSimilarityKD()({"head_features": [s]}, [{"head_features": [t]}], {})
    assert loss.item() == pytest.approx(2 / 4)  # two off-diagonal differences of 1, over (HW)^2 = 4


def test_pooled_feature_by_hand():
    kd = PooledFeatureKD(2, 2, side="student")
    with torch.no_grad():
        kd.adapter.weight.copy_(torch.eye(2) * 2)
    s = torch.ones(1, 2, 2, 2)  # pooled (1, 1) -> adapter (2, 2)
    t = torch.zeros(1, 2, 2, 2)
    t[0, 0] = 4.0  # pooled (4, 0)
    loss = kd({"features": [s]}, [{"features": [t]}], {})
    assert loss.item() == pytest.approx(((2 - 4) ** 2 + (2 - 0) ** 2) / 2)


def test_feature_aligned_by_hand():
    kd = FeatureAlignedKD([1], [1]).eval()
    with torch.no_grad():
        kd.adapters[0][0].weight.fill_(2.0)
    s, t = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 3.0)
    expected = (3.0 - 2.0 / (1 + 1e-5) ** 0.5) ** 2  # eval BN: mean 0, variance 1, eps 1e-5
    assert kd({"head_features": [s]}, [{"head_features": [t]}], {}).item() == pytest.approx(expected)


def test_heatmap_kd_by_hand():
    s, t = torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    t[0, 0, 0, 0] = 3.0
    t[1, 0, 1, 1] = 4.0
    assert HeatmapKD("mse")({"heatmaps": s}, [{"heatmaps": t}], {}).item() == pytest.approx((9 + 16) / 8)
    assert HeatmapKD("l2sum")({"heatmaps": s}, [{"heatmaps": t}], {}).item() == pytest.approx((3 + 4) / 2)


def test_heatmap_kd_awing_uses_the_teachers_maps_as_the_awing_target():
    # the hand-worked map of test_losses.test_adaptive_wing_by_hand, with the teacher's map as the target
    teacher = torch.zeros(1, 1, 3, 3)
    teacher[0, 0, 1, 1] = 1.0
    student = torch.full((1, 1, 3, 3), 0.2)
    student[0, 0, 1, 1] = 0.3
    expected = 11 * (7.320027929831665 + 8 * 0.4688125297770733) / 9
    kd = HeatmapKD("awing")
    assert kd({"heatmaps": student}, [{"heatmaps": teacher}], {}).item() == pytest.approx(expected, rel=1e-6)
    assert kd({"heatmaps": teacher}, [{"heatmaps": teacher}], {}).item() == pytest.approx(0.0, abs=1e-7)


def _net(head="heatmap", seed=0):
    torch.manual_seed(seed)
    return build_model(to_dict(ModelConfig(backbone="mobilenetv2_050", head=head, head_channels=16, hidden=(16,))),
                       5, 64, "celeba")


def _batch(model, n=4):
    torch.manual_seed(1)
    pts = np.random.default_rng(0).uniform(10, 50, (n, 5, 2))
    targets = [model.codec.encode(p, np.ones(5)) for p in pts]
    return {"image": torch.rand(n, 3, 64, 64)} | {k: torch.stack([torch.from_numpy(np.asarray(t[k]))
                                                                  for t in targets]).float() for k in targets[0]}


def test_teacher_is_frozen_and_outside_the_task():
    teacher = Teacher(_net(seed=1), student_size=64, heatmap_size=16)
    teacher.train()
    assert not teacher.model.training
    student = _net()
    task = DistillTask(student, [teacher], [("heatmap", 100.0, HeatmapKD())])
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    opt = torch.optim.SGD(task.parameters(), lr=0.1)
    out = task(_batch(student))
    out["loss"].backward()
    opt.step()
    assert all(p.grad is None for p in teacher.model.parameters())
    assert not any(p is q for p in task.parameters() for q in teacher.model.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.model.state_dict().items())
    assert out["loss_kd_heatmap"] > 0


def test_channels_last_reaches_the_frozen_teachers_and_changes_no_output():
    from kdmark.engine.loop import to_channels_last

    teacher = Teacher(_net(seed=1), student_size=64, heatmap_size=16)
    student = _net()
    task = DistillTask(student, [teacher], [("heatmap", 1.0, HeatmapKD())])
    batch = _batch(student)
    before = task(batch)["loss"]
    to_channels_last(task)
    convs = [m.weight for m in (*student.modules(), *teacher.modules()) if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs if w.shape[-1] > 1)
    assert torch.allclose(task(batch)["loss"], before, rtol=1e-4)


def test_kd_weight_zero_is_exactly_supervised_training():
    student_a, student_b = _net("joint"), _net("joint")
    teacher = Teacher(_net("joint", seed=3), 64, 16)
    batch = _batch(student_a)
    sup = SupervisedTask(student_a)
    kd = DistillTask(student_b, [teacher], [("heatmap", 0.0, HeatmapKD()), ("kd_loss", 0.0, KDLoss("code", 0, 0))])
    la, lb = sup(batch)["loss"], kd(batch)["loss"]
    assert torch.equal(la, lb)
    la.backward()
    lb.backward()
    for (na, pa), (_, pb) in zip(student_a.named_parameters(), student_b.named_parameters()):
        assert torch.equal(pa.grad, pb.grad), na


def test_student_identical_to_teacher_gives_zero_feature_and_heatmap_loss():
    student = _net("deconv").eval()
    teacher = Teacher(student, 64, 16)
    batch = _batch(student)
    with torch.no_grad():
        s_out, t_out = student(batch["image"]), teacher(batch["image"])
    assert HeatmapKD()(s_out, [t_out], batch).item() == 0
    assert FeatureSimilarityKD()(s_out, [t_out], batch).item() == pytest.approx(0, abs=1e-10)


def _shapes(n=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 1, (10, 2))
    return np.stack([base * rng.uniform(80, 120) + rng.uniform(0, 50, 2) + rng.normal(0, 0.02, (10, 2)) * 100
                     for _ in range(n)])


@pytest.mark.parametrize("procrustes", [False, True])
def test_asm_reconstructs_exactly_at_full_variance(procrustes):
    """With p = 100% every mode is kept: a training shape comes back exactly unless a coefficient lies beyond
    3 sd, where the model clips it by design."""
    shapes = _shapes()
    asm = ActiveShapeModel(1.0, procrustes=procrustes).fit(shapes)
    inside = np.abs(asm.z_scores(shapes)).max(axis=1) <= 3
    assert inside.sum() >= 10
    np.testing.assert_allclose(asm.project(shapes[inside]), shapes[inside], atol=1e-8)


@pytest.mark.parametrize("variance", [0.5, 0.85, 0.9, 0.97])
def test_asm_keeps_the_modes_the_threshold_implies(variance):
    shapes = _shapes()
    asm = ActiveShapeModel(variance).fit(shapes)
    centred = np.stack([((s - (s.min(0) + s.max(0)) / 2) / (s.max(0) - s.min(0)).max()).ravel() for s in shapes])
    eig = np.linalg.eigvalsh(np.cov(centred.T))[::-1]
    ratios = np.cumsum(eig / eig.sum())
    assert asm.num_modes == int(np.argmax(ratios >= variance - 1e-12)) + 1
    soft = asm.project(shapes)
    err = np.abs(soft - shapes).mean()
    assert 0 < err < np.abs(shapes - shapes.mean(0)).mean()  # smoother, still the same faces


def test_supervised_weight_zero_leaves_only_the_distillation_terms():
    """KD-Loss contains its own main loss, so its recipes set w_sup=0: the total is then the KD term alone."""
    student = _net("joint")
    teacher = Teacher(_net("joint", seed=3), 64, 16)
    batch = _batch(student)
    out = DistillTask(student, [teacher, teacher], [("kd_loss", 1.0, KDLoss("code", 0, 1))], w_sup=0.0)(batch)
    assert out["loss_supervised"] > 0
    assert torch.equal(out["loss"], 0.0 * out["loss_supervised"] + out["loss_kd_kd_loss"])


def test_distillation_weight_warmup_ramps_linearly():
    student = _net()
    teacher = Teacher(_net(seed=1), 64, 16)
    batch = _batch(student)
    task = DistillTask(student, [teacher], [("heatmap", 100.0, HeatmapKD())], warmup_epochs=2.0)
    task.set_epoch(0.0)
    out = task(batch)
    assert "loss_kd_heatmap" not in out and torch.equal(out["loss"], out["loss_supervised"])
    task.set_epoch(1.0)
    out = task(batch)
    expected = out["loss_supervised"] + 0.5 * 100.0 * out["loss_kd_heatmap"]
    assert torch.allclose(out["loss"], expected)
    task.set_epoch(5.0)
    assert task.kd_scale == 1.0


def test_distillation_weight_decay_fades_to_zero_at_the_last_epoch():
    student = _net()
    teacher = Teacher(_net(seed=1), 64, 16)
    batch = _batch(student)
    linear = DistillTask(student, [teacher], [("heatmap", 100.0, HeatmapKD())], decay="linear", epochs=10)
    cosine = DistillTask(student, [teacher], [("heatmap", 100.0, HeatmapKD())], decay="cosine", epochs=10,
                         warmup_epochs=2.0)
    for epoch, lin, cos in [(0.0, 1.0, 0.0), (1.0, 0.9, 0.5 * 0.5 * (1 + math.cos(math.pi * 0.1))),
                            (5.0, 0.5, 0.5), (7.5, 0.25, 0.5 * (1 + math.cos(math.pi * 0.75))), (10.0, 0.0, 0.0)]:
        linear.set_epoch(epoch)
        cosine.set_epoch(epoch)
        assert linear.kd_scale == pytest.approx(lin) and cosine.kd_scale == pytest.approx(cos)
    linear.set_epoch(2.5)
    out = linear(batch)
    assert torch.allclose(out["loss"], out["loss_supervised"] + 0.75 * 100.0 * out["loss_kd_heatmap"])
    linear.set_epoch(10.0)
    out = linear(batch)  # faded out: the teacher is not even run
    assert "loss_kd_heatmap" not in out and torch.equal(out["loss"], out["loss_supervised"])
    with pytest.raises(ValueError, match="decay"):
        DistillTask(student, [teacher], [("heatmap", 1.0, HeatmapKD())], decay="linear")
