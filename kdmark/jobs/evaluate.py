"""Evaluation the literature's way: predictions mapped back to original image pixels, then NME / FR / AUC per
dataset and per subset, with the files a person wants to open (JSON, CSV, CED plot, worst-case grid)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdmark.config import EvalConfig
from kdmark.data import read_dataset
from kdmark.data.dataset import LandmarkDataset, split_by_photo
from kdmark.data.images import load_image
from kdmark.data.records import Sample
from kdmark.data.show import draw_grid
from kdmark.data.transforms import apply_affine, crop_matrix, face_square, warp_image
from kdmark.engine.loop import predict_dataset
from kdmark.errors import DatasetError
from kdmark.io import atomic_write_text, write_together
from kdmark.metrics import Metrics, plot_ced, score_samples
from kdmark.model import load_model
from kdmark.schemes import LandmarkScheme, get_scheme

__all__ = ["evaluate", "evaluate_samples", "EvalResult"]


@dataclass
class EvalResult:
    metrics: Metrics
    subsets: dict[str, Metrics]
    per_image: np.ndarray
    out_dir: Path
    files: list[Path] = field(default_factory=list)


def _per_image_csv(samples: list[Sample], per_image: np.ndarray, scores: np.ndarray) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", "image", "nme", "mean_score", "subsets"])
    for s, nme, sc in zip(samples, per_image, scores, strict=False):
        w.writerow([s.key, str(s.image), f"{nme:.6f}", f"{float(np.mean(sc)):.4f}", " ".join(s.subsets)])
    return buf.getvalue()


def evaluate(checkpoint: str | Path, data: str | Path, split: str | None = None, out_dir: str | Path | None = None,
             normaliser: str | None = None, threshold: float | None = None,
             batch_size: int = EvalConfig.batch_size, use_box: bool | None = None, worst: int = EvalConfig.worst,
             data_format: str = EvalConfig.format, progress: bool = True, heldout: float | None = None,
             tta: str = EvalConfig.tta) -> EvalResult:
    """Score a checkpoint on a dataset and write ``metrics.json``, ``per_image.csv``, ``ced.png``, ``worst.png``.

    The dataset must use the checkpoint's landmark scheme; the crop follows the training config (landmark box
    with the same margin, or the face box) unless ``use_box`` says otherwise. ``heldout`` scores only the faces
    kdmark's fixed validation split holds out (e.g. 0.1, as in training). ``tta="flip"`` averages each face with
    its mirror image (``kdmark.schemes.with_tta``).
    """

    ds = read_dataset(data, format=data_format, split=split)
    samples = ds.samples
    if heldout:  # the faces kdmark's fixed split held out for validation

        samples = split_by_photo(ds, heldout)[1]
    out = Path(out_dir) if out_dir else Path(checkpoint).parent / f"eval-{Path(data).name}"
    return evaluate_samples(checkpoint, samples, out, normaliser or ds.normaliser, threshold, batch_size,
                            use_box, worst, progress, source=f"{data}" + (f" ({split})" if split else ""), tta=tta)


def evaluate_samples(checkpoint: str | Path, samples: list[Sample], out_dir: str | Path,
                     normaliser: str | None = None, threshold: float | None = None,
                     batch_size: int = EvalConfig.batch_size, use_box: bool | None = None,
                     worst: int = EvalConfig.worst, progress: bool = False, source: str = "",
                     tta: str = EvalConfig.tta) -> EvalResult:
    """:func:`evaluate` on a list of samples (e.g. a run's fixed validation split)."""

    model = load_model(checkpoint)  # a zoo name, a .ckpt or an exported .onnx (kdmark.Model)
    card = model.card
    scheme = get_scheme(card.scheme)
    k = {s.num_points for s in samples}
    if k != {scheme.num_points}:
        raise DatasetError(source or "data", f"has {'/'.join(map(str, sorted(k)))}-point faces but {checkpoint} "
                           f"predicts {scheme.num_points}-point {scheme.name} landmarks")
    box = card.use_box if use_box is None else use_box
    lds = LandmarkDataset(samples, scheme, model.codec, card.input_size, None, card.margin, box, cache=False)
    pred, scores = predict_dataset(model, lds, batch_size, progress=progress, tta=tta)
    overall, per_image, subsets = score_samples(samples, pred, scheme, normaliser, threshold)
    out = Path(out_dir)
    report = {"checkpoint": str(checkpoint), "data": source, "tta": tta, **overall.to_dict(),
              "subsets": {k: v.to_dict() for k, v in subsets.items()}}

    def write(stage: Path) -> tuple[list[Path], dict]:
        files = [atomic_write_text(stage / "per_image.csv", _per_image_csv(samples, per_image, scores)),
                 plot_ced({Path(checkpoint).stem: per_image}, overall.threshold, stage / "ced.png",
                          title=f"CED ({overall.normaliser})")]
        order = np.argsort(-per_image)[:worst]
        if len(order):
            titles = [f"{samples[i].key[-28:]}  NME {per_image[i] * 100:.1f}%" for i in order]
            files.append(_draw_worst([samples[i] for i in order], [pred[i] for i in order], scheme,
                                     stage / "worst.png", titles))
        return files, report

    files = write_together(out, write, "metrics.json")  # one run's files together: metrics.json comes last
    return EvalResult(overall, subsets, per_image, out, files)


def _draw_worst(samples: list[Sample], preds: list[np.ndarray], scheme: LandmarkScheme, path: Path,
                titles: list[str]) -> Path:
    """Ground truth (coloured by side) and predictions (yellow crosses) on the same crops."""

    crops, pred_crops = [], []
    for s, p in zip(samples, preds, strict=False):
        m = crop_matrix(*face_square(s, 0.25), 320)
        crops.append((warp_image(load_image(s.image), m, 320), apply_affine(s.points, m)))
        pred_crops.append(apply_affine(p, m))
    return draw_grid(samples, scheme, path, crops=crops, titles=titles, predictions=pred_crops, indices=False)
