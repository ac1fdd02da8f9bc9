"""Face detectors side by side on real photos, in one process: faces found, ms per photo, and the landmark NME that
each detector's boxes give the default model.

    python scripts/bench_detectors.py --data ../shared/data/300w --photo ../shared/data/photos/afw_1130084326.jpg
    python scripts/bench_detectors.py --sizes      # ms per photo by photo size, and the smallest face found

``--sizes``: ms per photo on the shared photo folders at their own size, the AFW photo, and the 300-W photos scaled to
a range of sizes: the default BlazeFace (tiles where blazeface.TILE_MIN_SIDE allows) against dlib's HOG at upsample 0
and 1, in turns on each photo; then how often the photo-only pass finds a 300-W face scaled to N px of its 128-px
input (the curve TILE_MIN_SIDE is set from) and of its 96-px input (small photos, blazeface.SMALL_MAX_SIDE).

For every 300-W face: is it found (a detection whose landmark box overlaps the annotated one by IoU > 0.3), and
how long each detector takes on its photo (the detectors take turns on each photo, so machine noise hits them
alike). Then kdmark-68-s's NME on the held-out faces (kdmark's fixed 10% split) from each detector's boxes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
    ap.add_argument("--sizes", action="store_true", help="ms per photo by photo size; the smallest face found")
    args = ap.parse_args()
    if args.sizes:
        return sizes(args.data, args.photo)
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


def sizes(data: str, photo: str | None, n: int = 60) -> int:
    import cv2

    from kdmark.deploy.detectors.blazeface import BlazeFace

    samples = list(read_dataset(data, split="train"))[:n]
    photos = [load_image(s.image) for s in samples]
    dets = (BlazeFaceDetector(tiles=1), DlibHog(upsample=0), DlibHog(upsample=1))

    def race(images) -> tuple[list[float], list[int]]:
        spent, found = [0.0] * len(dets), [0] * len(dets)
        for det in dets:  # one untimed call first: BlazeFace's first call at a new input size costs ~0.3 ms more
            det(images[0])  # (measured), kept out of the per-photo time
        for im in images:  # the detectors take turns on each photo: machine noise hits them alike
            for k, det in enumerate(dets):
                t0 = time.perf_counter()
                found[k] += len(det(im))
                spent[k] += time.perf_counter() - t0
        return [t / len(images) * 1e3 for t in spent], found

    head = (f"{'kdmark ms':>10} {'dlib u0 ms':>11} {'dlib u1 ms':>11} {'x faster (u0 / u1)':>19} "
            f"{'faces kdmark / u0 / u1':>23}")

    def row(label: str, ms: list[float], found: list[int]) -> None:
        print(f"{label:<32} {ms[0]:10.2f} {ms[1]:11.2f} {ms[2]:11.2f} {ms[1] / ms[0]:9.1f} / {ms[2] / ms[0]:<7.1f} "
              f"{found[0]:>9} / {found[1]} / {found[2]}")

    print(f"the shared photo folders at their own size ({n} photos each)")
    print(f"{'photos':<32} {head}")
    folders = [(f"300-W ({data})", photos)]
    unlabelled = Path(data).parent / "unlabelled"
    for sub in ("aflw", "utkface", "lfw", "aaf", "web"):
        files = sorted((unlabelled / sub).glob("*.jpg"))[:n]
        if files:
            ims = [load_image(f) for f in files]
            side = int(np.median([max(im.shape[:2]) for im in ims]))
            folders.append((f"unlabelled/{sub} (~{side} px)", ims))
    if photo:
        im = load_image(photo)
        folders.append((f"{Path(photo).name} ({im.shape[1]}x{im.shape[0]})", [im] * 3))
    for label, ims in folders:
        row(label, *race(ims))
    print(f"\nthe {n} 300-W photos scaled to a long side of N px")
    print(f"{'long side':<32} {head}")
    for side in (100, 128, 150, 160, 161, 192, 256, 300, 384, 385, 512, 640, 1024, 2048):
        scaled = []
        for img in photos:
            s = side / max(img.shape[:2])
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            scaled.append(cv2.resize(img, None, fx=s, fy=s, interpolation=interp))
        row(str(side), *race(scaled))
    from kdmark.deploy.detectors import blazeface as bf

    net = BlazeFace(tiles=0)
    # a canvas of 512 px runs at 128 px (4 canvas px per input px); one of SMALL_MAX_SIDE at SMALL_INPUT px
    for canvas_side in (512, bf.SMALL_MAX_SIDE):
        size = bf.input_size(canvas_side, canvas_side)
        per_px = canvas_side / size
        print(f"\nphoto-only pass: share of faces found, by face width in its {size}-px input")
        for width in (8, 12, 14, 16, 20, 24, 32):
            hit = 0
            for img, smp in zip(photos, samples):
                s = width * per_px / np.ptp(smp.points[:, 0])
                small = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)[:canvas_side, :canvas_side]
                canvas = np.full((canvas_side, canvas_side, 3), 128, np.uint8)
                canvas[:small.shape[0], :small.shape[1]] = small
                hit += any(score >= 0.5 for _, score, _ in net.detect_raw(canvas))
            print(f"  {width:>2} px: {hit / n:.0%}")
    return 0


def _nme(points: np.ndarray, sample) -> float:
    from kdmark.metrics import nme_per_image
    from kdmark.schemes import get_scheme

    norm = get_scheme("300w").normaliser().distance(sample.points[None])
    return float(nme_per_image(points[None], sample.points[None], norm)[0])


if __name__ == "__main__":
    raise SystemExit(main())
