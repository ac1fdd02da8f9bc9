"""Head pose checks on real faces (issue 29 item 5): the shipped model's pose of the last N shared 300-W training
faces, of the same faces rotated counter-clockwise by a known angle (roll must grow by that angle) and mirrored
(yaw and roll must change sign, pitch stay), against the pose of their ground-truth landmarks; and the cost.

    PYTHONPATH=. python scripts/bench_pose.py [--faces 60] [--angle 15]
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--model", default="kdmark-68-s")
    ap.add_argument("--faces", type=int, default=60)
    ap.add_argument("--angle", type=float, default=15.0)
    args = ap.parse_args(argv)

    import kdmark
    from kdmark.data.images import load_image

    predictor = kdmark.Predictor(args.model)
    rows = []
    for s in kdmark.read_dataset(args.data, split="train").samples[-args.faces:]:
        img, box = load_image(s.image), s.landmark_box()
        face = predictor.predict(img, [box])[0]
        base, truth = face.pose, kdmark.head_pose(s.points, img.shape)
        m = cv2.getRotationMatrix2D(tuple(float(v) for v in (box[:2] + box[2:]) / 2), args.angle, 1.0)
        pts = s.points @ m[:, :2].T + m[:, 2]
        turned = predictor.predict(cv2.warpAffine(img, m, img.shape[1::-1]), [np.r_[pts.min(0), pts.max(0)]])[0]
        w = img.shape[1]
        mirror = predictor.predict(img[:, ::-1].copy(), [[w - 1 - box[2], box[1], w - 1 - box[0], box[3]]])[0].pose
        rows.append([*base[:3], *truth[:3], turned.pose.roll - base.roll, *mirror[:3]])
    r = np.asarray(rows)
    err = np.abs(r[:, 6] - args.angle)
    lo, hi = r[:, :2].min(axis=0), r[:, :2].max(axis=0)
    print(f"{len(r)} faces; yaw {lo[0]:.0f}..{hi[0]:.0f}, pitch {lo[1]:.0f}..{hi[1]:.0f}")
    print(f"rotated {args.angle:g} deg: roll grew by {np.median(r[:, 6]):.2f} (median), worst error {err.max():.2f}")
    print("mirrored: median |yaw + yaw'| {:.2f}, |pitch - pitch'| {:.2f}, |roll + roll'| {:.2f}".format(
        *np.median(np.abs([r[:, 0] + r[:, 7], r[:, 1] - r[:, 8], r[:, 2] + r[:, 9]]), axis=1)))
    print("model's points vs ground truth's: median |difference| yaw {:.2f}, pitch {:.2f}, roll {:.2f}".format(
        *np.median(np.abs(r[:, :3] - r[:, 3:6]), axis=0)))
    start = time.perf_counter()
    for _ in range(200):
        kdmark.head_pose(face.landmarks, img.shape, face.scores)
    print(f"{(time.perf_counter() - start) / 200 * 1e3:.2f} ms a pose")
    return 0


if __name__ == "__main__":
    sys.exit(main())
