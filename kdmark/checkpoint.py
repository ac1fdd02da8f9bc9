"""Checkpoints: plain dicts of tensors and built-in types, loadable with ``torch.load(weights_only=True)``,
written atomically (temporary file, fsync, rename) so a crash never leaves a half-written file behind.

Layout: ``{"format": "kdmark-checkpoint", "version": 1, "card": {...}, "config": {...}, "state_dict": {...},
"channel_spec": {...} | None, "metrics": {...}, "train_state": {...} | None}``. The card holds the landmark scheme,
input size, normalisation, backbone, head and codec: everything needed to evaluate or export the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from kdmark.card import check_card, is_onnx
from kdmark.errors import CheckpointError
from kdmark.io import atomic_write
from kdmark.models.landmark_net import LandmarkNet, model_from_card
from kdmark.weights import load_weights_only, why_unreadable

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "CheckpointError"]

FORMAT, VERSION = "kdmark-checkpoint", 1


def save_checkpoint(path: str | Path, model: LandmarkNet, config: dict | None = None, metrics: dict | None = None,
                    train_state: dict | None = None, channel_spec: dict | None = None) -> Path:
    """Write ``model`` (weights + card) with its resolved config, metrics and optional training state."""
    if channel_spec is None:
        channel_spec = getattr(model, "channel_spec", None)  # a pruned model carries its own spec
    payload = {"format": FORMAT, "version": VERSION, "card": model.card, "config": config or {},
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "channel_spec": channel_spec, "metrics": metrics or {}, "train_state": train_state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def read_checkpoint(path: str | Path) -> dict:
    """The raw checkpoint dict (``weights_only=True``: no code from the file is ever run). ``path`` may be a zoo
    model's name (``kdmark-68-s``)."""
    from kdmark.zoo import resolve

    path = Path(resolve(str(path)))
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = load_weights_only(path)
    except Exception as err:  # noqa: BLE001 - truncated zips, pickles, random bytes: all one line
        if is_onnx(path):
            raise CheckpointError(f"{path}: an exported ONNX model where a .ckpt checkpoint is needed (eval and "
                                  "predict take either)") from None
        raise CheckpointError(f"{path}: not a readable kdmark checkpoint ({why_unreadable(path, err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a kdmark checkpoint (no kdmark header)")
    check_card(payload.get("card"), path)
    weights = payload.get("state_dict")
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{path}: a kdmark checkpoint without its weights (state_dict "
                              f"{'missing' if weights is None else 'empty or not a mapping'})")
    return payload


def load_checkpoint(path: str | Path) -> tuple[LandmarkNet, dict]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, payload)."""
    payload = read_checkpoint(path)
    model = model_from_card(payload["card"])
    if payload.get("channel_spec"):
        from kdmark.pruning import apply_channel_spec  # pruned checkpoints: rebuild the slimmer layers first

        apply_channel_spec(model, payload["channel_spec"])
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit the architecture in its card "
                              f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    return model.eval(), payload
