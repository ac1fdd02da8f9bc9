"""Every error kdmark raises about a user's data, models, settings or machine, defined here, in one torch-free module
that imports nothing of kdmark: the CLI turns each into one line on stderr (exit status 2) without importing torch,
timm or the modules that raise them. (``kdmark.config``, ``kdmark.schemes``, ``kdmark.metrics`` and
``kdmark.data.records`` re-export the ones they raise, for older imports.)"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "DatasetError", "MetricError", "SchemeError", "CheckpointError", "BackboneError",
           "TrainingError", "ExportError", "DetectorError", "TeacherError", "OutputError", "USER_ERRORS"]


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; the message says where and what."""


class DatasetError(ValueError):
    """Bad input data. ``str(err)`` is one line that names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class SchemeError(ValueError):
    """A landmark scheme name, point count or conversion that kdmark does not know."""


class MetricError(ValueError):
    """A metric that cannot be computed, e.g. a zero normaliser; the message names the image."""


class CheckpointError(ValueError):
    """A file that is not a readable kdmark checkpoint; the message names the file."""


class BackboneError(ValueError):
    """An unknown timm model, or pretrained weights that cannot be had."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message names the step and the last good checkpoint."""


class ExportError(RuntimeError):
    """Export failed or the exported model does not match PyTorch within tolerance."""


class DetectorError(RuntimeError):
    """No face detector available (dlib missing)."""


class OutputError(OSError):
    """An output kdmark refuses to write: it would replace an input, a read-only file or a hard-linked one, or
    delete what kdmark did not write. ``str(err)`` is one line naming the file."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "output refused"


class TeacherError(RuntimeError):
    """A teacher that cannot run here (a missing package or file); the message says what to install."""


USER_ERRORS = (DatasetError, MetricError, SchemeError, FileNotFoundError, ConfigError, CheckpointError,
               BackboneError, TrainingError, ExportError, DetectorError, TeacherError, IsADirectoryError, OutputError)
