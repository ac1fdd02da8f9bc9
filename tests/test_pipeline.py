"""The data pipeline: image and points move together through crop, augmentation and flip; eval crops map back
to the original image exactly; the validation split is fixed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from kdmark.codecs import HeatmapCodec, RegressionCodec
from kdmark.data import read_dataset
from kdmark.data.dataset import Augment, LandmarkDataset, split_by_photo
from kdmark.data.records import Sample
from kdmark.data.transforms import apply_affine
from kdmark.schemes import CELEBA_5

POINTS = np.array([[40.0, 50.0], [80.0, 52.0], [60.0, 70.0], [45.0, 90.0], [78.0, 92.0]])


def _dot_image(tmp_path, point):
    img = Image.new("RGB", (128, 128), (0, 0, 0))
    x, y = point
    ImageDraw.Draw(img).ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=(255, 0, 0))
    path = tmp_path / "dots.png"
    img.save(path)
    return path


def _red_centroid(image_chw):
    img = image_chw.permute(1, 2, 0).numpy()
    red = (img[..., 0] > 0.5) & (img[..., 1] < 0.3)
    ys, xs = np.nonzero(red)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_augmented_image_and_points_agree(tmp_path, flip):
    """A red dot drawn at landmark 0 ends up where the augmented points say landmark 0 is - at index 1 after a
    flip, because the scheme's permutation swaps the eyes."""
    sample = Sample(_dot_image(tmp_path, POINTS[0]), POINTS, np.ones(5, bool))
    geometry = Augment(rotation=30, scale=0.15, shift=0.08, flip=flip, brightness=0, contrast=0, gamma=0, blur=0,
                       noise=0, grey=0, occlusion=0)
    ds = LandmarkDataset([sample], CELEBA_5, RegressionCodec(64), 64, geometry, margin=0.3, cache=False)
    for epoch in range(5):
        ds.set_epoch(epoch)
        item = ds[0]
        where = 1 if flip else 0
        np.testing.assert_allclose(_red_centroid(item["image"]), item["points"][where].numpy(), atol=0.8)


def test_eval_crop_maps_back_to_the_image(tmp_path):
    sample = Sample(_dot_image(tmp_path, POINTS[0]), POINTS, np.ones(5, bool))
    ds = LandmarkDataset([sample], CELEBA_5, HeatmapCodec(64, 4), 64, None, margin=0.2)
    item = ds[0]
    back = apply_affine(item["points"].numpy().astype(np.float64), item["to_image"].numpy())
    np.testing.assert_allclose(back, POINTS, atol=1e-4)
    assert item["image"].shape == (3, 64, 64) and item["heatmaps"].shape == (5, 16, 16)
    assert item["image"].min() >= 0 and item["image"].max() <= 1


def test_augmentation_is_deterministic_per_seed_epoch_index(tmp_path):
    sample = Sample(_dot_image(tmp_path, POINTS[0]), POINTS, np.ones(5, bool))
    a = LandmarkDataset([sample], CELEBA_5, RegressionCodec(64), 64, Augment(), seed=3)
    b = LandmarkDataset([sample], CELEBA_5, RegressionCodec(64), 64, Augment(), seed=3, cache=False)
    assert (a[0]["image"] == b[0]["image"]).all()
    a.set_epoch(1)
    assert not (a[0]["image"] == b[0]["image"]).all()


def test_photometric_keeps_shape_and_range():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    strong = Augment(brightness=1, contrast=1, gamma=1, blur=1, noise=1, grey=1, occlusion=1)
    for seed in range(5):
        out = strong.photometric(img, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8


def test_fixed_validation_split_of_real_300w(w300_root):
    ds = read_dataset(w300_root, split="train")
    train, val = split_by_photo(ds, 0.1)
    assert len(train) + len(val) == len(ds) == 1213
    assert 0.07 < len(val) / len(ds) < 0.13
    from kdmark.data.dataset import photo_id

    assert not {photo_id(s) for s in train} & {photo_id(s) for s in val}
    train2, val2 = split_by_photo(ds, 0.1)
    assert [s.key for s in val] == [s.key for s in val2]
    assert len(val) == 119  # pinned: BENCHMARKS.md numbers use exactly this split
