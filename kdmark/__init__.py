"""kdmark: small, fast, accurate facial-landmark detectors by knowledge distillation.

Example:
    >>> import kdmark
    >>> faces = kdmark.Predictor().predict("photo.jpg")   # the shipped kdmark-68-s; faces[0].landmarks: (68, 2)
    >>> faces[0].pose                                      # Pose(yaw=..., pitch=..., roll=...) in degrees
    >>> picture = kdmark.draw("photo.jpg", faces, pose=True)  # RGB array: boxes, points by confidence, pose axes
    >>> ds = kdmark.read_dataset("../shared/data/300w", split="train")
    >>> metrics, per_image = kdmark.compute_metrics(pred, gt, ds.scheme)

The names below are imported on first use, so ``import kdmark`` is cheap.
"""

from importlib import import_module

__version__ = "0.1.0"

_API = {  # public name -> module that defines it
    "Predictor": "kdmark.deploy.predict",
    "Face": "kdmark.deploy.predict",
    "Tracker": "kdmark.deploy.predict",  # faces followed through your own frames: Predictor().track()
    "draw": "kdmark.drawing",
    "head_pose": "kdmark.pose",
    "Pose": "kdmark.pose",
    "train": "kdmark.jobs.train",
    "distill": "kdmark.jobs.train",
    "prune": "kdmark.jobs.prune",
    "evaluate": "kdmark.jobs.evaluate",
    "export_onnx": "kdmark.deploy.export",
    "load_model": "kdmark.model",  # one loaded model (zoo name, .ckpt, .onnx): .card, .predict(crops)
    "Model": "kdmark.model",
    "ModelCard": "kdmark.model",
    "load_checkpoint": "kdmark.checkpoint",
    "load_config": "kdmark.config",
    "TrainConfig": "kdmark.config",  # the typed settings of train (DistillConfig: distill, PruneConfig: prune)
    "DistillConfig": "kdmark.config",
    "PruneConfig": "kdmark.config",
    "read_dataset": "kdmark.data",
    "Dataset": "kdmark.data",
    "Sample": "kdmark.data",
    "DatasetError": "kdmark.data",
    "LandmarkScheme": "kdmark.schemes",
    "get_scheme": "kdmark.schemes",
    "compute_metrics": "kdmark.metrics",
    "Metrics": "kdmark.metrics",
    "zoo": "kdmark.zoo",  # the shipped models: kdmark.zoo.models(), kdmark.zoo.get("kdmark-68-s")
}
_RENAMED = {"prune": "prune_checkpoint"}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'kdmark' has no attribute {name!r}")
    module = import_module(_API[name])
    value = module if module.__name__ == f"kdmark.{name}" else getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
