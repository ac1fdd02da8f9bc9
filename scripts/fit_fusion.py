"""Per-landmark teacher weights for pseudo-label fusion, fitted on labelled faces, against the hand-set ones.

Each teacher labels the 300-W faces exactly as ../shared/data/pseudo was made (BlazeFace's box, matched to the
annotated face; faces it misses are counted and left out). Then, on kdmark's fixed held-out split (119 faces):
each teacher alone, and their fusion (kdmark.data.pseudo.fuse) with equal, hand-set and fitted weights, with and
without the robust step. Fitted weights come two ways: on the 1094 training faces (kdmark-68-teacher was trained
on them, dlib on all 1213: both are flattered there) and by 2-fold cross-validation on the held-out faces.

    python scripts/fit_fusion.py ../shared/data/300w --train-faces 300 --out models/fusion/fitted-300w.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kdmark.data import read_dataset
from kdmark.data.dataset import split_by_photo
from kdmark.data.images import load_image
from kdmark.data.pseudo import HAND_WEIGHTS, fit_weights, fuse, teacher_weights
from kdmark.io import atomic_write_json
from kdmark.metrics import compute_metrics

TEACHERS = ("dlib", "kdmark-68-teacher", "mediapipe")


def label(samples, teachers) -> tuple[np.ndarray, list[int]]:
    """(N, T, 68, 2) every teacher's points from BlazeFace's box for each face it finds; the indices found."""
    from kdmark.deploy.detectors import best_match, make_detector
    from kdmark.teachers import make_landmarker

    detect = make_detector("blazeface")
    models = [make_landmarker(t) for t in teachers]
    points, found = [], []
    for i, s in enumerate(tqdm(samples, desc="labelling", unit="face")):
        image = load_image(s.image)
        boxes = [d.box for d in detect(image)]
        k = best_match(boxes, s.landmark_box())
        if k is None:
            continue
        points.append(np.stack([m(image, boxes[k], detection=None)[0] for m in models]))
        found.append(i)
    return np.stack(points), found


def nme(pred, truth, scheme) -> float:
    return compute_metrics(pred, truth, scheme)[0].nme


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--out", default="models/fusion/fitted-300w.json")
    ap.add_argument("--train-faces", type=int, default=300,
                    help="fit on this many training faces, spread evenly (dlib finds its own detection: ~1 s a face)")
    args = ap.parse_args()
    ds = read_dataset(args.data, split="train")
    train, val = split_by_photo(ds, 0.1)
    if args.train_faces and args.train_faces < len(train):
        train = [train[int(i * len(train) / args.train_faces)] for i in range(args.train_faces)]
    t0 = time.time()
    p_train, f_train = label(train, TEACHERS)
    p_val, f_val = label(val, TEACHERS)
    g_train = np.stack([train[i].points for i in f_train])
    g_val = np.stack([val[i].points for i in f_val])
    print(f"BlazeFace found {len(f_train)} of {len(train)} training and {len(f_val)} of {len(val)} held-out faces "
          f"({time.time() - t0:.0f} s)")
    fitted_train = fit_weights(p_train, g_train)
    half = np.arange(len(f_val)) % 2 == 0  # 2-fold cross-validation on the held-out faces
    rows = [(t, p_val[:, j]) for j, t in enumerate(TEACHERS)]
    for cauchy in (None, 0.05):
        robust = "robust" if cauchy else "plain mean"
        for name, w in (("equal", teacher_weights(list(TEACHERS), "equal")),
                        ("hand", teacher_weights(list(TEACHERS), "hand")),
                        ("fitted on the training faces", fitted_train)):
            rows.append((f"fused, {name} weights, {robust}", fuse(p_val, w, cauchy)[0]))
        cv = np.zeros_like(g_val)
        for fold in (half, ~half):
            w = fit_weights(p_val[~fold], g_val[~fold])
            cv[fold] = fuse(p_val[fold], w, cauchy)[0]
        rows.append((f"fused, fitted by 2-fold CV on the held-out faces, {robust}", cv))
    print(f"\n| labels ({len(f_val)} held-out faces, BlazeFace boxes) | NME_io |\n|---|---|")
    for name, pred in rows:
        print(f"| {name} | {nme(pred, g_val, ds.scheme) * 100:.3f}% |")
    table = {t: fitted_train[j].round(5).tolist() for j, t in enumerate(TEACHERS)}
    hand = {t: (HAND_WEIGHTS[t] / sum(HAND_WEIGHTS.values())).round(5).tolist() for t in TEACHERS}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"weights": table, "hand_weights_normalised": hand,
                                 "fitted_on": f"{len(f_train)} faces of kdmark's 300-W training split",
                                 "command": "python scripts/fit_fusion.py ../shared/data/300w"})
    print(f"\nwrote {args.out} (use it with data.extra[].fusion={args.out})")


if __name__ == "__main__":
    main()
