"""A pseudo-labelled folder's own records (``kdmark data label`` writes them): one JSON line per finished photo in
``labels*.jsonl``, with each face's box, per-point confidence and the ``.pts`` file it was written to. Training
reads the confidences to weight each point (``data.extra``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_label_records", "read_confidences"]


def _records(folder: str | Path):
    """(file, record) for every record of ``folder/labels*.jsonl``; a line cut short by a kill is skipped (that
    photo is redone)."""
    for f in sorted(Path(folder).glob("labels*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):  # a cut line can still parse (e.g. a bare number): skip it too
                yield f, rec


def read_label_records(folder: str | Path) -> list[dict]:
    """Every record of ``folder/labels*.jsonl``; a line cut short by a kill is skipped (that photo is redone)."""
    return [rec for _, rec in _records(folder)]


def read_confidences(root: str | Path) -> dict[str, np.ndarray]:
    """Per-point confidences of a labelled folder: ``.pts`` path (relative to ``root``) -> (K,) array of finite
    numbers in [0, 1]; anything else is one ``DatasetError`` naming the labels file and the face."""
    from kdmark.errors import DatasetError

    conf = {}
    for f, rec in _records(root):
        for face in rec.get("faces", []) if isinstance(rec.get("faces"), list) else []:
            if isinstance(face, dict) and face.get("pts"):
                try:
                    c = np.asarray(face.get("confidence"), np.float64).reshape(-1)
                except (TypeError, ValueError):
                    c = np.array([np.nan])
                if c.size == 0 or not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
                    raise DatasetError(f, f"{face['pts']}: confidences must be numbers in [0, 1], one per point")
                conf[face["pts"]] = c
    return conf
