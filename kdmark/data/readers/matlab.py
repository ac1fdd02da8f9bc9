"""MATLAB-file datasets: COFW (v5 via SciPy, v7.3 via h5py), COFW-68, and AFLW-19 (``AFLWinfo_release.mat``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from kdmark.data.readers._common import IMAGE_EXTS, Errors, check_points, xywh_to_xyxy
from kdmark.data.records import DatasetError, Sample

__all__ = ["read_cofw", "read_cofw68", "read_aflw", "mat_variables", "MatImage"]


def _is_hdf5(path: Path | str) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(str(path)))
    except OSError:
        return False


def mat_variables(path: Path) -> set[str]:
    """Variable names in a ``.mat`` file of either version (empty set if it is not one)."""
    if _is_hdf5(path):  # MATLAB v7.3 is HDF5; SciPy refuses it with NotImplementedError
        import h5py

        with h5py.File(path, "r") as f:
            return set(f.keys())
    try:
        return {name for name, _, _ in scipy.io.whosmat(str(path))}
    except Exception:  # noqa: BLE001 - "not a .mat" is an answer here, not an error
        return set()


@functools.lru_cache(maxsize=4)
def _load_v5(path: str) -> dict:
    return scipy.io.loadmat(path)


def _load_cofw(path: Path) -> dict[str, object]:
    """{'phis': (N, 87), 'bboxes': (N, 4), 'images': list or None, 'suffix': 'T'|'Tr', 'v73': bool}."""
    try:
        if _is_hdf5(path):
            raise NotImplementedError("MATLAB v7.3")
        mat = _load_v5(str(path))
        suffix = "Tr" if "phisTr" in mat else "T"
        images = mat.get("Is" + suffix)
        return {"phis": np.asarray(mat["phis" + suffix], float), "bboxes": np.asarray(mat["bboxes" + suffix], float),
                "n_images": None if images is None else len(images), "suffix": suffix, "v73": False}
    except NotImplementedError:
        import h5py

        with h5py.File(path, "r") as f:
            suffix = "Tr" if "phisTr" in f else "T"
            n_images = f["Is" + suffix].shape[1] if ("Is" + suffix) in f else None
            return {"phis": np.array(f["phis" + suffix]).T, "bboxes": np.array(f["bboxes" + suffix]).T,
                    "n_images": n_images, "suffix": suffix, "v73": True}
    except KeyError as err:
        raise DatasetError(path, f"not a COFW file: no variable {err}") from None
    except Exception as err:  # noqa: BLE001 - corrupt files become one line
        raise DatasetError(path, f"unreadable .mat file ({type(err).__name__}: {err})") from None


@dataclass(frozen=True)
class MatImage:
    """A picklable reference to image ``index`` of cell array ``var`` inside a COFW ``.mat`` file."""

    path: str
    var: str
    index: int

    def __call__(self) -> np.ndarray:
        try:
            img = _mat_image(self.path, self.var, self.index)
        except Exception as err:  # noqa: BLE001
            raise DatasetError(f"{self.path}#{self.var}[{self.index}]", f"unreadable image ({err})") from None
        img = np.ascontiguousarray(img.astype(np.uint8))
        return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img

    def __str__(self) -> str:
        return f"{self.path}#{self.var}[{self.index}]"


def _mat_image(path: str, var: str, index: int) -> np.ndarray:
    if not _is_hdf5(path):
        return np.asarray(_load_v5(path)[var][index, 0])
    import h5py

    with h5py.File(path, "r") as f:
        ref = f[var][0, index]
        return np.array(f[ref]).T  # stored as (3, W, H) or (W, H)


def read_cofw(files: list[Path], errors: Errors, split: str | None = None) -> list[Sample]:
    """COFW-29 from ``COFW_{train,test}[_color].mat``: ``phis`` rows are [x*29, y*29, occluded*29], 1-based."""
    samples = []
    for path in files:
        data = errors.guard(_load_cofw, path)
        if data is None:
            continue
        file_split = "train" if data["suffix"] == "Tr" else "test"
        if split is not None and split != file_split:
            continue
        for i, (phi, bb) in enumerate(zip(data["phis"], data["bboxes"], strict=False)):
            where = f"{path}#{i}"
            pts = errors.guard(check_points, np.stack([phi[0:29], phi[29:58]], axis=1) - 1.0, 29, where)
            if pts is None:
                continue
            image = MatImage(str(path), "Is" + data["suffix"], i) if data["n_images"] else path.with_name(f"{i}.jpg")
            samples.append(Sample(image, pts, phi[58:87] == 0, xywh_to_xyxy(bb, one_based=True),
                                  subsets=(file_split,), source=where, key=where))
    return samples


def _cofw68_image(root: Path, i: int) -> Path | MatImage:
    for cand in (root, root.parent):
        for name in ("COFW_test_color.mat", "COFW_test.mat"):
            if (cand / name).is_file():
                return MatImage(str(cand / name), "IsT", i - 1)
    for ext in IMAGE_EXTS[:4]:
        if (root / "images" / f"{i}{ext}").is_file():
            return root / "images" / f"{i}{ext}"
    return root / "images" / f"{i}.jpg"


def read_cofw68(root: Path, errors: Errors) -> list[Sample]:
    """COFW-68 test annotations (``test_annotations/{i}_points.mat`` + ``cofw68_test_bboxes.mat``), 1-based."""
    ann = root / "test_annotations"
    files = sorted(ann.glob("*_points.mat"), key=lambda p: int(p.stem.split("_")[0]))
    box_file = next(iter(sorted(root.rglob("cofw68_test_bboxes.mat"))), None)
    boxes = None
    if box_file is not None:
        boxes = errors.guard(lambda: np.asarray(scipy.io.loadmat(str(box_file))["bboxes"], float))
    samples = []
    for path in files:
        i = int(path.stem.split("_")[0])
        try:
            mat = scipy.io.loadmat(str(path))
            pts, occ = np.asarray(mat["Points"], float), np.asarray(mat["Occ"]).reshape(-1)
        except Exception as err:  # noqa: BLE001
            errors.guard(_raise, path, f"unreadable COFW-68 annotation ({type(err).__name__}: {err})")
            continue
        pts = errors.guard(check_points, pts - 1.0, 68, path)
        if pts is None:
            continue
        box = xywh_to_xyxy(boxes[i - 1], one_based=True) if boxes is not None and i <= len(boxes) else None
        samples.append(Sample(_cofw68_image(root, i), pts, occ == 0, box, subsets=("test",), source=str(path),
                              key=f"cofw68/{i}"))
    return samples


def _raise(path: Path, problem: str) -> None:
    raise DatasetError(path, problem)


def _aflw_images_dir(root: Path) -> Path:
    for cand in (root / "flickr", root / "data" / "flickr", root / "aflw" / "data" / "flickr"):
        if cand.is_dir():
            return cand
    return root / "flickr"


def _frontal_names(frontal_list: Path | None) -> set[str] | None:
    if frontal_list is None:
        return None
    names = set()
    for line in Path(frontal_list).read_text().splitlines():
        first = line.replace(",", " ").split()[:1]
        if first and not first[0].startswith(("image_name", "#")):
            names.add(first[0].replace("\\", "/").split("flickr/")[-1])
    return names


def read_aflw(path: Path, errors: Errors, split: str | None = None, train_size: int = 20000,
              frontal_list: Path | None = None) -> list[Sample]:
    """AFLW-19 from ``AFLWinfo_release.mat`` (docs/datasets.md §4): ``ra[:train_size]`` train, the rest test.

    The frontal subset is the test faces named in ``frontal_list`` (HRNet/mmpose 1314-face list) when given,
    otherwise the faces with all 19 points visible (the 1165-face rule). The two are not the same set.
    """
    try:
        mat = scipy.io.loadmat(str(path))
        names = [str(n[0][0]) for n in mat["nameList"]]
        data, bbox = np.asarray(mat["data"], float), np.asarray(mat["bbox"], float)
        mask, ra = np.asarray(mat["mask_new"]), np.asarray(mat["ra"]).reshape(-1).astype(int) - 1
    except KeyError as err:
        raise DatasetError(path, f"not an AFLWinfo file: no variable {err}") from None
    except Exception as err:  # noqa: BLE001
        raise DatasetError(path, f"unreadable .mat file ({type(err).__name__}: {err})") from None
    images, frontal = _aflw_images_dir(path.parent), _frontal_names(frontal_list)
    order = [(i, "train") for i in ra[:train_size]] + [(i, "test") for i in ra[train_size:]]
    samples = []
    for i, file_split in order:
        is_frontal = file_split == "test" and (names[i] in frontal if frontal is not None else bool(mask[i].all()))
        tags = (file_split, "full") + (("frontal",) if is_frontal else ()) if file_split == "test" else ("train",)
        if split is not None and split not in tags:
            continue
        where = f"{path}#{i}"
        pts = errors.guard(check_points, data[i].reshape(2, 19).T, 19, where)
        if pts is None:
            continue
        x1, x2, y1, y2 = bbox[i]
        samples.append(Sample(images / names[i], pts, mask[i] == 1, np.array([x1, y1, x2, y2]), subsets=tags,
                              source=where, key=names[i] + f"#{i}"))
    return samples
