"""Fit how a face detector's box relates to the tight 68-landmark box, on real 300-W faces.

kdmark models are trained on crops around the landmark box; at inference only a detector box exists. This script
measures, over every face the detector finds, the landmark-box centre offset (in units of the detector box side)
and the landmark box's longer side per detector side, and prints the medians that kdmark.deploy.detectors uses
(TO_LANDMARK_BOX).

    python scripts/calibrate_detector.py ../shared/data/300w --detector blazeface
"""

from __future__ import annotations

import argparse

import numpy as np

from kdmark.data import read_dataset
from kdmark.data.images import load_image
from kdmark.deploy.detectors import DETECTORS, best_match, make_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="../shared/data/300w")
    ap.add_argument("--detector", choices=DETECTORS, default="blazeface")
    args = ap.parse_args()
    detect = make_detector(args.detector)
    ds = read_dataset(args.root, split="train")
    rows = []
    for s in ds:
        landmarks = s.landmark_box()
        lx0, ly0, lx1, ly1 = landmarks
        raws = [raw for raw, _ in detect.raw(load_image(s.image))]
        k = best_match(raws, landmarks)  # matched on the detector's own box
        if k is None:
            continue
        best = raws[k]
        side = max(best[2] - best[0], best[3] - best[1])
        rows.append([((lx0 + lx1) / 2 - (best[0] + best[2]) / 2) / side,
                     ((ly0 + ly1) / 2 - (best[1] + best[3]) / 2) / side,
                     (lx1 - lx0) / side, (ly1 - ly0) / side, max(lx1 - lx0, ly1 - ly0) / side])
    r = np.array(rows)
    med = np.median(r, axis=0)
    print(f"faces: {len(ds)}, found by {args.detector}: {len(r)}")
    print("median dx, dy (per detector side), landmark w/side, h/side, longer side/side:", np.round(med, 4).tolist())
    print("IQR:", np.round(np.percentile(r, 75, axis=0) - np.percentile(r, 25, axis=0), 4).tolist())


if __name__ == "__main__":
    main()
