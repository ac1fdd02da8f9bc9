"""kdmark: small, fast, accurate facial-landmark detectors by knowledge distillation.

Example:
    >>> import kdmark
    >>> ds = kdmark.read_dataset("../shared/data/300w", split="train")
    >>> metrics, per_image = kdmark.compute_metrics(pred, gt, ds.scheme)
"""

from kdmark.data import Dataset, DatasetError, Sample, read_dataset
from kdmark.metrics import Metrics, compute_metrics
from kdmark.schemes import LandmarkScheme, get_scheme

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "read_dataset",
    "Dataset",
    "Sample",
    "DatasetError",
    "LandmarkScheme",
    "get_scheme",
    "compute_metrics",
    "Metrics",
]
