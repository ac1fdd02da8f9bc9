"""Every codec: encode -> decode recovers the points (stated tolerances), and frames line up with the input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdmark.codecs import HeatmapCodec, JointCodec, RegressionCodec, create_codec

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
