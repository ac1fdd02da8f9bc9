"""The literature's landmark metrics: NME, FR@T, CED and AUC@T (docs/datasets.md §0.3 and §7), on NumPy arrays.

Defaults reproduce HRNet/PIPNet/STAR tables: per-image NME averaged over images, FR@T as the fraction of images
with NME above T, and AUC@T as composite Simpson over the CED sampled at ``np.arange(0, T + step, step)``,
step 1e-4, divided by T. The mmpose pooled NME and the SAN (linspace + strict ``<`` + trapezoid) AUC are
available for comparison, never by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.integrate import simpson

from kdmark.errors import MetricError
from kdmark.io import save_figure
from kdmark.schemes import LandmarkScheme, get_scheme

if TYPE_CHECKING:
    from kdmark.data.records import Sample

__all__ = [
    "MetricError",
    "Metrics",
    "normaliser_distances",
    "nme_per_image",
    "nme_pooled",
    "failure_rate",
    "ced_curve",
    "auc",
    "auc_san",
    "compute_metrics",
    "plot_ced",
]


def normaliser_distances(
    gt: np.ndarray,
    scheme: str | LandmarkScheme,
    normaliser: str | None = None,
    boxes: np.ndarray | None = None,
    keys: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-image NME denominators (N,) of ground truth ``gt`` (N, K, 2); raises on a zero or non-finite one.

    mmpose silently drops such images; kdmark refuses, because a dropped image changes the reported number.
    """
    d = get_scheme(scheme).normaliser(normaliser).distance(gt, boxes)
    bad = ~(np.isfinite(d) & (d > 0))
    if bad.any():
        i = int(np.argmax(bad))
        who = keys[i] if keys is not None else f"image {i}"
        raise MetricError(f"{who}: normaliser {normaliser or get_scheme(scheme).default_normaliser} is {d[i]:g}")
    return d


def _errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise MetricError(f"pred {pred.shape} and gt {gt.shape} must both be (N, K, 2)")
    return np.linalg.norm(pred - gt, axis=-1)


def nme_per_image(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """NME_n = sum_k m_k ||p_k - g_k|| / (d_n sum_k m_k), for (N, K, 2) points, (N,) norms, (N, K) mask."""
    err = _errors(pred, gt)
    m = np.ones_like(err) if visible is None else np.asarray(visible, np.float64)
    count = m.sum(axis=1)
    if (count == 0).any():
        raise MetricError(f"image {int(np.argmax(count == 0))} has no visible point to score")
    return (err * m).sum(axis=1) / (np.asarray(norm, np.float64) * count)


def nme_pooled(pred: np.ndarray, gt: np.ndarray, norm: np.ndarray, visible: np.ndarray | None = None) -> float:
    """mmpose's pooled NME: all valid normalised point errors summed, divided by the number of valid points."""
    err = _errors(pred, gt) / np.asarray(norm, np.float64)[:, None]
    m = np.ones_like(err) if visible is None else np.asarray(visible, np.float64)
    return float((err * m).sum() / m.sum())


def failure_rate(nmes: np.ndarray, threshold: float) -> float:
    """FR@T: the fraction of images whose NME is above ``threshold``."""
    return float(np.mean(np.asarray(nmes) > threshold))


def ced_curve(nmes: np.ndarray, threshold: float, step: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """The CED on the reference grid ``np.arange(0, threshold + step, step)``: (xs, fraction of NME <= x).

    The grid overshoots ``threshold`` for T = 0.05 or 0.07 (502 / 702 samples ending at T + step); it is kept
    exactly so, because that is what the reference numbers were computed on.
    """
    xs = np.arange(0, threshold + step, step)
    nmes = np.sort(np.asarray(nmes, np.float64))
    return xs, np.searchsorted(nmes, xs, side="right") / len(nmes)


def auc(nmes: np.ndarray, threshold: float, step: float = 1e-4) -> float:
    """AUC@T: composite Simpson over :func:`ced_curve`, divided by ``threshold`` (PIPNet/STAR/menpofit)."""
    xs, ys = ced_curve(nmes, threshold, step)
    return float(simpson(ys, x=xs) / threshold)


def auc_san(nmes: np.ndarray, threshold: float, num: int = 2000) -> float:
    """SAN's variant: ``linspace(0, T, num)``, accuracy with strict ``<``, trapezoid rule, divided by T."""
    th = np.linspace(0, threshold, num)
    acc = (np.asarray(nmes)[:, None] < th[None, :]).mean(axis=0)
    return float(np.trapezoid(acc, th) / threshold)


@dataclass(frozen=True)
class Metrics:
    """Dataset-level scores. ``nme`` is the mean of per-image NMEs; fractions, not percent."""

    nme: float
    fr: float
    auc: float
    threshold: float
    normaliser: str
    num_images: int
    nme_pooled: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        t = self.threshold
        return (f"NME {self.nme * 100:.3f}%  FR@{t:g} {self.fr * 100:.2f}%  AUC@{t:g} {self.auc:.4f}  "
                f"({self.normaliser}, {self.num_images} images)")


def compute_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    scheme: str | LandmarkScheme,
    normaliser: str | None = None,
    threshold: float | None = None,
    boxes: np.ndarray | None = None,
    visible: np.ndarray | None = None,
    keys: Sequence[str] | None = None,
) -> tuple[Metrics, np.ndarray]:
    """Score predictions the literature's way; returns (Metrics, per-image NME array).

    Args:
        pred, gt: (N, K, 2) points in the same frame.
        scheme: landmark scheme (its default normaliser and threshold apply unless given).
        visible: (N, K) mask of the points that count (None: all, the HRNet/PIPNet protocol).
    """
    s = get_scheme(scheme)
    name = normaliser or s.default_normaliser
    t = s.default_threshold if threshold is None else threshold
    d = normaliser_distances(gt, s, name, boxes, keys)
    per_image = nme_per_image(pred, gt, d, visible)
    metrics = Metrics(float(per_image.mean()), failure_rate(per_image, t), auc(per_image, t), t, name,
                      len(per_image), nme_pooled(pred, gt, d, visible))
    return metrics, per_image


def plot_ced(curves: dict[str, np.ndarray], threshold: float, path: str | Path, title: str = "CED") -> Path:
    """Plot the CED of each named per-image NME array up to ``threshold`` and save a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for name, nmes in curves.items():
        xs, ys = ced_curve(nmes, threshold, step=threshold / 1000)
        ax.plot(xs * 100, ys, label=f"{name} (AUC {auc(nmes, threshold):.3f})")
    ax.set(xlabel="NME (%)", ylabel="fraction of images", title=title, xlim=(0, threshold * 100), ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path, bbox_inches="tight")


def score_samples(samples: list[Sample], pred: np.ndarray, scheme: LandmarkScheme, normaliser: str | None = None,
                  threshold: float | None = None) -> tuple[Metrics, np.ndarray, dict[str, Metrics]]:
    """(overall Metrics, per-image NME, {subset tag: Metrics}) for predictions in image pixels."""
    gt = np.stack([s.points for s in samples])
    boxes = np.stack([s.box if s.box is not None else s.landmark_box() for s in samples])
    keys = [s.key for s in samples]
    overall, per_image = compute_metrics(pred, gt, scheme, normaliser, threshold, boxes, keys=keys)
    by_tag: dict[str, Metrics] = {}
    tags = sorted({t for s in samples for t in s.subsets})
    if len(tags) > 1:
        for tag in tags:
            idx = [i for i, s in enumerate(samples) if tag in s.subsets]
            by_tag[tag], _ = compute_metrics(pred[idx], gt[idx], scheme, normaliser, threshold, boxes[idx])
    return overall, per_image, by_tag
