"""Face detectors side by side on real photos, in one process: faces found, ms per photo, and the landmark NME that
each detector's boxes give the default model.

    python scripts/bench_detectors.py --data ../shared/data/300w --photo ../shared/data/photos/afw_1130084326.jpg

For every 300-W face: is it found (a detection whose landmark box overlaps the annotated one by IoU > 0.3), and
how long each detector takes on its photo (the detectors take turns on each photo, so machine noise hits them
alike). Then kdmark-68-s's NME on the held-out faces (kdmark's fixed 10% split) from each detector's boxes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kdmark.data import read_dataset
from kdmark.data.dataset import split_by_photo
from kdmark.data.images import load_image
from kdmark.deploy.detectors import BlazeFaceDetector, DlibHog, best_match
from kdmark.deploy.predict import Predictor

DETECTORS = {
    "blazeface (default: photo + 2x2 tiles)": lambda: BlazeFaceDetector(tiles=1),
    "blazeface (photo only)": lambda: BlazeFaceDetector(tiles=0),
    "dlib HOG, upsampled once (kdmark's old default)": lambda: DlibHog(upsample=1),
    "dlib HOG, no upsampling": lambda: DlibHog(upsample=0),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--photo", default="../shared/data/photos/afw_1130084326.jpg")
    ap.add_argument("--model", default="kdmark-68-s")
    ap.add_argument("--limit", type=int, default=None, help="only the first N faces")
    args = ap.parse_args()
    dets = {name: make() for name, make in DETECTORS.items()}
    samples = list(read_dataset(args.data, split="train"))[: args.limit]
    _, held = split_by_photo(read_dataset(args.data, split="train"), 0.1)
    held_names = {(str(s.image), tuple(np.round(s.landmark_box(), 1))) for s in held}
    found = {n: 0 for n in dets}
    spent = {n: 0.0 for n in dets}
    boxes = {n: {} for n in dets}  # held-out face index -> landmark box
    predictor = Predictor(args.model, threads=1)
    for i, s in enumerate(samples):
        img, truth = load_image(s.image), s.landmark_box()
        key = (str(s.image), tuple(np.round(truth, 1)))
        for name, det in dets.items():
            t0 = time.perf_counter()
            faces = det(img)
            spent[name] += time.perf_counter() - t0
            k = best_match([d.box for d in faces], truth)
            if k is not None:
                found[name] += 1
                if key in held_names:
                    boxes[name][key] = (img, faces[k].box, s)
        if (i + 1) % 200 == 0:
            print(f"  {i + 1}/{len(samples)} faces", flush=True)
    n = len(samples)
    ref = spent["dlib HOG, upsampled once (kdmark's old default)"]
    print(f"\n{n} real 300-W faces ({args.data}); held-out faces for NME: {len(held)}")
    print(f"{'detector':<50} {'found':>11} {'ms/photo':>9} {'x faster than dlib':>19} {'held-out NME':>13}")
    for name in dets:
        items = boxes[name]
        faces = predictor.predict_crops([(img, box) for img, box, _ in items.values()]) if items else []
        nme = np.mean([_nme(f.landmarks, s) for f, (_, _, s) in zip(faces, items.values())]) if faces else float("nan")
        print(f"{name:<50} {found[name]:>5} / {n:<4} {spent[name] / n * 1e3:9.2f} {ref / spent[name]:19.1f} "
              f"{nme:12.3%} ({len(faces)})")
    if args.photo:
        img = load_image(args.photo)
        for name, det in dets.items():
            t0 = time.perf_counter()
            faces = det(img)
            print(f"{args.photo}: {name}: {len(faces)} faces in {(time.perf_counter() - t0) * 1e3:.1f} ms")
    return 0


def _nme(points: np.ndarray, sample) -> float:
    from kdmark.metrics import nme_per_image
    from kdmark.schemes import get_scheme

    norm = get_scheme("300w").normaliser().distance(sample.points[None])
    return float(nme_per_image(points[None], sample.points[None], norm)[0])


if __name__ == "__main__":
    raise SystemExit(main())
