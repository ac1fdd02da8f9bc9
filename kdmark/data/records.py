"""The one sample record every reader yields, the dataset that holds them, and the error bad input raises.

Coordinates are 0-based pixel centres of the image the sample points to: the top-left pixel's centre is (0, 0).
Readers of 1-based formats (iBUG ``.pts``, COFW and 300-W box ``.mat`` files) subtract 1 once, on reading; nothing
downstream ever converts again. Boxes are ``[x0, y0, x1, y1]`` in the same frame.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdmark.errors import DatasetError
from kdmark.schemes import LandmarkScheme

__all__ = ["Sample", "Dataset", "DatasetError", "Problem", "ImageRef"]


@dataclass(frozen=True)
class Problem:
    """A problem found while reading or checking a dataset: the file and what is wrong with it."""

    path: str
    problem: str
    kind: str = "invalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


ImageRef = Path | Callable[[], np.ndarray]
"""Where a sample's pixels are: a file path, or a picklable callable (images stored inside a ``.mat`` file)."""


@dataclass
class Sample:
    """One annotated face.

    Attributes:
        image: the image file, or a callable returning the RGB array (COFW keeps its images in the ``.mat``).
        points: (K, 2) float64, 0-based pixel coordinates (x, y).
        visible: (K,) bool; False for points annotated as occluded or invisible.
        box: face box [x0, y0, x1, y1] from the dataset, or None when the dataset gives none.
        attributes: WFLW-style flags (pose, expression, illumination, makeup, occlusion, blur) when known.
        subsets: the split and subset tags this face belongs to, e.g. ("train", "helen").
        source: the annotation file (with ``:line`` or ``#index`` where one file holds many faces).
        key: a unique id within the dataset (image paths are not unique: one WFLW photo holds many faces).
        weights: (K,) per-point loss weights (pseudo-labels: the folder's weight times each point's confidence);
            None: every visible point weighs 1.
    """

    image: ImageRef
    points: np.ndarray
    visible: np.ndarray
    box: np.ndarray | None = None
    attributes: dict[str, bool] = field(default_factory=dict)
    subsets: tuple[str, ...] = ()
    source: str = ""
    key: str = ""
    weights: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).reshape(4)
        if not self.key:
            self.key = self.source or str(self.image)
        if self.weights is not None:
            self.weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)

    @property
    def num_points(self) -> int:
        return len(self.points)

    def landmark_box(self) -> np.ndarray:
        """Tight [x0, y0, x1, y1] box around the points."""
        return np.concatenate([self.points.min(axis=0), self.points.max(axis=0)])


@dataclass
class Dataset:
    """Samples read from one dataset, with what the reader knows about them.

    Attributes:
        samples: the faces, in file order.
        scheme: the landmark scheme of every sample.
        format: the detected format name ("300w", "wflw", "cofw", "cofw68", "aflw", "celeba", "coco", "folder").
        root: what was read.
        normaliser: the NME normaliser the literature uses for this dataset (None: the scheme's default).
        problems: what was skipped (with ``skip_bad=True``) and why.
    """

    samples: list[Sample]
    scheme: LandmarkScheme
    format: str
    root: Path
    normaliser: str | None = None
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def subset(self, tag: str) -> Dataset:
        """The samples tagged ``tag`` (a split such as "train" or "common", or a subset such as "helen")."""
        picked = [s for s in self.samples if tag in s.subsets]
        return Dataset(picked, self.scheme, self.format, self.root, self.normaliser, list(self.problems))

    def tag_counts(self) -> dict[str, int]:
        """How many faces carry each split/subset tag, in first-seen order."""
        return dict(collections.Counter(t for s in self.samples for t in s.subsets))
