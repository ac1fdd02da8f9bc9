"""Landmark schemes: point names, image sides, flip permutations, NME normalisers and conversions.

Every index here is 0-based. "l"/"r" in point names mean *image*-left/right (the viewer's side), which is the
subject's right/left; iBUG and AFLW names follow the subject, so read them mirrored. The flip permutations and
normaliser indices are the ones in ``docs/datasets.md`` (mmpose = HRNet = STAR), pinned by tests.

Example:
    >>> from kdmark.schemes import get_scheme
    >>> s = get_scheme("300w")
    >>> s.num_points, s.flip[36], s.normalisers["inter_ocular"].a
    (68, 45, (36,))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from kdmark.errors import SchemeError

__all__ = [
    "LandmarkScheme",
    "Normaliser",
    "SCHEMES",
    "IBUG_68",
    "WFLW_98",
    "COFW_29",
    "AFLW_19",
    "CELEBA_5",
    "get_scheme",
    "scheme_for_num_points",
    "convert_points",
    "flip_points",
    "with_tta",
    "TTA",
]


@dataclass(frozen=True)
class Normaliser:
    """How the NME denominator ``d`` of one image is computed.

    ``kind="points"``: distance between the mean of ground-truth points ``a`` and the mean of points ``b``
    (a single index each gives the classic inter-ocular distance). ``kind="box"``: a size of a box, either the
    sample's face box (``source="box"``) or the tight box around the ground-truth landmarks
    (``source="landmarks"``, the JD-landmark protocol); ``box_size`` picks sqrt(w*h), max(w, h) or the diagonal.
    """

    kind: Literal["points", "box"]
    a: tuple[int, ...] = ()
    b: tuple[int, ...] = ()
    source: Literal["box", "landmarks"] = "box"
    box_size: Literal["sqrt_area", "max_side", "diagonal"] = "sqrt_area"

    def distance(self, gt: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """Per-image normaliser of ground truth ``gt`` (N, K, 2) and optional ``boxes`` (N, 4) as x0, y0, x1, y1."""
        gt = np.asarray(gt, dtype=np.float64)
        if self.kind == "points":
            pa = gt[:, list(self.a)].mean(axis=1)
            pb = gt[:, list(self.b)].mean(axis=1)
            return np.linalg.norm(pa - pb, axis=-1)
        if self.source == "landmarks":
            boxes = np.concatenate([gt.min(axis=1), gt.max(axis=1)], axis=-1)
        if boxes is None:
            raise SchemeError("this normaliser needs face boxes, and the samples have none")
        boxes = np.asarray(boxes, dtype=np.float64)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        if self.box_size == "sqrt_area":
            return np.sqrt(np.clip(w * h, 0, None))
        if self.box_size == "max_side":
            return np.maximum(w, h)
        return np.hypot(w, h)


_BOX_NORMALISERS = {
    "box": Normaliser("box"),
    "box_max_side": Normaliser("box", box_size="max_side"),
    "box_diagonal": Normaliser("box", box_size="diagonal"),
    "landmark_box": Normaliser("box", source="landmarks"),
}


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark markup: ``num_points`` named points, their image side, and how to flip and normalise them.

    ``flip`` is the horizontal-flip permutation, ``new[i] = old[flip[i]]``; ``sides`` holds "L", "C" or "R"
    (image-left, centre, image-right) per point. ``default_normaliser`` and ``default_threshold`` are the
    literature's usual protocol for datasets of this markup (docs/datasets.md §7).
    """

    name: str
    point_names: tuple[str, ...]
    sides: str
    flip: tuple[int, ...]
    normalisers: dict[str, Normaliser] = field(hash=False)
    default_normaliser: str
    default_threshold: float
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        k = len(self.point_names)
        if not (len(self.sides) == len(self.flip) == k):
            raise SchemeError(f"scheme {self.name}: names, sides and flip must all have {k} entries")
        if sorted(self.flip) != list(range(k)):
            raise SchemeError(f"scheme {self.name}: flip is not a permutation")

    @property
    def num_points(self) -> int:
        return len(self.point_names)

    def normaliser(self, name: str | None = None) -> Normaliser:
        """The normaliser called ``name`` (default: this scheme's usual one)."""
        name = name or self.default_normaliser
        try:
            return self.normalisers[name]
        except KeyError:
            raise SchemeError(
                f"scheme {self.name} has no normaliser {name!r}; choose one of {sorted(self.normalisers)}"
            ) from None


def _names(*groups: tuple[str, int]) -> tuple[str, ...]:
    """Expand ``("jaw", 17)`` style groups into numbered names; a count of 1 keeps the bare name."""
    out: list[str] = []
    for stem, n in groups:
        out.extend([stem] if n == 1 else [f"{stem}_{i}" for i in range(n)])
    return tuple(out)


def _pupils(a: tuple[int, ...], b: tuple[int, ...]) -> Normaliser:
    return Normaliser("points", a, b)


def _build_ibug68() -> LandmarkScheme:
    names = _names(
        ("jaw", 17),
        ("brow_l", 5), ("brow_r", 5),
        ("nose_bridge", 4),
        ("nose_l_alar", 1), ("nose_l", 1), ("nose_base", 1), ("nose_r", 1), ("nose_r_alar", 1),
        ("eye_l_outer", 1), ("eye_l_upper_outer", 1), ("eye_l_upper_inner", 1), ("eye_l_inner", 1),
        ("eye_l_lower_inner", 1), ("eye_l_lower_outer", 1),
        ("eye_r_inner", 1), ("eye_r_upper_inner", 1), ("eye_r_upper_outer", 1), ("eye_r_outer", 1),
        ("eye_r_lower_outer", 1), ("eye_r_lower_inner", 1),
        ("mouth_l_corner", 1), ("lip_upper_l_outer", 1), ("lip_upper_l", 1), ("lip_upper_top", 1),
        ("lip_upper_r", 1), ("lip_upper_r_outer", 1), ("mouth_r_corner", 1), ("lip_lower_r_outer", 1),
        ("lip_lower_r", 1), ("lip_lower_bottom", 1), ("lip_lower_l", 1), ("lip_lower_l_outer", 1),
        ("mouth_inner_l_corner", 1), ("lip_inner_upper_l", 1), ("lip_inner_upper", 1), ("lip_inner_upper_r", 1),
        ("mouth_inner_r_corner", 1), ("lip_inner_lower_r", 1), ("lip_inner_lower", 1), ("lip_inner_lower_l", 1),
    )
    sides = "L" * 8 + "C" + "R" * 8 + "L" * 5 + "R" * 5 + "C" * 4 + "LLCRR" + "L" * 6 + "R" * 6
    sides += "LLLCRRRRRCLL" + "LLCRRRCL"
    flip = (
        list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
        + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
        + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
    )
    norms = {
        "inter_ocular": _pupils((36,), (45,)),
        "inter_pupil": _pupils(tuple(range(36, 42)), tuple(range(42, 48))),
        **_BOX_NORMALISERS,
    }
    return LandmarkScheme("300w", names, sides, tuple(flip), norms, "inter_ocular", 0.08,
                          aliases=("ibug68", "ibug", "68", "300vw", "menpo68", "cofw68"))


def _build_wflw98() -> LandmarkScheme:
    names = _names(
        ("contour", 33),
        ("brow_l_outer", 1), ("brow_l_upper", 3), ("brow_l_inner", 1), ("brow_l_lower", 4),
        ("brow_r_inner", 1), ("brow_r_upper", 3), ("brow_r_outer", 1), ("brow_r_lower", 4),
        ("nose_bridge", 4),
        ("nose_l_alar", 1), ("nose_l", 1), ("nose_base", 1), ("nose_r", 1), ("nose_r_alar", 1),
        ("eye_l_outer", 1), ("eye_l_upper", 3), ("eye_l_inner", 1), ("eye_l_lower", 3),
        ("eye_r_inner", 1), ("eye_r_upper", 3), ("eye_r_outer", 1), ("eye_r_lower", 3),
        ("mouth_l_corner", 1), ("lip_upper_l", 2), ("lip_upper_top", 1), ("lip_upper_r", 2),
        ("mouth_r_corner", 1), ("lip_lower_r", 2), ("lip_lower_bottom", 1), ("lip_lower_l", 2),
        ("mouth_inner_l_corner", 1), ("lip_inner_upper_l", 1), ("lip_inner_upper", 1), ("lip_inner_upper_r", 1),
        ("mouth_inner_r_corner", 1), ("lip_inner_lower_r", 1), ("lip_inner_lower", 1), ("lip_inner_lower_l", 1),
        ("pupil_l", 1), ("pupil_r", 1),
    )
    sides = "L" * 16 + "C" + "R" * 16 + "L" * 9 + "R" * 9 + "C" * 4 + "LLCRR" + "L" * 8 + "R" * 8
    sides += "LLLCRRRRRCLL" + "LLCRRRCL" + "LR"
    flip = (
        list(range(32, -1, -1)) + [46, 45, 44, 43, 42, 50, 49, 48, 47] + [37, 36, 35, 34, 33, 41, 40, 39, 38]
        + [51, 52, 53, 54] + [59, 58, 57, 56, 55]
        + [72, 71, 70, 69, 68, 75, 74, 73] + [64, 63, 62, 61, 60, 67, 66, 65]
        + [82, 81, 80, 79, 78, 77, 76, 87, 86, 85, 84, 83] + [92, 91, 90, 89, 88, 95, 94, 93] + [97, 96]
    )
    norms = {"inter_ocular": _pupils((60,), (72,)), "inter_pupil": _pupils((96,), (97,)), **_BOX_NORMALISERS}
    return LandmarkScheme("wflw", names, sides, tuple(flip), norms, "inter_ocular", 0.1, aliases=("wflw98", "98"))


def _build_cofw29() -> LandmarkScheme:
    names = (
        "brow_l_outer", "brow_r_outer", "brow_l_inner", "brow_r_inner", "brow_l_top", "brow_l_bottom",
        "brow_r_top", "brow_r_bottom", "eye_l_outer", "eye_r_outer", "eye_l_inner", "eye_r_inner",
        "eye_l_top", "eye_l_bottom", "eye_r_top", "eye_r_bottom", "pupil_l", "pupil_r", "nose_l_alar",
        "nose_r_alar", "nose_tip", "nose_base", "mouth_l_corner", "mouth_r_corner", "lip_upper_top",
        "lip_upper_bottom", "lip_lower_top", "lip_lower_bottom", "chin",
    )
    sides = "LRLRLLRRLRLRLLRRLRLRCCLRCCCCC"
    flip = (1, 0, 3, 2, 6, 7, 4, 5, 9, 8, 11, 10, 14, 15, 12, 13, 17, 16, 19, 18, 20, 21, 23, 22, 24, 25, 26, 27, 28)
    norms = {"inter_ocular": _pupils((8,), (9,)), "inter_pupil": _pupils((16,), (17,)), **_BOX_NORMALISERS}
    return LandmarkScheme("cofw", names, sides, flip, norms, "inter_ocular", 0.1, aliases=("cofw29", "29"))


def _build_aflw19() -> LandmarkScheme:
    names = (
        "brow_l_outer", "brow_l_centre", "brow_l_inner", "brow_r_inner", "brow_r_centre", "brow_r_outer",
        "eye_l_outer", "eye_l_centre", "eye_l_inner", "eye_r_inner", "eye_r_centre", "eye_r_outer",
        "nose_l", "nose_tip", "nose_r", "mouth_l_corner", "mouth_centre", "mouth_r_corner", "chin",
    )
    sides = "LLLRRRLLLRRRLCRLCRC"
    flip = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 14, 13, 12, 17, 16, 15, 18)
    norms = {**_BOX_NORMALISERS, "inter_ocular": _pupils((6,), (11,)), "inter_pupil": _pupils((7,), (10,))}
    return LandmarkScheme("aflw", names, sides, flip, norms, "box", 0.07, aliases=("aflw19", "19"))


def _build_celeba5() -> LandmarkScheme:
    names = ("eye_l", "eye_r", "nose_tip", "mouth_l_corner", "mouth_r_corner")
    norms = {"inter_ocular": _pupils((0,), (1,)), **_BOX_NORMALISERS}
    return LandmarkScheme("celeba", names, "LRCLR", (1, 0, 2, 4, 3), norms, "inter_ocular", 0.1,
                          aliases=("celeba5", "5", "mafl"))


IBUG_68 = _build_ibug68()
WFLW_98 = _build_wflw98()
COFW_29 = _build_cofw29()
AFLW_19 = _build_aflw19()
CELEBA_5 = _build_celeba5()
SCHEMES: dict[str, LandmarkScheme] = {s.name: s for s in (IBUG_68, WFLW_98, COFW_29, AFLW_19, CELEBA_5)}


def get_scheme(name: str | LandmarkScheme) -> LandmarkScheme:
    """Look a scheme up by name or alias ("300w", "ibug68", "wflw", "cofw", "aflw", "celeba")."""
    if isinstance(name, LandmarkScheme):
        return name
    key = str(name).lower()
    for scheme in SCHEMES.values():
        if key == scheme.name or key in scheme.aliases:
            return scheme
    raise SchemeError(f"unknown landmark scheme {name!r}; known: {sorted(SCHEMES)}")


def scheme_for_num_points(num_points: int) -> LandmarkScheme:
    """The scheme with ``num_points`` points (68 -> 300w, 98 -> wflw, 29 -> cofw, 19 -> aflw, 5 -> celeba)."""
    for scheme in SCHEMES.values():
        if scheme.num_points == num_points:
            return scheme
    raise SchemeError(f"no landmark scheme has {num_points} points; known counts: 68, 98, 29, 19, 5")


def flip_points(points: np.ndarray, width: float, scheme: LandmarkScheme) -> np.ndarray:
    """Mirror 0-based pixel-centre ``points`` (..., K, 2) in an image ``width`` wide: ``x' = width - 1 - x``.

    The point order is permuted with ``scheme.flip`` so that point i keeps its meaning. Applying it twice is the
    identity.
    """
    out = np.array(points, dtype=np.float64, copy=True)[..., list(scheme.flip), :]
    out[..., 0] = width - 1 - out[..., 0]
    return out


TTA = ("none", "flip")
"""Test-time augmentation kdmark offers: ``flip`` averages the crop's landmarks with its mirror image's."""


def with_tta(run, tta: str, scheme: LandmarkScheme):
    """``run`` (a batch of (N, 3, S, S) crops -> (N, K, 2) points in crop pixels, (N, K) scores; numpy or torch)
    with test-time augmentation ``tta`` (:data:`TTA`): ``flip`` runs the mirrored crops too, mirrors their points
    back (:func:`flip_points`' rule) and averages points and scores. It costs one more forward pass per face.
    The one place kdmark's eval, bench, predict and Predictor mirror a crop."""
    if tta not in TTA:
        raise SchemeError(f"tta={tta!r}: choose one of {', '.join(TTA)}")
    if tta == "none":
        return run
    order = list(scheme.flip)

    def flipped(batch):
        mirror = batch.flip(-1) if hasattr(batch, "detach") else np.ascontiguousarray(batch[..., ::-1])
        pts, scores = run(batch)
        pts_m, scores_m = run(mirror)
        pts_m = pts_m[:, order] * 1  # a copy, numpy or torch alike
        pts_m[..., 0] = batch.shape[-1] - 1 - pts_m[..., 0]
        return (pts + pts_m) / 2, (scores + scores_m[:, order]) / 2

    return flipped


# --- conversions -------------------------------------------------------------------------------------------
# A conversion is a pair of (K_dst, K_src) weight matrices, one per coordinate: dst = W @ src. The 98 -> 68
# brows take x from one WFLW point and y from the mean of two, so x and y need their own matrices.

def _matrix(k_dst: int, k_src: int, rows: dict[int, dict[int, float]]) -> np.ndarray:
    m = np.zeros((k_dst, k_src))
    for i, weights in rows.items():
        for j, w in weights.items():
            m[i, j] = w
    return m


def _conv_68_to_5(eye_centre: str) -> tuple[np.ndarray, np.ndarray]:
    if eye_centre == "corners":  # Deep3DFaceRecon extract_5p: midpoint of the two eye corners
        left, right = {36: 0.5, 39: 0.5}, {42: 0.5, 45: 0.5}
    elif eye_centre == "mean6":  # mean of the six eye points, as for inter-pupil normalisation
        left, right = {j: 1 / 6 for j in range(36, 42)}, {j: 1 / 6 for j in range(42, 48)}
    else:
        raise SchemeError(f"eye_centre must be 'corners' or 'mean6', not {eye_centre!r}")
    m = _matrix(5, 68, {0: left, 1: right, 2: {30: 1.0}, 3: {48: 1.0}, 4: {54: 1.0}})
    return m, m


def _conv_98_to_68() -> tuple[np.ndarray, np.ndarray]:
    """PIPNet's ``convert_wflw`` mapping. PIPNet writes the eyelid weights as 0.666/0.333, which sum to 0.999 and
    pull every eyelid point towards the image origin; kdmark uses the exact 2/3 and 1/3."""
    same: dict[int, dict[int, float]] = {j: {2 * j: 1.0} for j in range(17)}
    same |= {17: {33: 1.0}, 26: {46: 1.0}}
    same |= {27 + j: {51 + j: 1.0} for j in range(9)}
    same |= {48 + j: {76 + j: 1.0} for j in range(20)}
    eyes = {
        36: {60: 1.0}, 37: {61: 2 / 3, 62: 1 / 3}, 38: {63: 2 / 3, 62: 1 / 3}, 39: {64: 1.0},
        40: {65: 2 / 3, 66: 1 / 3}, 41: {67: 2 / 3, 66: 1 / 3},
        42: {68: 1.0}, 43: {69: 2 / 3, 70: 1 / 3}, 44: {71: 2 / 3, 70: 1 / 3}, 45: {72: 1.0},
        46: {73: 2 / 3, 74: 1 / 3}, 47: {75: 2 / 3, 74: 1 / 3},
    }
    same |= eyes
    brow_x = {18 + j: {34 + j: 1.0} for j in range(4)} | {22 + j: {42 + j: 1.0} for j in range(4)}
    brow_y = {18 + j: {34 + j: 0.5, 41 - j: 0.5} for j in range(4)}
    brow_y |= {22 + j: {42 + j: 0.5, 50 - j: 0.5} for j in range(4)}
    return _matrix(68, 98, same | brow_x), _matrix(68, 98, same | brow_y)


def _conversion(src: str, dst: str, eye_centre: str) -> tuple[np.ndarray, np.ndarray]:
    if (src, dst) == ("300w", "celeba"):
        return _conv_68_to_5(eye_centre)
    if (src, dst) == ("wflw", "300w"):
        return _conv_98_to_68()
    if (src, dst) == ("wflw", "celeba"):
        (x1, y1), (x2, y2) = _conv_98_to_68(), _conv_68_to_5(eye_centre)
        return x2 @ x1, y2 @ y1
    raise SchemeError(f"no conversion from {src} to {dst}; kdmark converts 300w->celeba, wflw->300w, wflw->celeba")


def convert_points(
    points: np.ndarray,
    src: str | LandmarkScheme,
    dst: str | LandmarkScheme,
    visible: np.ndarray | None = None,
    eye_centre: Literal["corners", "mean6"] = "corners",
) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``points`` (..., K_src, 2) from one markup to another; returns ``(points, visible)``.

    A converted point is visible only when every source point it is built from is visible.

    Example:
        >>> pts5, vis5 = convert_points(pts68, "300w", "celeba")   # eye centres, nose tip, mouth corners
    """
    s, d = get_scheme(src), get_scheme(dst)
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-2] != s.num_points:
        raise SchemeError(f"expected {s.num_points} points for {s.name}, got {points.shape[-2]}")
    wx, wy = _conversion(s.name, d.name, eye_centre)
    out = np.stack([np.einsum("ij,...j->...i", wx, points[..., 0]), np.einsum("ij,...j->...i", wy, points[..., 1])],
                   axis=-1)
    vis = np.ones(points.shape[:-1], bool) if visible is None else np.asarray(visible, bool)
    used = (wx != 0) | (wy != 0)
    vis_out = ~np.einsum("ij,...j->...i", used.astype(np.int64), (~vis).astype(np.int64)).astype(bool)
    return out, vis_out
