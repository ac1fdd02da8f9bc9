"""Fit how dlib's HOG face box relates to the tight 68-landmark box on real 300-W faces.

kdmark models are trained on crops around the landmark box; at inference only a detector box exists. This script
measures, over every face dlib finds, the landmark-box centre offset (in units of the detector box side) and the
size ratio, and prints the medians that kdmark.predict uses (DLIB_HOG_TO_LANDMARK_BOX).

    python scripts/calibrate_detector.py ../shared/data/300w
"""

from __future__ import annotations

import sys

import numpy as np

from kdmark.data import read_dataset
from kdmark.data.images import load_image
from kdmark.predict import box_iou


def main(root: str) -> None:
    import dlib

    detector = dlib.get_frontal_face_detector()
    ds = read_dataset(root, split="train")
    rows = []
    for s in ds:
        img = load_image(s.image)
        landmarks = s.landmark_box()
        lx0, ly0, lx1, ly1 = landmarks
        best, best_iou = None, 0.3
        for d in detector(img, 0):
            box = np.array([d.left(), d.top(), d.right() + 1, d.bottom() + 1], float)
            iou = box_iou(box, landmarks)
            if iou > best_iou:
                best, best_iou = box, iou
        if best is None:
            continue
        side = best[2] - best[0]
        rows.append([((lx0 + lx1) / 2 - (best[0] + best[2]) / 2) / side, ((ly0 + ly1) / 2 - (best[1] + best[3]) / 2)
                     / side, (lx1 - lx0) / side, (ly1 - ly0) / side])
    r = np.array(rows)
    med = np.median(r, axis=0)
    print(f"faces: {len(ds)}, found by dlib: {len(r)}")
    print("median dx, dy (per detector side), landmark w/side, h/side:", np.round(med, 4).tolist())
    print("IQR:", np.round(np.percentile(r, 75, axis=0) - np.percentile(r, 25, axis=0), 4).tolist())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/300w")
