"""Image loading with one-line errors: every supported file becomes an RGB uint8 (H, W, 3) array, upright: a photo
stored rotated with an EXIF orientation tag (phones do this) is turned as its viewer would show it, so landmarks
and boxes are always in the upright image's pixels."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from kdmark.data.records import DatasetError, ImageRef

__all__ = ["load_image", "image_size", "as_rgb", "MAX_PIXELS"]

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
    from kdmark.data.readers._common import UNREAD_IMAGE_SUFFIXES

    if not path.exists():
        raise DatasetError(path, "image file is missing")
    if path.stat().st_size == 0:
        raise DatasetError(path, "image file is empty (0 bytes)")
    if path.suffix.lower() in UNREAD_IMAGE_SUFFIXES:
        raise DatasetError(path, f"kdmark does not read {path.suffix} photos; convert it (to JPEG or PNG) first")
    return _open_pil(path, path)


def frame_count(path: str | Path) -> int:
    """How many frames an image file holds (an animated GIF, WebP or multi-page TIFF: more than 1; kdmark reads the
    first)."""
    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:  # noqa: BLE001 - unreadable files are reported by load_image
        return 1


def _open_pil(source, name) -> Image.Image:
    """PIL's lazy open of a file path or a file object, with kdmark's pixel limit; errors name ``name``."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # kdmark's own, lower limit below gives the size in its message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
        if img.width * img.height > MAX_PIXELS:
            raise DatasetError(name, f"image too large ({img.width} x {img.height} pixels)")
        return img
    except DatasetError:
        raise
    except Exception as err:  # noqa: BLE001 - PIL raises many types for corrupt files
        raise DatasetError(name, f"not a readable image ({type(err).__name__}: {err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _decode(img: Image.Image, name) -> np.ndarray:
    try:
        img.load()
        return _to_rgb8(ImageOps.exif_transpose(img))
    except Exception as err:  # noqa: BLE001
        raise DatasetError(name, f"not a readable image ({type(err).__name__}: {err})") from None


def load_image(ref: ImageRef) -> np.ndarray:
    """Load an image as RGB uint8 (H, W, 3). Grey, RGBA, palette and 16-bit files are converted.

    Raises:
        DatasetError: missing, empty, truncated, corrupt or oversized files, as one line naming the file.
    """
    if callable(ref):
        return ref()
    path = Path(ref)
    return _decode(_open(path), path)


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


EXPECTED = "an RGB image: a file path, bytes of an image file, a PIL image, or an (H, W, 3) uint8 array"


def as_rgb(image, bgr: bool = False) -> np.ndarray:
    """What a user passes as an image, as RGB uint8 (H, W, 3); one ``DatasetError`` line for anything else.

    Converted, because each reading is unambiguous: a path or the bytes of an image file (decoded as
    ``load_image`` does), a PIL image, grey (H, W) or (H, W, 1), RGBA (H, W, 4, the alpha dropped), uint16 (scaled by
    1/257), integers within 0..255, and floats (in [0, 1] when their maximum is at most 1, else 0..255, the
    scikit-image convention). ``bgr=True`` reads 3- and 4-channel arrays as OpenCV's BGR(A) (``cv2.imread``).
    Refused: booleans, channels-first (3, H, W), empty images, NaN or infinite values, and values outside the range.
    """
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(_open_pil(io.BytesIO(bytes(image)), "image bytes"), "image bytes")
    if isinstance(image, Image.Image):
        return _to_rgb8(image)
    if not isinstance(image, np.ndarray):
        raise DatasetError(f"image of type {type(image).__name__}", f"expected {EXPECTED}")
    return _array_rgb(image, bgr)


def _array_rgb(a: np.ndarray, bgr: bool) -> np.ndarray:
    where = f"image array {tuple(a.shape)} {a.dtype}"
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise DatasetError(where, f"not pixel values; expected {EXPECTED}")
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        raise DatasetError(where, "channels first; pass image.transpose(1, 2, 0), an (H, W, 3) array")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise DatasetError(where, f"not an image shape; expected {EXPECTED}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DatasetError(where, "empty image (no pixels)")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise DatasetError(where, f"image too large ({a.shape[1]} x {a.shape[0]} pixels)")
    if a.dtype != np.uint8:
        a = _to_uint8(a, where)
    if a.shape[-1] == 1:
        return np.repeat(a, 3, axis=2)
    a = a[:, :, :3]
    return np.ascontiguousarray(a[:, :, ::-1] if bgr else a)


def _to_uint8(a: np.ndarray, where: str) -> np.ndarray:
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise DatasetError(where, "NaN or infinite pixel values")
        lo, hi = float(a.min()), float(a.max())
        top = 1.0 if hi <= 1.0 else 255.0
        if lo < 0 or hi > 255:
            raise DatasetError(where, f"pixel values {lo:g}..{hi:g} are neither in [0, 1] nor in [0, 255]")
        return np.clip(a.astype(np.float64) * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > 255:
        raise DatasetError(where, f"integer pixel values {lo}..{hi} are outside 0..255 (uint16 is read as 16-bit)")
    return a.astype(np.uint8)
