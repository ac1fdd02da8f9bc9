"""Fit the linear map from MediaPipe's 468 face-mesh points to a landmark scheme on labelled faces, and score it on
kdmark's fixed held-out split (faces it did not see). The shipped map was made by:

    python scripts/fit_mesh_map.py ../shared/data/300w --out kdmark/teachers/assets/mesh_to_300w.npz

Any dataset kdmark reads works (e.g. WFLW's 98 points, for a ``mediapipe`` teacher of a 98-point student).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kdmark.data import read_dataset
from kdmark.data.dataset import split_by_photo
from kdmark.metrics import compute_metrics
from kdmark.teachers.landmarkers import MediaPipeLandmarker, fit_mesh_map_on


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="labelled faces (any format kdmark reads)")
    ap.add_argument("--out", required=True, help="where to write the map (.npz)")
    ap.add_argument("--split", default="train", help="the dataset split to read (default: train)")
    ap.add_argument("--ridge", type=float, default=0.1, help="ridge penalty (default 0.1)")
    args = ap.parse_args()
    ds = read_dataset(args.data, split=args.split)
    train, val = split_by_photo(ds, 0.1)
    t0 = time.time()
    card = {"fitted_on": f"{args.data} split {args.split}, kdmark's training part ({len(train)} faces)",
            "terms": "derived from the labelled faces it was fitted on: 300-W is for non-commercial research only",
            "command": f"python scripts/fit_mesh_map.py {args.data} --out {args.out} --ridge {args.ridge}"}
    mesh_map = fit_mesh_map_on(train, ds.scheme.name, args.ridge, progress=True, card=card)
    lm = MediaPipeLandmarker(mesh_map=mesh_map)
    from kdmark.data.images import load_image

    pred = np.stack([lm(load_image(s.image), s.landmark_box())[0] for s in val])
    metrics, _ = compute_metrics(pred, np.stack([s.points for s in val]), ds.scheme, ds.normaliser)
    mesh_map.card["heldout"] = {"faces": len(val), "nme": round(metrics.nme, 5), "fr": round(metrics.fr, 5)}
    mesh_map.save(args.out)
    print(f"fitted on {len(train)} faces in {time.time() - t0:.0f} s; held-out {len(val)} faces (boxes from the "
          f"ground truth): {metrics}; wrote {args.out}")


if __name__ == "__main__":
    main()
