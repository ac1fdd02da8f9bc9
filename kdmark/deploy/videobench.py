"""A video benchmark with exact ground truth: clips made by moving an annotated face along a smooth random path
(shift, scale, roll), so every frame's landmarks are known; scored per frame (NME) and for jitter (the frame-to-
frame change of the error, as LDEQ's NMF), for per-frame, tracked and smoothed prediction.

    python scripts/bench_video.py MODEL --data PATH/300w --faces 10
"""

from __future__ import annotations

import cv2
import numpy as np

from kdmark.data.images import load_image
from kdmark.deploy.predict import predict_video

__all__ = ["make_clip", "score", "track", "MODES"]

MODES = (("per-frame", 1, False), ("tracked", 15, False), ("smoothed", 15, True))  # name, re-detect every, smooth


def make_clip(sample, path, frames: int = 40, size=(480, 360), fps: float = 15.0, seed: int = 0):
    """Warp one annotated face along a smooth random path (shift, scale, roll); returns the exact (F, K, 2)
    landmarks. Written with MJPG at quality 95 so compression barely moves the pixels."""
    rng = np.random.default_rng(seed)
    img = load_image(sample.image)
    pts = sample.points
    x0, y0, x1, y1 = sample.landmark_box()
    side = max(x1 - x0, y1 - y0)
    t = np.linspace(0, 1, frames)
    phase = rng.uniform(0, 2 * np.pi, 4)
    cx = size[0] / 2 + 70 * np.sin(2 * np.pi * t + phase[0])
    cy = size[1] / 2 + 40 * np.sin(2 * np.pi * t * 1.3 + phase[1])
    scale = (140 / side) * (1 + 0.15 * np.sin(2 * np.pi * t * 0.7 + phase[2]))
    roll = 10 * np.sin(2 * np.pi * t * 0.9 + phase[3])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    truth = []
    for k in range(frames):
        m = cv2.getRotationMatrix2D(((x0 + x1) / 2, (y0 + y1) / 2), roll[k], scale[k])
        m[:, 2] += [cx[k] - (x0 + x1) / 2, cy[k] - (y0 + y1) / 2]
        frame = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        truth.append(pts @ m[:, :2].T + m[:, 2])
    writer.release()
    return np.stack(truth)


def score(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(mean NME, jitter): inter-ocular normalised; jitter = mean frame-to-frame change of the error vector."""
    iod = np.linalg.norm(truth[:, 36:42].mean(1) - truth[:, 42:48].mean(1), axis=1)
    err = pred - truth
    nme = float((np.linalg.norm(err, axis=2).mean(1) / iod).mean())
    jitter = float((np.linalg.norm(np.diff(err, axis=0), axis=2).mean(1) / iod[1:]).mean())
    return nme, jitter


def track(predictor, path, truth, redetect_every: int, smooth: bool, detect=None) -> np.ndarray:
    """(F, K, 2) predictions for the clip. The default "detector" gives each frame's exact landmark box, as a
    perfect detector would (so the comparison isolates the tracker); a frame where the face is lost repeats the
    last prediction (counted as error, as a user would see it)."""
    boxes = np.concatenate([truth.min(axis=1), truth.max(axis=1)], axis=1)
    pred: list[np.ndarray] = []

    def exact(frame):
        return [boxes[len(pred)]]

    for _, _, faces in predict_video(predictor, path, redetect_every=redetect_every, smooth=smooth,
                                     detect=detect or exact):
        if faces:
            centre = truth[len(pred)].mean(axis=0)  # the face nearest the true one
            pred.append(min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - centre)).landmarks)
        else:
            pred.append(pred[-1] if pred else truth[0] * 0)
    return np.stack(pred)
