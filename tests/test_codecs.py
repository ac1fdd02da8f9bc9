"""Every codec: encode -> decode recovers the points (stated tolerances), and frames line up with the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdmark.codecs import HeatmapCodec, JointCodec, OffsetCodec, RegressionCodec, create_codec

RNG = np.random.default_rng(0)
POINTS = RNG.uniform(10, 117, (5, 2)).astype(np.float32)  # sub-pixel points inside a 128 px input
VISIBLE = np.ones(5, np.float32)


def _batch(targets: dict) -> dict:
    return {k: torch.from_numpy(v)[None] for k, v in targets.items()}


def test_regression_round_trip_exact():
    codec = RegressionCodec(128)
    t = codec.encode(POINTS, VISIBLE)
    assert t["coords"].min() > 0 and t["coords"].max() < 1
    pts, scores = codec.decode(_batch(t))
    np.testing.assert_allclose(pts[0].numpy(), POINTS, atol=1e-4)
    # pixel-centre convention: the input's centre pixel (63.5) encodes to 0.5
    assert codec.encode(np.array([[63.5, 63.5]]), np.ones(1))["coords"][0, 0] == pytest.approx(0.5)


@pytest.mark.parametrize("stride, sigma", [(4, 1.5), (4, 1.0), (2, 2.0), (1, 1.5)])
def test_heatmap_round_trip_subpixel(stride, sigma):
    """Tolerance: 0.02 input pixels. The Taylor step is exact for a Gaussian, up to float32 rounding."""
    codec = HeatmapCodec(128, stride, sigma)
    t = codec.encode(POINTS, VISIBLE)
    assert t["heatmaps"].shape == (5, 128 // stride, 128 // stride)
    assert t["heatmaps"].max() <= 1.0
    pts, scores = codec.decode(_batch(t))
    np.testing.assert_allclose(pts[0].numpy(), POINTS, atol=0.02)
    assert (scores > 0.5).all()


def test_heatmap_invisible_points_have_empty_maps():
    t = HeatmapCodec(64, 4).encode(POINTS[:2] / 2, np.array([1.0, 0.0], np.float32))
    assert t["heatmaps"][1].max() == 0 and t["weights"].tolist() == [1.0, 0.0]


def test_heatmap_decode_is_finite_on_degenerate_maps():
    codec = HeatmapCodec(64, 4)
    for maps in (torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16), -torch.rand(1, 3, 16, 16)):
        pts, scores = codec.decode({"heatmaps": maps})
        assert torch.isfinite(pts).all() and torch.isfinite(scores).all()
        assert (pts >= -2).all() and (pts <= 66).all()


def test_joint_codec_and_rebuild_from_card():
    codec = JointCodec(128, 4, 1.5, eval_output="regression")
    t = codec.encode(POINTS, VISIBLE)
    assert set(t) == {"coords", "heatmaps", "weights"}
    pts, _ = codec.decode(_batch(t))
    np.testing.assert_allclose(pts[0].numpy(), POINTS, atol=1e-4)
    for c in (codec, RegressionCodec(96), HeatmapCodec(64, 2, 1.0)):
        assert create_codec(c.card()).card() == c.card()


@pytest.mark.parametrize("stride, radius", [(8, 1), (4, 2), (8, 0)])
def test_offset_round_trip_exact_at_any_grid(stride, radius):
    """PIPNet offsets: the argmax cell plus the offsets read there give the point back exactly (float32 rounding),
    at a coarse stride where a cell is several input pixels, for points anywhere within a cell."""
    codec = OffsetCodec(128, stride, 1.0, radius)
    t = codec.encode(POINTS, VISIBLE)
    size = 128 // stride
    assert t["offsets"].shape == (10, size, size) and t["offset_weights"].shape == (5, size, size)
    assert t["offset_weights"].sum(axis=(1, 2)).max() <= (2 * radius + 1) ** 2
    assert np.isfinite(t["offsets"]).all()
    pts, scores = codec.decode(_batch(t))
    np.testing.assert_allclose(pts[0].numpy(), POINTS, atol=1e-3)
    assert create_codec(codec.card()).card() == codec.card()


def test_offset_targets_hold_the_point_relative_to_each_nearby_cell():
    """A point at input pixel (20.5, 43.5) with stride 8 is at cell ((20.5 + 0.5) / 8 - 0.5, (43.5 + 0.5) / 8 - 0.5)
    = (2.125, 5.0): the cell (2, 5) holds (+0.125, 0), its neighbour (3, 5) holds (-0.875, 0); cells outside the
    radius are 0 and unweighted."""
    t = OffsetCodec(64, 8, 1.0, 1).encode(np.array([[20.5, 43.5]], np.float32), np.ones(1, np.float32))
    off, w = t["offsets"], t["offset_weights"][0]
    assert off[0, 5, 2] == pytest.approx(0.125) and off[1, 5, 2] == pytest.approx(0.0)
    assert off[0, 5, 3] == pytest.approx(-0.875) and off[1, 4, 2] == pytest.approx(1.0) and w[5, 3] == 1
    assert w.sum() == 9 and w[5, 5] == 0 and off[0, 5, 5] == 0


def test_offset_invisible_points_carry_no_offset_weight():
    t = OffsetCodec(64, 8).encode(POINTS[:2] / 2, np.array([1.0, 0.0], np.float32))
    assert t["offset_weights"][1].sum() == 0 and t["offset_weights"][0].sum() == 9
