"""One model object under every verb: :func:`load_model` turns a zoo name, a ``.ckpt``, an ``.onnx`` file or a
``LandmarkNet`` into a :class:`Model` with a validated, frozen :class:`ModelCard` and one ``predict`` on face crops,
run by PyTorch or onnxruntime. Predictor, evaluate and bench all load models through it; it is the one place that
resolves zoo names, decides by suffix what a file is, and picks the shipped FP32 or INT8 file.

Example:
    >>> m = kdmark.load_model("kdmark-68-s")          # or "run/best.ckpt", "model.onnx"
    >>> m.card.input_size, m.card.scheme, m.backend     # (120, '300w', 'onnx')
    >>> points, scores = m.predict(crops)               # (N, 3, 120, 120) float32 in [0, 1] -> crop pixels

Torch-free for ONNX files and zoo models: PyTorch is imported only for checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdmark.card import ModelCard, is_onnx
from kdmark.errors import CheckpointError

__all__ = ["ModelCard", "Model", "load_model", "model_kind", "onnx_file", "shipped_onnx", "BACKENDS"]

BACKENDS = ("auto", "torch", "onnx")
_ZOO_PROVENANCE = ("summary", "recipe", "data", "note", "nme", "fr", "auc", "params", "macs")


class Model:
    """A loaded landmark model: ``card`` (:class:`ModelCard`), ``backend`` ("torch" or "onnx"), ``path`` (the file,
    None for an in-memory net), ``net`` (the ``LandmarkNet`` on PyTorch, else None) and ``payload`` (a
    checkpoint's saved dict: its config and metrics; ``{}`` for ONNX files).

    ``predict(crops)``: (N, 3, S, S) float32 RGB crops in [0, 1] at ``card.input_size`` -> (N, K, 2) points in crop
    pixels and (N, K) scores; numpy in, numpy out (a torch tensor in gives tensors out)."""

    def __init__(self, card: ModelCard, backend: str, path: Path | None = None, net=None, session=None,
                 payload: dict | None = None, threads: int | None = None):
        self.card, self.backend, self.path, self.net = card, backend, path, net
        self.payload = payload or {}
        self._session, self._threads = session, threads

    def __repr__(self) -> str:
        where = self.path or "in memory"
        return f"Model({self.card.scheme}, {self.card.input_size} px, {self.card.head}, {self.backend}: {where})"

    @property
    def num_points(self) -> int:
        return self.card.num_points

    @property
    def codec(self):
        """The codec that decodes this model's outputs (training targets, evaluation crops); needs PyTorch."""
        if self.net is not None:
            return self.net.codec
        from kdmark.codecs import create_codec

        return create_codec(self.card["codec"])

    def predict(self, crops):
        is_tensor = hasattr(crops, "detach")
        if self.backend == "torch":
            import torch

            if self._threads:
                torch.set_num_threads(self._threads)
            x = crops if is_tensor else torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
            with torch.no_grad():
                pts, scores = self.net.predict(x.to(next(self.net.parameters()).device))
            return (pts, scores) if is_tensor else (pts.cpu().numpy(), scores.cpu().numpy())
        x = crops.detach().cpu().float().numpy() if is_tensor else np.ascontiguousarray(crops, dtype=np.float32)
        pts, scores = self._session.run(["points", "scores"], {"image": x})
        if is_tensor:
            import torch

            return torch.from_numpy(pts), torch.from_numpy(scores)
        return pts, scores


def _onnx(path: Path, threads: int | None, source: Path | None = None) -> Model:
    from kdmark.runtime import onnx_session, session_card

    session = onnx_session(path, threads)
    return Model(ModelCard.from_dict(session_card(session, path), path), "onnx", source or path, session=session,
                 threads=threads)


def _torch(net, path: Path | None, payload: dict | None, threads: int | None) -> Model:
    return Model(ModelCard.from_dict(net.card, path or "model"), "torch", path, net=net.eval(), payload=payload,
                 threads=threads)


def model_kind(spec) -> str:
    """What ``spec`` names: "net" (a LandmarkNet or a loaded Model), "zoo" (a shipped model's name), "onnx" (an
    exported file, by its suffix in any case) or "checkpoint" (anything else: a .ckpt path)."""
    from kdmark import zoo

    if isinstance(spec, Model) or (hasattr(spec, "predict") and hasattr(spec, "card")):
        return "net"
    if zoo.is_zoo_name(spec):
        return "zoo"
    return "onnx" if is_onnx(spec) else "checkpoint"


def shipped_onnx(entry, precision: str) -> Path | None:
    """The shipped ONNX file of a zoo model (``kdmark.zoo.ZooModel``) at ``precision`` ("auto":
    :func:`kdmark.runtime.pick_precision`), or None where it ships none."""
    from kdmark.runtime import pick_precision

    return entry.int8 if pick_precision(precision, entry.int8 is not None) == "int8" else entry.onnx


def onnx_file(spec, folder: str | Path, precision: str = "fp32") -> Path:
    """The ONNX file of a zoo name (its shipped file at ``precision``), of an ``.onnx`` path (itself), or of a
    checkpoint (exported into ``folder``, parity-checked; torch is imported for this case only)."""
    from kdmark import zoo

    kind = model_kind(spec)
    if kind == "zoo":
        entry = zoo.get(spec)
        spec = shipped_onnx(entry, precision) or entry.checkpoint
        kind = model_kind(spec)
    path = Path(spec)
    if kind == "onnx":
        return path
    from kdmark.deploy.export import export_onnx

    return export_onnx(path, Path(folder) / (path.stem + ".onnx")).path


def load_model(spec, backend: str = "auto", precision: str = "auto", threads: int | None = None) -> Model:
    """The model ``spec`` names: a zoo model's name (its shipped ONNX file, FP32 or INT8 by ``precision``, unless
    ``backend="torch"`` asks for its checkpoint), a ``.ckpt`` (PyTorch; ``backend="onnx"`` exports it to a
    temporary file first), an ``.onnx`` file, or a ``LandmarkNet``. ``precision`` ("auto", "fp32", "int8") chooses
    between a zoo model's shipped files (:func:`kdmark.runtime.pick_precision`); ``threads``: CPU threads for
    inference (None: the library default). Every failure is one ``CheckpointError`` line naming the file."""
    from kdmark import zoo
    from kdmark.errors import ConfigError
    from kdmark.runtime import check_precision

    check_precision(precision)
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    kind = model_kind(spec)
    if kind == "net":
        return spec if isinstance(spec, Model) else _torch(spec, None, None, threads)
    about = None
    if kind == "zoo":  # its shipped ONNX file, or its checkpoint (backend="torch", or no ONNX file ships)
        entry = zoo.get(spec)
        about = {"zoo": entry.name, **{k: entry.info[k] for k in _ZOO_PROVENANCE if k in entry.info}}
        shipped = shipped_onnx(entry, precision) if backend != "torch" else None
        spec = shipped if shipped is not None else entry.checkpoint
        kind = model_kind(spec)
    elif precision == "int8" and not str(spec).lower().endswith(".int8.onnx"):
        raise CheckpointError(f"{spec}: precision='int8' chooses a zoo model's shipped INT8 file; for this model "
                              "export one (kdmark export MODEL --int8 --calibration FACES) and run the .int8.onnx")
    model = _load_file(Path(spec), kind, backend, threads)
    if about:
        model.card = model.card.with_provenance(**about)
    return model


def _load_file(path: Path, kind: str, backend: str, threads: int | None) -> Model:
    if kind == "onnx":
        if backend == "torch":
            raise CheckpointError(f"{path}: an ONNX model runs on onnxruntime; --backend torch needs a .ckpt")
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        return _onnx(path, threads)
    if backend == "onnx":  # a checkpoint asked to run on onnxruntime: exported to a temporary folder, which is
        import tempfile  # gone once the session holds the model

        with tempfile.TemporaryDirectory(prefix="kdmark-") as tmp:
            return _onnx(onnx_file(path, tmp), threads, source=path)
    from kdmark.checkpoint import load_checkpoint

    net, payload = load_checkpoint(path)
    return _torch(net, path, payload, threads)
