"""Table-like annotation files: CelebA's landmark/box/partition text files and COCO-style keypoint JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdmark.data.readers._common import Errors, check_points, xywh_to_xyxy
from kdmark.data.records import DatasetError, Sample

__all__ = ["read_celeba", "find_celeba", "read_coco", "is_coco_json"]

_CELEBA_HEADER = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)
_PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def find_celeba(root: Path, variant: str | None = None) -> tuple[Path, Path, Path | None, Path | None]:
    """(landmark file, image folder, box file or None, partition file or None) of a CelebA release.

    ``variant`` is "aligned" (``img_align_celeba``, the default when its landmark file exists) or "wild"."""
    def first(*names: str) -> Path | None:
        for name in names:
            hits = sorted(root.rglob(name)) if root.is_dir() else ([root] if root.name == name else [])
            if hits:
                return hits[0]
        return None

    aligned = first("list_landmarks_align_celeba.txt")
    wild = first("list_landmarks_celeba.txt")
    if variant is None:
        variant = "aligned" if aligned is not None else "wild"
    landmarks = aligned if variant == "aligned" else wild
    if landmarks is None:
        raise DatasetError(root, f"no CelebA landmark file for the {variant} images")
    base = landmarks.parent.parent if landmarks.parent.name.lower() == "anno" else landmarks.parent
    img_name = "img_align_celeba" if variant == "aligned" else "img_celeba"
    images = next((p for p in (base / "Img" / img_name, base / img_name) if p.is_dir()), base / "Img" / img_name)
    box = first("list_bbox_celeba.txt") if variant == "wild" else None
    return landmarks, images, box, first("list_eval_partition.txt")


def _rows(path: Path, header: str | None) -> dict[str, list[str]]:
    """{image name: tokens} of a CelebA file; checks the count line and the header when the file has them."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read: {err}") from None
    if header is not None:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise DatasetError(path, "expected a count line, then a header line")
        count, head, lines = int(lines[0]), " ".join(lines[1].split()), lines[2:]
        if header and head != header:
            raise DatasetError(path, f"unexpected header {head[:60]!r}")
        if count != len(lines):
            raise DatasetError(path, f"the count line says {count} rows, the file has {len(lines)}")
    rows = {}
    for line in lines:
        tokens = line.split()  # columns are padded with runs of spaces
        rows[tokens[0]] = tokens[1:]
    return rows


def read_celeba(root: Path, errors: Errors, split: str | None = None, variant: str | None = None) -> list[Sample]:
    """CelebA 5-point landmarks (aligned or in-the-wild), with boxes (wild) and train/val/test partitions."""
    landmarks, images, box_file, part_file = find_celeba(root, variant)
    rows = _rows(landmarks, _CELEBA_HEADER)
    boxes = _rows(box_file, "image_id x_1 y_1 width height") if box_file else {}
    parts = _rows(part_file, None) if part_file else {}
    samples = []
    for lineno, (name, tokens) in enumerate(rows.items(), 3):
        where = f"{landmarks}:{lineno}"
        tag = _PARTITIONS.get(parts[name][0]) if name in parts else None
        if split is not None and tag != split:
            continue
        if len(tokens) != 10:
            errors.guard(_raise, where, f"expected 10 coordinates, got {len(tokens)}")
            continue
        try:
            values = np.array([float(t) for t in tokens])
        except ValueError:
            errors.guard(_raise, where, "a coordinate is not a number")
            continue
        pts = errors.guard(check_points, values, 5, where)
        if pts is None:
            continue
        box = xywh_to_xyxy(np.array(boxes[name], float)) if name in boxes else None
        samples.append(Sample(images / name, pts, np.ones(5, bool), box, subsets=(tag,) if tag else (),
                              source=where, key=name))
    return samples


def _raise(where: str, problem: str) -> None:
    raise DatasetError(where, problem)


def is_coco_json(path: Path) -> bool:
    try:
        with open(path) as f:
            head = f.read(4096)
    except OSError:
        return False
    return '"annotations"' in head or '"images"' in head


def read_coco(files: list[Path], errors: Errors, split: str | None = None) -> list[Sample]:
    """COCO-style face keypoints (mmpose layout): ``keypoints`` [x, y, v] * K, ``bbox`` [x, y, w, h].

    Visibility follows the file's own convention: where any flag is 2 (COCO), 2 is visible and 1 occluded
    (mmpose's COFW converter writes ``2 - occluded``); otherwise every flag > 0 is visible (mmpose 300W/WFLW/AFLW
    write 1 everywhere). Coordinates are taken as they are (0-based pixels)."""
    samples = []
    for path in files:
        tag = path.stem
        if split is not None and split not in tag:
            continue
        try:
            doc = json.loads(path.read_text())
            images = {img["id"]: img for img in doc["images"]}
            anns = doc["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            errors.guard(_raise, str(path), f"not a COCO keypoint file ({type(err).__name__}: {err})")
            continue
        coco_flags = any(v == 2 for a in anns for v in a.get("keypoints", [])[2::3])
        for ann in anns:
            where = f"{path}#{ann.get('id', '?')}"
            kps = np.asarray(ann.get("keypoints", []), float).reshape(-1, 3)
            pts = errors.guard(check_points, kps[:, :2], None, where)
            img = images.get(ann.get("image_id"))
            if pts is None or img is None:
                if img is None:
                    errors.guard(_raise, where, f"annotation refers to unknown image id {ann.get('image_id')}")
                continue
            visible = kps[:, 2] == 2 if coco_flags else kps[:, 2] > 0
            box = xywh_to_xyxy(np.asarray(ann["bbox"], float)) if "bbox" in ann else None
            image = path.parent / img["file_name"]
            if not image.exists() and (path.parent / "images" / img["file_name"]).exists():
                image = path.parent / "images" / img["file_name"]
            samples.append(Sample(image, pts, visible, box, subsets=(tag,), source=where, key=where))
    return samples
