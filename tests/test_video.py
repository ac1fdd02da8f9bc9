"""Video: tracking follows the face (issue 20.5), a truncated file is reported (20.7), the drawn video keeps the
input's frame rate (20.7). Clips are made by moving a real annotated 300-W face along a smooth path, so every frame
has exact landmarks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from kdmark.cli import main
from kdmark.data import read_dataset
from kdmark.data.images import load_image
from kdmark.predict import Predictor, predict_video


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


def track(predictor, path, truth, redetect_every: int, smooth: bool) -> np.ndarray:
    """(F, K, 2) predictions for the clip; the "detector" gives each frame's exact landmark box, as a perfect
    detector would (so the comparison isolates the tracker)."""
    boxes = np.concatenate([truth.min(axis=1), truth.max(axis=1)], axis=1)
    pred: list[np.ndarray] = []

    def detect(frame):
        return [boxes[len(pred)]]

    for _, _, faces in predict_video(predictor, path, redetect_every=redetect_every, smooth=smooth, detect=detect):
        pred.append(faces[0].landmarks)
    return np.stack(pred)


@pytest.fixture(scope="module")
def clip(w300_root, tmp_path_factory):
    sample = read_dataset(w300_root / "300W", split="common").samples[3]
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    return path, make_clip(sample, path)


def test_tracking_follows_the_face(clip):
    """Re-detection corrects the track, and tracking between detections stays near per-frame accuracy; smoothing
    lowers jitter without raising the error much."""
    path, truth = clip
    predictor = Predictor("kdmark-68-s")
    results = {name: score(track(predictor, path, truth, every, smooth), truth)
               for name, every, smooth in (("per-frame", 1, False), ("tracked", 15, False), ("smoothed", 15, True))}
    (nme_pf, jit_pf), (nme_tr, jit_tr), (nme_sm, jit_sm) = results.values()
    assert nme_pf < 0.08, results
    assert nme_tr < 1.25 * nme_pf, results  # drift was 2x before the fix
    assert jit_sm < jit_tr and nme_sm < 1.15 * nme_tr, results


def test_truncated_video_is_reported_and_drawn_video_keeps_its_rate(tiny_checkpoint, clip, tmp_path, capsys):
    path, _ = clip
    draw = tmp_path / "drawn"
    assert main(["predict", str(tiny_checkpoint), str(path), "--json", str(tmp_path / "v.json"), "--draw",
                 str(draw), "--boxes", str(_boxes(tmp_path))]) in (0, 1)
    out = cv2.VideoCapture(str(draw / "clip.mp4"))
    assert abs(out.get(cv2.CAP_PROP_FPS) - 15.0) < 0.01
    out.release()
    cut = tmp_path / "cut.avi"
    data = path.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.5)])
    capsys.readouterr()
    assert main(["predict", str(tiny_checkpoint), str(cut), "--json", str(tmp_path / "c.json")]) == 1
    err = capsys.readouterr().err
    assert "cut.avi: read" in err and "of 40 frames" in err
    assert 0 < len(json.loads((tmp_path / "c.json").read_text())["cut.avi"]) < 40


def _boxes(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text("{}")
    return path
