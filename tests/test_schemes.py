"""Landmark schemes: flips are involutions that swap image sides, normalisers, and markup conversions."""

from __future__ import annotations

import numpy as np
import pytest

from kdmark.data import read_dataset
from kdmark.schemes import SCHEMES, SchemeError, convert_points, flip_points, get_scheme, scheme_for_num_points

MIRROR = {"L": "R", "R": "L", "C": "C"}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flip_is_an_involution_that_swaps_sides(name):
    s = SCHEMES[name]
    flip = np.array(s.flip)
    assert (flip[flip] == np.arange(s.num_points)).all()
    for i, j in enumerate(flip):
        assert s.sides[j] == MIRROR[s.sides[i]], f"{name}: point {i} ({s.sides[i]}) flips to {j} ({s.sides[j]})"
    assert len(set(s.point_names)) == s.num_points


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flip_twice_is_identity(name):
    s = SCHEMES[name]
    pts = np.random.default_rng(0).uniform(0, 100, (3, s.num_points, 2))
    np.testing.assert_allclose(flip_points(flip_points(pts, 120, s), 120, s), pts)
    once = flip_points(pts, 120, s)
    np.testing.assert_allclose(once[..., 0], 119 - pts[..., list(s.flip), 0])


def test_literature_constants():
    ibug, wflw, cofw, aflw = (get_scheme(n) for n in ("300w", "wflw", "cofw", "aflw"))
    assert ibug.flip[:17] == tuple(range(16, -1, -1)) and ibug.flip[36:42] == (45, 44, 43, 42, 47, 46)
    assert ibug.normalisers["inter_ocular"].a == (36,) and ibug.normalisers["inter_ocular"].b == (45,)
    assert wflw.flip[96:] == (97, 96) and wflw.normalisers["inter_ocular"].a == (60,)
    assert cofw.normalisers["inter_ocular"].a == (8,) and cofw.normalisers["inter_pupil"].a == (16,)
    assert aflw.default_normaliser == "box" and aflw.default_threshold == 0.07
    assert get_scheme("ibug68") is ibug and scheme_for_num_points(98) is wflw
    with pytest.raises(SchemeError):
        get_scheme("nope")
    with pytest.raises(SchemeError, match="inter_pupil"):
        get_scheme("celeba").normaliser("inter_pupil")


def _side_check(points: np.ndarray, scheme) -> None:
    """On real faces, every image-left point lies left of its flipped partner on average."""
    mean = points.mean(axis=0)
    for i, j in enumerate(scheme.flip):
        if scheme.sides[i] == "L":
            assert mean[i, 0] < mean[j, 0], f"{scheme.name}: point {i} is not left of its partner {j}"


def test_sides_on_real_300w_faces(w300_root):
    ds = read_dataset(w300_root, split="train")
    _side_check(np.stack([s.points for s in ds]), ds.scheme)


def test_sides_on_real_wflw_faces(fixtures_root):
    ds = read_dataset(fixtures_root / "wflw-subsets")
    _side_check(np.stack([s.points for s in ds]), ds.scheme)


@pytest.mark.parametrize("folder", ["mmpose/cofw", "mmpose/aflw", "cofw68"])
def test_sides_on_real_fixture_faces(fixtures_root, folder):
    ds = read_dataset(fixtures_root / folder)
    _side_check(np.stack([s.points for s in ds]), ds.scheme)


def _eyes68() -> np.ndarray:
    gt = np.zeros((68, 2))
    gt[36:42] = [(100, 100), (110, 95), (120, 95), (130, 100), (120, 105), (110, 105)]
    gt[42:48] = [(170, 100), (180, 95), (190, 95), (200, 100), (190, 105), (180, 105)]
    gt[30], gt[48], gt[54] = (150, 140), (120, 170), (180, 170)
    return gt


def test_h_68_to_5():
    five, vis = convert_points(_eyes68(), "300w", "celeba")
    np.testing.assert_allclose(five, [(115, 100), (185, 100), (150, 140), (120, 170), (180, 170)])
    assert vis.all()
    mean6, _ = convert_points(_eyes68(), "300w", "celeba", eye_centre="mean6")
    np.testing.assert_allclose(mean6[:2], [(115, 100), (185, 100)])


def test_conversion_visibility_propagates():
    vis = np.ones(68, bool)
    vis[45] = False
    _, v5 = convert_points(_eyes68(), "300w", "celeba", visible=vis)
    assert v5.tolist() == [True, False, True, True, True]


def test_98_to_68_mapping_rows():
    src = np.random.default_rng(3).uniform(0, 300, (98, 2))
    out, _ = convert_points(src, "wflw", "300w")
    np.testing.assert_allclose(out[:17], src[0:33:2])
    np.testing.assert_allclose(out[[17, 26, 36, 39, 42, 45]], src[[33, 46, 60, 64, 68, 72]])
    np.testing.assert_allclose(out[18], [src[34, 0], (src[34, 1] + src[41, 1]) / 2])
    np.testing.assert_allclose(out[25], [src[45, 0], (src[45, 1] + src[47, 1]) / 2])
    np.testing.assert_allclose(out[37], src[61] * 2 / 3 + src[62] / 3)
    np.testing.assert_allclose(out[47], src[75] * 2 / 3 + src[74] / 3)
    np.testing.assert_allclose(out[48:], src[76:96])


def test_98_to_68_commutes_with_flip_on_real_faces(fixtures_root):
    """Converting then flipping equals flipping then converting: the mapping respects both markups' sides."""
    ds = read_dataset(fixtures_root / "wflw-subsets")
    pts = np.stack([s.points for s in ds.samples[:50]])
    a = flip_points(convert_points(pts, "wflw", "300w")[0], 1000, get_scheme("300w"))
    b = convert_points(flip_points(pts, 1000, get_scheme("wflw")), "wflw", "300w")[0]
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_unknown_conversion():
    with pytest.raises(SchemeError, match="no conversion"):
        convert_points(np.zeros((19, 2)), "aflw", "300w")
    with pytest.raises(SchemeError, match="expected 68"):
        convert_points(np.zeros((98, 2)), "300w", "celeba")
