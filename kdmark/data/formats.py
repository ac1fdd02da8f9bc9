"""Format detection and the one entry point that reads any supported dataset: :func:`read_dataset`."""

from __future__ import annotations

import collections
from pathlib import Path

from kdmark.data.readers import ibug, matlab, tables, wflw
from kdmark.data.readers._common import Errors, is_image_file
from kdmark.data.records import Dataset, DatasetError, Sample
from kdmark.schemes import LandmarkScheme, SchemeError, get_scheme, scheme_for_num_points

__all__ = ["read_dataset", "detect_format", "FORMATS"]

FORMATS = ("300w", "folder", "wflw", "cofw", "cofw68", "aflw", "celeba", "coco")

# The NME normaliser each dataset's literature reports (docs/datasets.md §7.1); None = the scheme's default.
_PROTOCOL_NORMALISER = {"cofw68": "inter_pupil", "aflw": "box"}


def _detect_file(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "coco"
    if suffix == ".mat":
        names = matlab.mat_variables(path)
        if {"phisT", "phisTr"} & names:
            return "cofw"
        if {"nameList", "ra", "data"} <= names:
            return "aflw"
        if "bounding_boxes" in names:
            raise DatasetError(path, "a 300-W box file: read the 300-W folder, its boxes are picked up from it")
        raise DatasetError(path, "a .mat file of no known layout (COFW, AFLWinfo)")
    if suffix == ".txt":
        if path.name.startswith("list_landmarks"):
            return "celeba"
        with open(path, errors="replace") as f:
            first = next((ln for ln in f if ln.strip()), "")
        if len(first.split()) >= 196:
            return "wflw"
    if suffix == ".pts":
        raise DatasetError(path, "a single .pts file: give the folder that holds the images and .pts files")
    raise DatasetError(path, "unknown annotation format (expected a folder, .json, .mat or a WFLW/CelebA list)")


def _detect_dir(root: Path) -> str:
    def has(pattern: str) -> bool:
        return next(iter(root.rglob(pattern)), None) is not None

    if root.name == "WFLW_annotations" or has("list_98pt_rect_attr_*.txt") or has("list_98pt_test*.txt"):
        return "wflw"
    if has("list_landmarks*celeba.txt"):
        return "celeba"
    if has("AFLWinfo_release.mat"):
        return "aflw"
    if (root / "test_annotations").is_dir() and has("*_points.mat"):
        return "cofw68"
    if any(p.suffix.lower() == ".mat" and p.name.upper().startswith("COFW") for p in root.glob("*.mat")):
        return "cofw"
    pts = sorted(root.rglob("*.pts"))
    if pts:
        return "300w" if ibug.is_300w_layout(root, pts) else "folder"
    if any(tables.is_coco_json(p) for p in root.glob("*.json")):
        return "coco"
    if any(is_image_file(p) and p.with_suffix(".txt").is_file() for p in root.rglob("*")):
        return "folder"
    if not any(root.iterdir()):
        raise DatasetError(root, "empty folder")
    raise DatasetError(root, "no landmark annotations found (no .pts, WFLW/CelebA lists, COFW/AFLW .mat or COCO json)")


def detect_format(path: str | Path) -> str:
    """Name the format of ``path`` (one of :data:`FORMATS`), or raise DatasetError saying why it cannot."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    return _detect_dir(path) if path.is_dir() else _detect_file(path)


def _read(fmt: str, path: Path, errors: Errors, split: str | None, options: dict) -> list[Sample]:
    if fmt == "300w":
        return ibug.read_300w(path, errors, split, options.get("box_source", "ground_truth"))
    if fmt == "folder":
        return ibug.read_folder(path, errors, None, split)
    if fmt == "wflw":
        lists = [(path, None)] if path.is_file() else wflw.find_wflw_lists(path)
        return wflw.read_wflw_lists(lists, errors, split)
    if fmt == "cofw":
        files = [path] if path.is_file() else sorted(p for p in path.glob("*.mat") if p.name.upper().startswith("COFW"))
        return matlab.read_cofw(files, errors, split)
    if fmt == "cofw68":
        return matlab.read_cofw68(path, errors)
    if fmt == "aflw":
        mat = path if path.is_file() else next(iter(sorted(path.rglob("AFLWinfo_release.mat"))))
        return matlab.read_aflw(mat, errors, split, options.get("train_size", 20000), options.get("frontal_list"))
    if fmt == "celeba":
        return tables.read_celeba(path, errors, split, options.get("variant"))
    if fmt == "coco":
        files = [path] if path.is_file() else sorted(p for p in path.glob("*.json") if tables.is_coco_json(p))
        return tables.read_coco(files, errors, split)
    raise DatasetError(path, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _one_scheme(samples: list[Sample], scheme: LandmarkScheme | None, errors: Errors, root: Path) -> LandmarkScheme:
    """Every sample must have the scheme's point count; without a given scheme the commonest count decides."""
    if scheme is None:
        if not samples:
            raise DatasetError(root, "no faces found")
        count = collections.Counter(s.num_points for s in samples).most_common(1)[0][0]
        try:
            scheme = scheme_for_num_points(count)
        except SchemeError as err:
            raise DatasetError(root, str(err)) from None
    for s in samples:
        if s.num_points != scheme.num_points:
            errors.guard(_raise, s.source, f"wrong point count: {s.num_points} points, expected "
                         f"{scheme.num_points} ({scheme.name})")
    return scheme


def _raise(where: str, problem: str) -> None:
    raise DatasetError(where, problem)


def read_dataset(
    path: str | Path,
    format: str = "auto",
    split: str | None = None,
    scheme: str | LandmarkScheme | None = None,
    skip_bad: bool = False,
    **options,
) -> Dataset:
    """Read a landmark dataset in its native format.

    Args:
        path: a dataset folder (300-W tree, WFLW release, CelebA release, COFW-68 folder, a folder of images with
            ``.pts``) or one annotation file (WFLW list, COFW/AFLW ``.mat``, COCO ``.json``).
        format: one of :data:`FORMATS`, or "auto" to detect it.
        split: keep one split ("train", "test", "common", "challenging", "full", "private", "val", "frontal").
        scheme: the expected landmark scheme; faces with another point count are errors. Default: inferred.
        skip_bad: skip bad faces and list them in ``Dataset.problems`` instead of raising on the first one.
        **options: format options: ``box_source`` ("ground_truth"|"detector", 300-W box files), ``train_size``
            and ``frontal_list`` (AFLW), ``variant`` ("aligned"|"wild", CelebA).

    Raises:
        DatasetError: one line naming the file and the problem.

    Example:
        >>> ds = read_dataset("../shared/data/300w", split="train")
        >>> len(ds), ds.scheme.name, ds[0].points.shape
        (1213, '300w', (68, 2))
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    errors = Errors(skip_bad)
    samples = _read(fmt, path, errors, split, options)
    if not samples and not errors.problems:
        where = f"split {split!r} of " if split else ""
        raise DatasetError(path, f"no faces found in {where}this {fmt} dataset")
    wanted = get_scheme(scheme) if scheme is not None else None
    resolved = _one_scheme(samples, wanted, errors, path)
    bad = {p.path for p in errors.problems}
    samples = [s for s in samples if s.num_points == resolved.num_points and s.source not in bad]
    return Dataset(samples, resolved, fmt, path, _PROTOCOL_NORMALISER.get(fmt), errors.problems)
