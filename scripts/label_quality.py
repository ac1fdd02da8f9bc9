"""How good are pseudo-labels? Each teacher, and their fusion, against the ground truth of kdmark's fixed held-out
split of 300-W (119 faces), from the same face boxes. dlib's shape predictor was trained on these very faces, so
its figure flatters it.

    python scripts/label_quality.py ../shared/data/300w --teachers dlib,mediapipe [--boxes truth|detector]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kdmark.data import read_dataset
from kdmark.data.dataset import split_by_photo
from kdmark.data.images import load_image
from kdmark.metrics import compute_metrics, normaliser_distances
from kdmark.teachers import fuse, make_landmarker, teacher_accuracy, weights_from_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--teachers", default="dlib,mediapipe", help="comma-separated: dlib, mediapipe, CKPT")
    ap.add_argument("--boxes", choices=["truth", "detector"], default="truth",
                    help="face boxes from the ground-truth points, or from dlib's HOG detector (faces it misses "
                         "are left out and counted)")
    args = ap.parse_args()
    ds = read_dataset(args.data, split="train")
    _, val = split_by_photo(ds, 0.1)
    specs = args.teachers.split(",")
    teachers = [make_landmarker(s) for s in specs]
    images = [load_image(s.image) for s in val]
    boxes = [s.landmark_box() for s in val]
    if args.boxes == "detector":
        from kdmark.deploy.detectors import best_match, make_detector

        kept = []
        for i, (img, s) in enumerate(zip(images, val)):
            found = [d.box for d in make_detector("dlib")(img)]
            k = best_match(found, s.landmark_box())
            if k is not None:
                kept.append(i)
                boxes[i] = found[k]
        print(f"dlib's HOG detector found {len(kept)} of {len(val)} faces; scoring those")
        val, images, boxes = [val[i] for i in kept], [images[i] for i in kept], [boxes[i] for i in kept]
    gt = np.stack([s.points for s in val])
    preds, times = [], []
    for t in teachers:
        t0 = time.perf_counter()
        preds.append(np.stack([t(img, b)[0] for img, b in zip(images, boxes)]))
        times.append((time.perf_counter() - t0) / len(val) * 1000)
    rows = [(spec, p, ms) for spec, p, ms in zip(specs, preds, times)]
    if len(specs) > 1:
        w = weights_from_accuracy([teacher_accuracy(s) for s in specs])
        norms = normaliser_distances(np.stack(preds).mean(axis=0), ds.scheme)
        fused = np.stack([fuse(np.stack([p[i] for p in preds]), w, norms[i]).points for i in range(len(val))])
        rows.append(("fused (" + " + ".join(f"{s} {x / w.sum():.2f}" for s, x in zip(specs, w)) + ")", fused,
                     sum(times)))
    print(f"| teacher | NME_io | FR@0.08 | FR@0.1 | AUC@0.08 | ms per face |  ({len(val)} held-out faces, boxes: "
          f"{args.boxes})")
    print("|---|---|---|---|---|---|")
    for name, p, ms in rows:
        m, _ = compute_metrics(p, gt, ds.scheme, ds.normaliser)
        m10, _ = compute_metrics(p, gt, ds.scheme, ds.normaliser, threshold=0.1)
        print(f"| {name} | {m.nme * 100:.3f}% | {m.fr * 100:.2f}% | {m10.fr * 100:.2f}% | {m.auc:.4f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
