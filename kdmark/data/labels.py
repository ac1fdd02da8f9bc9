"""A pseudo-labelled folder's own records (``kdmark data label`` writes them): one JSON line per finished photo in
``labels*.jsonl``, with each face's box, per-point confidence and the ``.pts`` file it was written to. Training
reads the confidences to weight each point (``data.extra``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_label_records", "read_confidences"]


def read_label_records(folder: str | Path) -> list[dict]:
    """Every record of ``folder/labels*.jsonl``; a line cut short by a kill is skipped (that photo is redone)."""
    recs = []
    for f in sorted(Path(folder).glob("labels*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):  # a cut line can still parse (e.g. a bare number): skip it too
                recs.append(rec)
    return recs


def read_confidences(root: str | Path) -> dict[str, np.ndarray]:
    """Per-point confidences of a labelled folder: ``.pts`` path (relative to ``root``) -> (K,) array."""
    conf = {}
    for rec in read_label_records(root):
        for face in rec.get("faces", []):
            if face.get("pts"):
                conf[face["pts"]] = np.asarray(face["confidence"], np.float64)
    return conf
