"""Video benchmark with exact ground truth (issue 20.5): each of N held-out 300-W faces is moved along a smooth
random path into a 40-frame clip; per-frame, tracked (re-detect every 15 frames) and smoothed (tracked + One-Euro)
prediction are scored for NME and jitter. The "detector" gives each detection frame's exact landmark box, so the
table isolates the tracker and the filter; --detector dlib runs dlib's HOG detector instead.

    python scripts/bench_video.py kdmark-68-s --data ../shared/data/300w --faces 10 [--detector dlib]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdmark.data import read_dataset  # noqa: E402
from kdmark.data.dataset import split_by_photo  # noqa: E402
from kdmark.deploy.detectors import make_detector  # noqa: E402
from kdmark.deploy.predict import Predictor  # noqa: E402
from kdmark.deploy.videobench import MODES, make_clip, score, track  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--faces", type=int, default=10)
    ap.add_argument("--detector", choices=["exact", "blazeface", "dlib"], default="exact")
    args = ap.parse_args()
    predictor = Predictor(args.model)
    _, held = split_by_photo(read_dataset(args.data, split="train"), 0.1)
    rows = {name: [] for name, _, _ in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for i, sample in enumerate(held[: args.faces]):
            path = Path(tmp) / f"clip{i}.avi"
            truth = make_clip(sample, path, seed=i)
            for name, every, smooth in MODES:
                detect = None if args.detector == "exact" else (
                    lambda img: [d.box for d in make_detector(args.detector)(img)])
                pred = track(predictor, path, truth, every, smooth, detect)
                rows[name].append(score(pred, truth))
    print(f"{args.model}, {args.faces} clips x {len(truth)} frames, detector: {args.detector}")
    print(f"{'mode':<10} {'NME':>8} {'jitter':>8}")
    for name, vals in rows.items():
        nme, jit = np.mean(vals, axis=0)
        print(f"{name:<10} {nme:8.3%} {jit:8.3%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
