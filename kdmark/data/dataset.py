"""From samples to training tensors: a fixed validation split, face crops, joint geometric augmentation of image
and points in one affine warp, photometric augmentation, and codec targets.

Every face is first cut out once at ``CACHE_FACTOR`` x the input size around an enlarged square (so rotation,
scale and shift augmentation never run out of pixels), optionally kept in memory; each epoch then warps that
small crop, which keeps loading far from the bottleneck on small CPU machines.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from kdmark.config import CROP_MARGIN
from kdmark.data.images import load_image
from kdmark.data.records import Dataset, Sample
from kdmark.data.transforms import apply_affine, crop_matrix, face_square, invert_affine, warp_image
from kdmark.schemes import LandmarkScheme

__all__ = ["split_by_photo", "photo_id", "Augment", "LandmarkDataset", "TeacherTargets", "affine_scale", "CACHE_FACTOR",
           "CONTEXT"]

cv2.setNumThreads(1)  # one OpenCV thread per loader process: the cores belong to the training step

CACHE_FACTOR = 1.5  # cached crop resolution relative to the network input
CONTEXT = 1.6  # cached crop side relative to the face square: room for rotation, zoom-out and shift


def photo_id(sample: Sample) -> str:
    """The photo a face comes from: AFW/iBUG/HELEN name the faces of one photo ``photo_1``, ``photo_2``, ..."""
    key = sample.key.rsplit(".", 1)[0] if "." in sample.key[-5:] else sample.key
    return re.sub(r"_\d+$", "", key)


def split_by_photo(dataset: Dataset, fraction: float = 0.1) -> tuple[list[Sample], list[Sample]]:
    """Deterministic (train, val) split: a face is held out when ``crc32(photo id) % 1000 < fraction * 1000``.

    Splitting by photo keeps two faces of one photo on the same side; the hash makes the split independent of
    file order, machine and Python version, and stable when files are added.
    """
    cut = int(round(fraction * 1000))
    train, val = [], []
    for s in dataset.samples:
        (val if zlib.crc32(photo_id(s).encode()) % 1000 < cut else train).append(s)
    return train, val


@dataclass(frozen=True)
class Augment:
    """Augmentation strengths (see ``AugmentConfig``); evaluation passes ``augment=None``."""

    rotation: float = 30.0
    scale: float = 0.15
    shift: float = 0.08
    flip: float = 0.5
    brightness: float = 0.3
    contrast: float = 0.3
    gamma: float = 0.3
    blur: float = 0.2
    noise: float = 0.2
    grey: float = 0.1
    occlusion: float = 0.3

    @classmethod
    def from_config(cls, cfg) -> Augment | None:
        """The strengths of an ``AugmentConfig`` (by field name), or None when it is switched off."""
        if not cfg.enabled:
            return None
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})

    def geometry(self, rng: np.random.Generator) -> tuple[float, float, float, float, bool]:
        """(angle, scale, shift_x, shift_y, flip) drawn for one sample."""
        return (rng.uniform(-self.rotation, self.rotation), 1.0 + rng.uniform(-self.scale, self.scale),
                rng.uniform(-self.shift, self.shift), rng.uniform(-self.shift, self.shift), rng.random() < self.flip)

    def photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast, gamma, blur, noise, grey and one occluding patch on an RGB uint8 crop."""
        x = img.astype(np.float32) / 255.0
        if self.brightness:
            x = x + rng.uniform(-self.brightness, self.brightness) * 0.5
        if self.contrast:
            m = x.mean()
            x = (x - m) * (1 + rng.uniform(-self.contrast, self.contrast)) + m
        x = np.clip(x, 0, 1)
        if self.gamma:
            x = x ** np.exp(rng.uniform(-self.gamma, self.gamma))
        if rng.random() < self.grey:
            x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
        if rng.random() < self.blur:
            k = int(rng.choice([3, 5]))
            x = cv2.GaussianBlur(x, (k, k), 0)
        if rng.random() < self.noise:
            x = x + rng.normal(0, rng.uniform(0.01, 0.05), x.shape).astype(np.float32)
        if rng.random() < self.occlusion:
            h, w = x.shape[:2]
            ph, pw = int(h * rng.uniform(0.1, 0.35)), int(w * rng.uniform(0.1, 0.35))
            y0, x0 = rng.integers(0, h - ph + 1), rng.integers(0, w - pw + 1)
            x[y0:y0 + ph, x0:x0 + pw] = rng.uniform(0, 1, 3).astype(np.float32)
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class TeacherTargets:
    """One teacher's answer for every face of a dataset, in original-image pixels."""

    points: np.ndarray  # (N, K, 2)
    sigma: np.ndarray  # (N, K) Gaussian width of its heatmap peak (NaN: none, e.g. a regression or black-box teacher)
    peak: np.ndarray  # (N, K) height of its heatmap's peak (its per-point confidence)


def affine_scale(affine: np.ndarray) -> np.ndarray:
    """Length scale of 2x3 affines (..., 2, 3): sqrt |det| of their linear part."""
    a = np.asarray(affine, np.float64)
    return np.sqrt(np.abs(a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]))


def moved_targets(targets: TeacherTargets, i: int, full: np.ndarray, order: list[int] | None):
    """Face ``i``'s teacher points (student input pixels), spreads and peaks after the affine ``full`` (original
    image -> network input) and, when it flips, the scheme's flip ``order``."""
    pts = apply_affine(targets.points[i], full)
    sigma, peak = targets.sigma[i] * affine_scale(full), targets.peak[i]
    if order is not None:
        pts, sigma, peak = pts[order], sigma[order], peak[order]
    return pts, sigma, peak


class LandmarkDataset(TorchDataset):
    """Torch dataset of face crops with codec targets.

    Each item is a dict: ``image`` (3, S, S) float in [0, 1]; ``points`` (K, 2) in crop pixels; ``visible`` (K,);
    ``to_image`` (2, 3) affine from crop pixels back to original image pixels; ``index``; and the codec's targets
    (``coords`` / ``heatmaps`` / ``weights``). With ``teacher_targets`` (``kd.cached``), teacher ``t``'s answer
    moved with the same augmentation: ``kd{t}_points`` (K, 2) in crop pixels, ``kd{t}_scores`` (K,) and, for a
    heatmap codec, ``kd{t}_heatmaps`` rendered from its points, spreads and peaks.
    """

    def __init__(self, samples: list[Sample], scheme: LandmarkScheme, codec, input_size: int,
                 augment: Augment | None = None, margin: float = CROP_MARGIN, use_box: bool = False, cache: bool = True,
                 seed: int = 0):
        self.samples, self.scheme, self.codec, self.size = samples, scheme, codec, input_size
        self.augment, self.margin, self.use_box, self.cache, self.seed = augment, margin, use_box, cache, seed
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.teacher_targets: list[TeacherTargets] = []

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Augmentation draws depend on (seed, epoch, index) only: runs repeat exactly, whatever the workers."""
        self.epoch = epoch

    def base_crop(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(crop RGB uint8, 2x3 affine image->crop) of face ``i`` with context, cached when enabled."""
        if i in self._cache:
            return self._cache[i]
        s = self.samples[i]
        cx, cy, side = face_square(s, self.margin, self.use_box)
        big = int(round(self.size * CACHE_FACTOR))
        m = crop_matrix(cx, cy, side * CONTEXT, big)
        crop = warp_image(load_image(s.image), m, big)
        if self.cache:
            self._cache[i] = (crop, m)
        return crop, m

    def fill_cache(self, progress: bool = False, skip_bad: bool = False) -> list[str]:
        """Decode and crop every face now. A face whose image cannot be decoded raises DatasetError, or with
        ``skip_bad`` is dropped from the dataset; returns the skipped faces' one-line problems."""
        from tqdm.auto import tqdm

        from kdmark.errors import DatasetError

        bad, problems = [], []
        bar = tqdm(range(len(self)), desc="caching faces", unit="face", disable=None if progress else True, leave=False)
        for i in bar:
            try:
                self.base_crop(i)
            except DatasetError as err:
                if not skip_bad:
                    raise
                bad.append(i)
                problems.append(str(err))
        if bad:
            keep = [i for i in range(len(self)) if i not in set(bad)]
            self.samples = [self.samples[i] for i in keep]
            self._cache = {new: self._cache[old] for new, old in enumerate(keep)}
            return problems
        return []

    def _matrix(self, rng: np.random.Generator | None) -> tuple[np.ndarray, bool]:
        """2x3 affine from the cached crop to the network input, and whether it flips."""
        big = self.size * CACHE_FACTOR
        c = (big - 1) / 2.0
        angle, scale, sx, sy, flip = (0.0, 1.0, 0.0, 0.0, False) if rng is None else self.augment.geometry(rng)
        side = big / CONTEXT / scale
        m = crop_matrix(c + sx * side, c + sy * side, side, self.size, angle)
        if flip:
            m = np.array([[-1.0, 0.0, self.size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
        return m, flip

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = self.samples[i]
        rng = None
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
        crop, to_crop = self.base_crop(i)
        m, flip = self._matrix(rng)
        image = warp_image(crop, m, self.size)
        full = _compose(m, to_crop)  # original image -> network input
        points, visible = apply_affine(s.points, full), s.visible.copy()
        weights = visible.astype(np.float32) if s.weights is None else (visible * s.weights).astype(np.float32)
        order = list(self.scheme.flip) if flip else None
        if flip:
            points, visible, weights = points[order], visible[order], weights[order]
        if rng is not None:
            image = self.augment.photometric(image, rng)
        item = {"image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0,
                "points": torch.from_numpy(points.astype(np.float32)),
                "visible": torch.from_numpy(visible.astype(np.float32)),
                "to_image": torch.from_numpy(invert_affine(full).astype(np.float64)),
                "index": torch.tensor(i)}
        for key, value in self.codec.encode(points, visible).items():
            item[key] = torch.from_numpy(np.ascontiguousarray(value))
        if s.weights is not None:  # per-point loss weights (pseudo-labels); the codec's are 0/1 visibility
            item["weights"] = torch.from_numpy(weights)
        render = getattr(getattr(self.codec, "heatmap", self.codec), "render", None)
        for t, targets in enumerate(self.teacher_targets):
            pts, sigma, peak = moved_targets(targets, i, full, order)
            item[f"kd{t}_points"] = torch.from_numpy(pts.astype(np.float32))
            item[f"kd{t}_scores"] = torch.from_numpy(np.ascontiguousarray(peak, np.float32))
            if render is not None:
                item[f"kd{t}_heatmaps"] = torch.from_numpy(render(pts, sigma, peak))
        return item


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2x3 affine ``a`` after ``b``."""
    return (np.vstack([a, [0, 0, 1]]) @ np.vstack([b, [0, 0, 1]]))[:2]

