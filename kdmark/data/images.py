"""Image loading with one-line errors: every supported file becomes an RGB uint8 (H, W, 3) array, upright: a photo
stored rotated with an EXIF orientation tag (phones do this) is turned as its viewer would show it, so landmarks
and boxes are always in the upright image's pixels."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from kdmark.data.records import DatasetError, ImageRef

__all__ = ["load_image", "image_size", "MAX_PIXELS"]

MAX_PIXELS = 100_000_000
"""Images above this many pixels are refused (a 20000 x 20000 photo would need 1.2 GB as RGB)."""


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float greyscale: stretch to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise DatasetError(path, "image file is missing")
    if path.stat().st_size == 0:
        raise DatasetError(path, "image file is empty (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # kdmark's own, lower limit below gives the size in its message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        if img.width * img.height > MAX_PIXELS:
            raise DatasetError(path, f"image too large ({img.width} x {img.height} pixels)")
        return img
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise DatasetError(path, f"not a readable image ({type(err).__name__}: {err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def load_image(ref: ImageRef) -> np.ndarray:
    """Load an image as RGB uint8 (H, W, 3). Grey, RGBA, palette and 16-bit files are converted.

    Raises:
        DatasetError: missing, empty, truncated, corrupt or oversized files, as one line naming the file.
    """
    if callable(ref):
        return ref()
    path = Path(ref)
    img = _open(path)
    try:
        img.load()
        return _to_rgb8(ImageOps.exif_transpose(img))
    except Exception as err:  # noqa: BLE001
        raise DatasetError(path, f"not a readable image ({type(err).__name__}: {err})") from None


def image_size(ref: ImageRef) -> tuple[int, int]:
    """(width, height) read from the file header, without decoding the pixels."""
    if callable(ref):
        h, w = ref().shape[:2]
        return w, h
    img = _open(Path(ref))
    turned = _orientation(img) in (5, 6, 7, 8)  # rotated by 90 degrees: the upright image is h x w
    return (img.height, img.width) if turned else (img.width, img.height)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block: the pixels as stored
        return 1
