"""300-W folders, 300VW, Menpo and plain folders of images with ``.pts`` (or WFLW-style ``.txt``) beside them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io

from kdmark.data.pts import read_pts
from kdmark.data.readers._common import IMAGE_EXTS, Errors, check_points, image_beside
from kdmark.data.records import DatasetError, Sample

__all__ = ["read_300w", "read_folder", "is_300w_layout", "W300_SPLITS"]

W300_SPLITS = ("train", "common", "challenging", "full", "private")

_BOX_FILES = {  # box .mat stem suffix -> folder of the faces it covers
    "afw": "afw", "helen_trainset": "helen/trainset", "helen_testset": "helen/testset",
    "lfpw_trainset": "lfpw/trainset", "lfpw_testset": "lfpw/testset", "ibug": "ibug",
}


def _w300_tags(rel: Path) -> tuple[str, ...] | None:
    """Split and subset tags of a 300-W file from its folder (SAN/PIPNet rules), or None outside the layout."""
    parts = [p.lower() for p in rel.parts[:-1]]
    if "ibug" in parts:
        return ("challenging", "full", "ibug")
    if "afw" in parts:
        return ("train", "afw")
    for db in ("helen", "lfpw"):
        if db in parts:
            if "testset" in parts:
                return ("common", "full", db)
            return ("train", db)
    for indoor in ("01_indoor", "02_outdoor"):
        if indoor in parts:
            return ("private", indoor[3:])
    return None


def is_300w_layout(root: Path, pts_files: list[Path]) -> bool:
    return any(_w300_tags(p.relative_to(root)) is not None for p in pts_files)


def _read_box_mats(root: Path, box_source: str) -> dict[tuple[str, str], np.ndarray]:
    """{(folder, image name): [x0, y0, x1, y1]} from the official ``Bounding Boxes/*.mat`` files, 0-based."""
    field = {"ground_truth": 2, "detector": 1}[box_source]
    boxes: dict[tuple[str, str], np.ndarray] = {}
    for base in (root, root.parent):
        for folder in ("Bounding Boxes", "Bounding_Boxes", "bounding_boxes"):
            for stem, faces_dir in _BOX_FILES.items():
                path = base / folder / f"bounding_boxes_{stem}.mat"
                if not path.is_file():
                    continue
                try:
                    cells = scipy.io.loadmat(str(path))["bounding_boxes"][0]
                except Exception as err:  # noqa: BLE001 - any unreadable .mat is one error line
                    raise DatasetError(path, f"unreadable box file ({type(err).__name__}: {err})") from None
                for cell in cells:
                    item = cell[0][0]
                    name, bb = str(item[0][0]), np.asarray(item[field], dtype=np.float64).reshape(4)
                    left, top, right, bottom = bb
                    box = [left, min(top, bottom), right, max(top, bottom)]  # 3FabRec swaps t/b if needed
                    boxes[(faces_dir, Path(name).stem)] = np.array(box) - 1.0
        if boxes:
            return boxes
    return boxes


def _box_for(rel: Path, boxes: dict[tuple[str, str], np.ndarray]) -> np.ndarray | None:
    folder = "/".join(p.lower() for p in rel.parts[:-1])
    for (faces_dir, _stem), box in ((k, v) for k, v in boxes.items() if k[1] == rel.stem):
        if folder.endswith(faces_dir):
            return box
    return None


def read_300w(root: Path, errors: Errors, split: str | None = None, box_source: str = "ground_truth") -> list[Sample]:
    """Read a 300-W tree; ``split`` keeps one of train/common/challenging/full/private (None: all)."""
    if split is not None and split not in W300_SPLITS:
        raise DatasetError(root, f"unknown 300-W split {split!r}; choose one of {', '.join(W300_SPLITS)}")
    boxes = _read_box_mats(root, box_source)
    samples = []
    for pts in sorted(root.rglob("*.pts")):
        rel = pts.relative_to(root)
        tags = _w300_tags(rel)
        if tags is None or (split is not None and split not in tags):
            continue
        points = errors.guard(read_pts, pts, 68)
        if points is None:
            continue
        samples.append(Sample(image_beside(pts), points, np.ones(68, bool), _box_for(rel, boxes),
                              subsets=tags, source=str(pts), key=str(rel)))
    return samples


def _read_txt_annotation(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, bool]]:
    """A WFLW-style line in a ``.txt`` beside its image: 196 coordinates [+ 4 box ints + 6 flags] [+ path]."""
    from kdmark.data.readers.wflw import parse_wflw_line  # local: wflw imports this module's helpers

    text = path.read_text().strip()
    return parse_wflw_line(text, str(path), allow_missing_path=True)[:3]


def _attributes(root: Path) -> dict[str, dict[str, bool]]:
    """Optional ``attributes.json`` beside the faces: {relative .pts path: {attribute: bool}} (kdmark's synthetic
    faces carry WFLW-style flags this way)."""
    path = root / "attributes.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise DatasetError(path, f"not valid JSON ({err})") from None


def read_folder(root: Path, errors: Errors, expected: int | None, split: str | None = None) -> list[Sample]:
    """Images with a ``.pts`` (300VW ``annot/``+``imgs/`` too) or a WFLW-style ``.txt`` of the same stem. The first
    sub-folder is the split tag; ``split`` keeps one when the folder has ``train``/``val``/``test`` sub-folders
    (a flat folder has no splits: all of it is read). Attributes from ``attributes.json`` become tags too."""
    samples = []
    attributes = _attributes(root)
    files = sorted(root.rglob("*.pts"))
    has_splits = any((root / name).is_dir() for name in ("train", "val", "test"))
    for pts in files:
        rel = pts.relative_to(root)
        tags = tuple(p for p in rel.parts[:-1] if p not in ("annot", "imgs"))[:1]
        if split is not None and has_splits and split not in tags:
            continue
        points = errors.guard(read_pts, pts, expected)
        if points is None:
            continue
        attrs = attributes.get(rel.as_posix(), {})
        tags += tuple(a for a, on in attrs.items() if on)
        samples.append(Sample(image_beside(pts, ("imgs", "images")), points, np.ones(len(points), bool),
                              attributes=attrs, subsets=tags, source=str(pts), key=str(rel)))
    if samples or files:
        return samples
    for txt in sorted(root.rglob("*.txt")):
        if not any((txt.with_suffix(ext)).is_file() for ext in IMAGE_EXTS):
            continue
        got = errors.guard(_read_txt_annotation, txt)
        if got is None:
            continue
        points, box, attrs = got
        points = errors.guard(check_points, points, expected, txt)
        if points is None:
            continue
        rel = txt.relative_to(root)
        samples.append(Sample(image_beside(txt), points, np.ones(len(points), bool), box, attrs,
                              source=str(txt), key=str(rel)))
    return samples
