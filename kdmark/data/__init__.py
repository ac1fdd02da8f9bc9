"""Datasets: native-format readers, the sample record, checks and pictures."""

from kdmark.data.formats import FORMATS, detect_format, read_dataset
from kdmark.data.records import Dataset, DatasetError, Problem, Sample

__all__ = ["read_dataset", "detect_format", "FORMATS", "Dataset", "DatasetError", "Problem", "Sample"]
