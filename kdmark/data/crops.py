"""Face crops as a model sees them: the square around a box, resized to the model's input, as float32 in [0, 1].
The one place inference, benchmarks and INT8 calibration cut faces out of photos."""

from __future__ import annotations

import numpy as np

from kdmark.card import ModelCard
from kdmark.data.images import load_image
from kdmark.data.transforms import box_square, crop_matrix, invert_affine, warp_image

__all__ = ["face_crop", "sample_crops"]


def face_crop(image: np.ndarray, box, margin: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The network's input for one face: the (3, size, size) float32 crop in [0, 1] of the square around ``box``
    (:func:`~kdmark.data.transforms.box_square`), and the image -> crop affine."""
    m = crop_matrix(*box_square(box, margin), size)
    return (warp_image(image, m, size).astype(np.float32) / 255.0).transpose(2, 0, 1), m


def sample_crops(samples, card, boxes: list) -> tuple[np.ndarray, list[np.ndarray]]:
    """(N, 3, S, S) crops of the samples' images around ``boxes`` as a model with this ``card`` sees them (its input
    size and crop margin), and the crop -> image affines (for benchmarks and INT8 calibration)."""
    card = ModelCard.from_dict(card, "model")
    size, margin = card.input_size, card.margin
    crops, back = [], []
    for s, box in zip(samples, boxes):
        crop, m = face_crop(load_image(s.image), box, margin, size)
        crops.append(crop)
        back.append(invert_affine(m))
    return np.stack(crops), back
