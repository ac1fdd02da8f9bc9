"""Pictures of a dataset: a grid of face crops with their landmarks and point indices (``kdmark data show``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kdmark.data.images import load_image
from kdmark.data.records import Sample
from kdmark.data.transforms import apply_affine, crop_matrix, face_square, warp_image
from kdmark.io import save_figure
from kdmark.schemes import LandmarkScheme

__all__ = ["draw_grid", "augmented_crops"]

# Image-left points blue, image-right red, centre green: a dataset read mirrored shows at a glance.
SIDE_COLOURS = {"L": "#1f77b4", "R": "#d62728", "C": "#2ca02c"}


def draw_grid(
    samples: Sequence[Sample],
    scheme: LandmarkScheme,
    path: str | Path,
    tile: int = 320,
    cols: int = 4,
    indices: bool = True,
    crops: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    titles: Sequence[str] | None = None,
    predictions: Sequence[np.ndarray] | None = None,
) -> Path:
    """Save a PNG grid of faces with landmarks coloured by side and numbered by index.

    Args:
        samples: faces to draw (cropped around their box or landmarks), unless ``crops`` gives ready-made
            (image, points) pairs, e.g. the augmented crops the network sees.
        predictions: optional (K, 2) points per tile, in the same frame as the drawn points, drawn as crosses.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if crops is None:
        crops = []
        for s in samples:
            m = crop_matrix(*face_square(s), tile)
            crops.append((warp_image(load_image(s.image), m, tile), apply_affine(s.points, m)))
    n = len(crops)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.2, rows * 3.4), dpi=100, squeeze=False)
    colours = [SIDE_COLOURS[c] for c in scheme.sides]
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img, pts = crops[i]
        ax.imshow(img)
        ax.scatter(pts[:, 0], pts[:, 1], s=6, c=colours, linewidths=0)
        if predictions is not None:
            ax.scatter(predictions[i][:, 0], predictions[i][:, 1], s=10, c="yellow", marker="x", linewidths=0.8)
        if indices:
            for k, (x, y) in enumerate(pts):
                ax.text(x + 1.5, y - 1.5, str(k), fontsize=4, color=colours[k])
        title = titles[i] if titles is not None else (samples[i].key if i < len(samples) else "")
        ax.set_title(title[-40:], fontsize=6)
    fig.suptitle(f"{scheme.name}: {scheme.num_points} points (blue = image-left, red = image-right)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def augmented_crops(samples: Sequence[Sample], scheme: LandmarkScheme, cfg, seed: int = 0) -> list[tuple]:
    """What the network sees: (uint8 crop, points) per sample after the training crop, augmentation and flip of a
    ``TrainConfig`` (augmentation switched on), for :func:`draw_grid`'s ``crops``."""
    import dataclasses

    from kdmark.codecs import RegressionCodec
    from kdmark.data.dataset import Augment, LandmarkDataset

    aug = Augment.from_config(dataclasses.replace(cfg.augment, enabled=True))
    size = cfg.data.input_size
    lds = LandmarkDataset(list(samples), scheme, RegressionCodec(size), size, aug, cfg.data.margin, cfg.data.use_box,
                          cache=False, seed=seed)
    crops = []
    for i in range(len(lds)):
        item = lds[i]
        crops.append(((item["image"].permute(1, 2, 0).numpy() * 255).astype("uint8"), item["points"].numpy()))
    return crops
