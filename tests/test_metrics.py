"""docs/datasets.md §8 worked examples, asserted to the stated precision."""

from __future__ import annotations

import numpy as np
import pytest

from kdmark.metrics import (
    MetricError,
    auc,
    auc_san,
    ced_curve,
    compute_metrics,
    failure_rate,
    nme_per_image,
    nme_pooled,
    normaliser_distances,
    plot_ced,
)

GT4 = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], float)
PRED4 = GT4 + np.array([[3, 4], [0, 0], [6, 8], [1, 0]], float)


def test_a_core_nme():
    d = np.array([np.linalg.norm(GT4[0] - GT4[1])])
    assert nme_per_image(PRED4[None], GT4[None], d)[0] == pytest.approx(0.04, abs=1e-12)


def test_b_masked_nme():
    vis = np.array([[1, 1, 0, 1]], bool)
    assert nme_per_image(PRED4[None], GT4[None], np.array([100.0]), vis)[0] == pytest.approx(0.02, abs=1e-12)


def test_c_per_image_vs_pooled():
    # image 1: one valid point at normalised error 0.10; image 2: four valid points at 0.02 each
    gt = np.zeros((2, 4, 2))
    pred = gt.copy()
    pred[0, 0, 0] = 10.0
    pred[1, :, 0] = 2.0
    vis = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], bool)
    norm = np.array([100.0, 100.0])
    assert nme_per_image(pred, gt, norm, vis).mean() == pytest.approx(0.06, abs=1e-12)
    assert nme_pooled(pred, gt, norm, vis) == pytest.approx(0.036, abs=1e-12)


def _eyes68() -> np.ndarray:
    gt = np.random.default_rng(0).uniform(50, 250, size=(68, 2))
    gt[36:42] = [(100, 100), (110, 95), (120, 95), (130, 100), (120, 105), (110, 105)]
    gt[42:48] = [(170, 100), (180, 95), (190, 95), (200, 100), (190, 105), (180, 105)]
    return gt


def test_d_300w_inter_ocular_and_inter_pupil():
    gt = _eyes68()[None]
    assert normaliser_distances(gt, "300w", "inter_ocular")[0] == pytest.approx(100.0)
    assert normaliser_distances(gt, "300w", "inter_pupil")[0] == pytest.approx(70.0)
    pred = gt.copy()
    pred[0, :34] += (3, 4)
    pred[0, 34:] += (6, 8)
    m_io, _ = compute_metrics(pred, gt, "300w")
    m_ip, _ = compute_metrics(pred, gt, "300w", normaliser="inter_pupil")
    assert m_io.nme == pytest.approx(0.075, abs=1e-12)
    assert m_ip.nme == pytest.approx(0.107142857, abs=1e-9)
    uniform = gt + (3, 4)
    assert compute_metrics(uniform, gt, "300w")[0].nme == pytest.approx(0.05, abs=1e-12)
    assert compute_metrics(uniform, gt, "300w", "inter_pupil")[0].nme == pytest.approx(0.0714285714, abs=1e-10)


@pytest.mark.parametrize(
    "scheme, k, io_pair, pupil_pair",
    [("wflw", 98, (60, 72), (96, 97)), ("cofw", 29, (8, 9), (16, 17))],
)
def test_e_other_markups(scheme, k, io_pair, pupil_pair):
    gt = np.random.default_rng(1).uniform(50, 250, size=(1, k, 2))
    gt[0, io_pair[0]], gt[0, io_pair[1]] = (100, 100), (200, 100)
    gt[0, pupil_pair[0]], gt[0, pupil_pair[1]] = (115, 100), (185, 100)
    pred = gt + (3, 4)
    assert compute_metrics(pred, gt, scheme)[0].nme == pytest.approx(0.05, abs=1e-12)
    assert compute_metrics(pred, gt, scheme, "inter_pupil")[0].nme == pytest.approx(0.0714285714, abs=1e-10)
    # COFW occlusion flags do not change the standard number: visibility is not passed by default


def test_e_aflw_box_normalisers():
    gt = np.random.default_rng(2).uniform(100, 200, size=(1, 19, 2))
    pred = gt + (3, 4)
    x1, x2, y1, y2 = 100, 300, 50, 250  # AFLWinfo row order [x1, x2, y1, y2]
    square = np.array([[x1, y1, x2, y2]], float)
    assert compute_metrics(pred, gt, "aflw", boxes=square)[0].nme == pytest.approx(0.025, abs=1e-12)
    rect = np.array([[100, 50, 300, 200]], float)
    assert compute_metrics(pred, gt, "aflw", boxes=rect)[0].nme == pytest.approx(0.0288675135, abs=1e-10)
    assert compute_metrics(pred, gt, "aflw", "box_max_side", boxes=rect)[0].nme == pytest.approx(0.025)
    assert compute_metrics(pred, gt, "aflw", "box_diagonal", boxes=rect)[0].nme == pytest.approx(0.02)


def test_e_celeba_row_000001():
    gt = np.array([[[69, 109], [106, 113], [77, 142], [73, 152], [108, 154]]], float)
    assert normaliser_distances(gt, "celeba")[0] == pytest.approx(37.2155881, abs=1e-7)
    assert compute_metrics(gt + (3, 4), gt, "celeba")[0].nme == pytest.approx(0.1343523037, abs=1e-10)


NMES_F = np.array([0.02005, 0.04005, 0.06005, 0.12])


def test_f_failure_rate():
    assert failure_rate(NMES_F, 0.1) == 0.25
    assert failure_rate(NMES_F, 0.08) == 0.25
    assert failure_rate(NMES_F, 0.05) == 0.5


def test_f_auc_coarse_hand_check():
    xs, ys = ced_curve(NMES_F, 0.1, step=0.025)
    np.testing.assert_allclose(xs, [0, 0.025, 0.05, 0.075, 0.1])
    np.testing.assert_allclose(ys, [0, 0.25, 0.5, 0.75, 0.75])
    assert auc(NMES_F, 0.1, step=0.025) == pytest.approx(0.4791666667, abs=1e-10)


def test_f_auc_reference_grid():
    assert auc(NMES_F, 0.1) == pytest.approx(0.44975, abs=1e-9)
    assert auc(NMES_F, 0.08) == pytest.approx(0.3746875, abs=1e-9)
    continuous = np.clip(0.1 - NMES_F, 0, None).sum() / (len(NMES_F) * 0.1)
    assert continuous == pytest.approx(0.449625)
    assert abs(auc(NMES_F, 0.1) - continuous) < 1e-3


def test_grid_pitfall_kept_exactly():
    xs, _ = ced_curve(NMES_F, 0.1)
    assert len(xs) == 1001 and xs[-1] == pytest.approx(0.1)
    xs, _ = ced_curve(NMES_F, 0.08)
    assert len(xs) == 801 and xs[-1] == pytest.approx(0.08)
    xs, _ = ced_curve(NMES_F, 0.07)
    assert len(xs) == 702 and xs[-1] == pytest.approx(0.0701)
    xs, _ = ced_curve(NMES_F, 0.05)
    assert len(xs) == 502 and xs[-1] == pytest.approx(0.0501)


def test_f_san_variant():
    assert auc_san(NMES_F, 0.08) == pytest.approx(0.3746248124, abs=1e-9)
    assert auc_san(NMES_F, 0.07) == pytest.approx(0.3209729865, abs=1e-9)


def test_g_box_normaliser_from_landmarks_is_not_inter_ocular():
    gt = np.array([[[312.411702, 57.357609], [416.568957, 166.942542]]])
    box = np.concatenate([gt.min(1), gt.max(1)], 1)
    # HRNet centre/scale from the landmark box (docs/datasets.md §1.4 / §8 G)
    center = ((np.floor(box[0, 0]) + np.ceil(box[0, 2])) / 2, (np.floor(box[0, 1]) + np.ceil(box[0, 3])) / 2)
    scale = max(np.ceil(box[0, 2]) - np.floor(box[0, 0]), np.ceil(box[0, 3]) - np.floor(box[0, 1])) / 200
    assert center == (364.5, 112.0) and scale == pytest.approx(0.55)


def test_zero_normaliser_is_an_error_naming_the_image():
    gt = np.zeros((2, 68, 2))
    gt[0] = _eyes68()
    with pytest.raises(MetricError, match="faceB"):
        normaliser_distances(gt, "300w", keys=["faceA", "faceB"])


def test_shape_mismatch_is_an_error():
    with pytest.raises(MetricError):
        nme_per_image(np.zeros((1, 68, 2)), np.zeros((1, 98, 2)), np.ones(1))


def test_perfect_prediction_scores_perfectly():
    gt = _eyes68()[None].repeat(3, 0)
    m, per = compute_metrics(gt, gt, "300w")
    assert m.nme == 0 and m.fr == 0 and m.auc == pytest.approx(1.0, abs=1e-3)
    assert per.shape == (3,)


def test_plot_ced_writes_png(tmp_path):
    out = plot_ced({"a": NMES_F, "b": NMES_F / 2}, 0.1, tmp_path / "ced.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
