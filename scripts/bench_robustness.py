"""How a model holds up on harder copies of the held-out faces (issue 26: kdmark-68-s's error on rotated copies at
most 1.15x its clean error).

    PYTHONPATH=. python scripts/bench_robustness.py [MODEL ...] [--data ../shared/data/300w] [--angle 30]
        [--kinds rotated,occluded,small] [--json runs/robustness/report.json]

MODEL is a zoo name, a checkpoint or an exported ``.onnx`` (default: the shipped default model). The faces are the
ones kdmark's fixed split holds out of the 300-W training images (``--heldout 0.1``, as ``kdmark eval`` scores
them), cropped from their ground-truth landmark boxes as in training. Each kind is made from every face,
deterministically:

- ``rotated``: the photo turned about the face's centre by ``+angle`` and by ``-angle`` (two copies a face), the
  landmarks moved with it;
- ``occluded``: a mid-grey block over 35% of the face's landmark box (a fixed pseudo-random place per face);
- ``small``: the photo shrunk so that the face's landmark box is 48 px wide (the model then sees it upsampled).

It prints NME (inter-ocular), FR@0.08 and the ratio to the clean NME of the same model, and writes the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdmark.data import read_dataset  # noqa: E402
from kdmark.data.dataset import split_by_photo  # noqa: E402
from kdmark.data.images import image_size, load_image  # noqa: E402
from kdmark.data.records import Sample  # noqa: E402
from kdmark.data.transforms import apply_affine  # noqa: E402
from kdmark.io import atomic_write_text  # noqa: E402

KINDS = ("rotated", "occluded", "small")


def _derived(s: Sample, make, points: np.ndarray, tag: str) -> Sample:
    """A copy of ``s`` whose image is ``make(original RGB)`` (made when read) and whose landmarks are ``points``."""
    return Sample(image=lambda ref=s.image: make(load_image(ref)), points=points, visible=s.visible.copy(),
                  subsets=s.subsets, source=f"{s.source} [{tag}]", key=f"{s.key} [{tag}]")


def rotated(s: Sample, angle: float) -> Sample:
    """The whole photo turned by ``angle`` degrees (counter-clockwise on screen) about the face's centre, on a canvas
    large enough to keep every corner."""
    x0, y0, x1, y1 = s.landmark_box()
    m = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), angle, 1.0)

    def make(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        corners = apply_affine(np.array([[0, 0], [w, 0], [0, h], [w, h]], float), m)
        lo, hi = corners.min(0), corners.max(0)
        shifted = m.copy()
        shifted[:, 2] -= lo
        return cv2.warpAffine(img, shifted, (int(np.ceil(hi[0] - lo[0])), int(np.ceil(hi[1] - lo[1]))),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    w, h = image_size(s.image)
    lo = apply_affine(np.array([[0, 0], [w, 0], [0, h], [w, h]], float), m).min(0)
    return _derived(s, make, apply_affine(s.points, m) - lo, f"rotated {angle:+g}")


def occluded(s: Sample, fraction: float = 0.35) -> Sample:
    """A mid-grey block covering ``fraction`` of the landmark box's area, at a place fixed by the face's key."""
    x0, y0, x1, y1 = s.landmark_box()
    bw, bh = (x1 - x0) * np.sqrt(fraction), (y1 - y0) * np.sqrt(fraction)
    rng = np.random.default_rng(zlib.crc32(s.key.encode()))
    bx, by = x0 + rng.uniform(0, x1 - x0 - bw), y0 + rng.uniform(0, y1 - y0 - bh)

    def make(img: np.ndarray) -> np.ndarray:
        out = img.copy()
        out[max(0, int(by)):int(np.ceil(by + bh)), max(0, int(bx)):int(np.ceil(bx + bw))] = 128
        return out

    return _derived(s, make, s.points.copy(), "occluded")


def small(s: Sample, width: float = 48.0) -> Sample:
    """The photo shrunk (area resampling) so that the landmark box is ``width`` px wide."""
    x0, _, x1, _ = s.landmark_box()
    scale = min(1.0, width / max(x1 - x0, 1.0))

    def make(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)

    w, h = image_size(s.image)
    sx, sy = max(1, round(w * scale)) / w, max(1, round(h * scale)) / h
    # pixel centres: x' + 0.5 = (x + 0.5) * sx
    return _derived(s, make, (s.points + 0.5) * [sx, sy] - 0.5, f"small {width:g}px")


def copies(samples: list[Sample], kind: str, angle: float) -> list[Sample]:
    if kind == "rotated":
        return [rotated(s, a) for s in samples for a in (angle, -angle)]
    return [{"occluded": occluded, "small": small}[kind](s) for s in samples]


def main(argv: list[str] | None = None) -> int:
    from kdmark import zoo
    from kdmark.jobs.evaluate import evaluate_samples

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[zoo.DEFAULT])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "300w"))
    ap.add_argument("--angle", type=float, default=30.0)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--out", default=str(ROOT / "runs" / "robustness"))
    ap.add_argument("--json", default=None, help="the table as JSON (default: OUT/report.json)")
    args = ap.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        ap.error(f"unknown --kinds {', '.join(unknown)} (choose from {', '.join(KINDS)})")
    clean = split_by_photo(read_dataset(args.data, split="train"), 0.1)[1]
    sets = {"clean": clean, **{k: copies(clean, k, args.angle) for k in kinds}}
    table: dict[str, dict] = {}
    print(f"{len(clean)} held-out faces of {args.data}; NME inter-ocular, ground-truth landmark boxes")
    print(f"{'model':<28} " + " ".join(f"{k:>22}" for k in sets))
    for model in args.models:
        path = zoo.resolve(model)
        row = {}
        for kind, samples in sets.items():
            r = evaluate_samples(path, samples, Path(args.out) / Path(str(model)).stem / kind, worst=8).metrics
            row[kind] = {"faces": len(samples), "nme": r.nme, "fr": r.fr, "auc": r.auc}
        for kind in row:
            row[kind]["vs_clean"] = row[kind]["nme"] / row["clean"]["nme"]
        table[str(model)] = row
        print(f"{str(model)[-28:]:<28} " + " ".join(
            f"{v['nme']:7.3%} ({v['vs_clean']:.2f}x) FR {v['fr']:5.1%}" for v in row.values()))
    out = Path(args.json) if args.json else Path(args.out) / "report.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps({"data": args.data, "angle": args.angle, "models": table}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
