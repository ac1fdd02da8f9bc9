"""Writers of tiny fixture files in each benchmark's native format (docs/datasets.md §11), used by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def write_image(path: Path, w: int = 64, h: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def cofw_arrays(n: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """n images (one greyscale), phis (n, 87) 1-based [x*29, y*29, occ*29], boxes (n, 4) [x, y, w, h]."""
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 255, (40 + i, 50 + i, 3), dtype=np.uint8) for i in range(n)]
    images[-1] = images[-1][..., 0]  # COFW holds some greyscale images
    phis = np.concatenate([rng.uniform(1, 40, (n, 58)), (rng.uniform(size=(n, 29)) < 0.2).astype(float)], axis=1)
    boxes = np.tile([5.0, 6.0, 30.0, 32.0], (n, 1))
    return images, phis, boxes


def write_cofw_v5(path: Path, suffix: str = "T", n: int = 3) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    images, phis, boxes = cofw_arrays(n)
    cells = np.empty((n, 1), dtype=object)
    for i, img in enumerate(images):
        cells[i, 0] = img
    scipy.io.savemat(str(path), {"Is" + suffix: cells, "phis" + suffix: phis, "bboxes" + suffix: boxes})
    return images, phis, boxes


def write_cofw_v73(path: Path, suffix: str = "T", n: int = 3) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """An HDF5 MAT file as MATLAB -v7.3 writes it: a 512-byte user block with the MATLAB header, transposed
    arrays, and the images as object references to (3, W, H) or (W, H) uint8 datasets."""
    import h5py

    images, phis, boxes = cofw_arrays(n)
    with h5py.File(path, "w", userblock_size=512) as f:
        f["phis" + suffix] = phis.T
        f["bboxes" + suffix] = boxes.T
        refs = f.create_dataset("Is" + suffix, (1, n), dtype=h5py.ref_dtype)
        group = f.create_group("#refs#")
        for i, img in enumerate(images):
            refs[0, i] = group.create_dataset(f"img{i}", data=img.T).ref
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Sat Nov 21 00:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return images, phis, boxes


def write_aflw(root: Path, n: int = 6, train_size: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    names = np.empty((n, 1), dtype=object)
    for i in range(n):
        names[i, 0] = np.array([f"{i % 3}/image{i:05d}.jpg"])
        write_image(root / "flickr" / f"{i % 3}" / f"image{i:05d}.jpg", 80, 80, i)
    data = rng.uniform(20, 60, (n, 38))
    mask = np.ones((n, 19))
    mask[[1, 5], 3] = 0
    ra = (rng.permutation(n) + 1).reshape(1, n).astype(float)
    bbox = np.tile([10.0, 70.0, 12.0, 72.0], (n, 1))  # [x1, x2, y1, y2]
    arrays = {"nameList": names, "data": data, "bbox": bbox, "mask_new": mask, "ra": ra}
    scipy.io.savemat(str(root / "AFLWinfo_release.mat"), arrays)
    return arrays


def write_300w_boxes(path: Path, entries: list[tuple[str, list[float], list[float]]]) -> None:
    cells = np.empty((1, len(entries)), dtype=object)
    for i, (name, det, gt) in enumerate(entries):
        rec = np.empty((1, 1), dtype=[("imgName", object), ("bb_detector", object), ("bb_ground_truth", object)])
        rec[0, 0] = (np.array([name]), np.array([det], float), np.array([gt], float))
        cells[0, i] = rec
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {"bounding_boxes": cells})


CELEBA_LANDMARKS = """3
lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y
000001.jpg 69  109  106  113   77  142   73  152  108  154
000002.jpg 69  110  107  112   81  135   70  151  108  153
000003.jpg 76  112  104  106  108  128   74  156   98  158
"""
CELEBA_BBOX = """3
image_id x_1 y_1 width height
000001.jpg    95  71 226 313
000002.jpg    72  94 221 306
000003.jpg   216  59  91 126
"""
CELEBA_PARTITION = "000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n"


def write_celeba(root: Path) -> None:
    (root / "Anno").mkdir(parents=True)
    (root / "Eval").mkdir()
    (root / "Anno" / "list_landmarks_align_celeba.txt").write_text(CELEBA_LANDMARKS)
    (root / "Anno" / "list_landmarks_celeba.txt").write_text(CELEBA_LANDMARKS)
    (root / "Anno" / "list_bbox_celeba.txt").write_text(CELEBA_BBOX)
    (root / "Eval" / "list_eval_partition.txt").write_text(CELEBA_PARTITION)
    for i in (1, 2, 3):
        write_image(root / "Img" / "img_align_celeba" / f"{i:06d}.jpg", 178, 218, i)


def wflw_line(seed: int, path: str | None, rect: bool = True, flags=(0, 1, 0, 0, 1, 0)) -> str:
    coords = np.random.default_rng(seed).uniform(10, 90, 196)
    tokens = [f"{v:.6f}" for v in coords]
    if rect:
        tokens += ["5", "6", "95", "96"] + [str(f) for f in flags]
    if path is not None:
        tokens.append(path)
    return " ".join(tokens)
