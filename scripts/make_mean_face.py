"""Make kdmark's 3-D mean face for head pose (``kdmark/assets/mean_face_68.json``), from measurements, not a
hand-typed model.

For every labelled 300-W training face, MediaPipe's Face Mesh (the ``.tflite`` kdmark ships, two passes from the
face's box) gives 468 points with depth; kdmark's shipped linear 468 -> 68 map (fitted on the same faces' 2-D
labels) turns them into the 68 iBUG points in 3-D. The shapes are aligned by generalised Procrustes (rotation, scale,
shift), averaged, made exactly left-right symmetric (averaged with its own mirror image), and put in a head frame:
x to the face's left-to-right as seen in a frontal photo, y down, z away from the camera; the origin at the midpoint
of the two outer eye corners; pitch 0 where that midpoint and the mouth corners' midpoint lie at the same depth; and
millimetres, with the outer eye corners 90 mm apart (a typical adult outer canthal width; pose does not depend on it).

    PYTHONPATH=. python scripts/make_mean_face.py [--data ../shared/data/300w] [--out kdmark/assets/mean_face_68.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

OUTER_EYES, MOUTH_CORNERS = (36, 45), (48, 54)


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` (K, 3) moved onto ``dst`` by the least-squares rotation (proper), scale and shift (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / (a ** 2).sum()
    return scale * a @ r.T + md


def procrustes_mean(shapes: np.ndarray, rounds: int = 10) -> np.ndarray:
    mean = shapes[0] - shapes[0].mean(0)
    for _ in range(rounds):
        mean = np.mean([similarity_align(s, mean) for s in shapes], axis=0)
        mean = (mean - mean.mean(0)) / np.sqrt(((mean - mean.mean(0)) ** 2).sum())
    return mean


def head_frame(shape: np.ndarray, flip: list[int]) -> np.ndarray:
    """The symmetric shape in the head frame described in the module docstring."""
    mirror = shape * np.array([-1.0, 1.0, 1.0])
    shape = (shape + similarity_align(mirror[flip], shape)) / 2  # exactly symmetric about some plane
    across = shape[OUTER_EYES[1]] - shape[OUTER_EYES[0]]  # the pairs' common direction is the plane's normal
    x = across / np.linalg.norm(across)
    eyes, mouth = shape[list(OUTER_EYES)].mean(0), shape[list(MOUTH_CORNERS)].mean(0)
    down = mouth - eyes
    y = down - (down @ x) * x
    y /= np.linalg.norm(y)
    z = np.cross(x, y)
    out = (shape - eyes) @ np.stack([x, y, z]).T
    if out[30, 2] > 0:  # the nose tip must be nearer the camera than the eyes (z < 0)
        raise SystemExit("the mesh's depth points the wrong way: check the model's output")
    return out * (90.0 / np.linalg.norm(out[OUTER_EYES[1]] - out[OUTER_EYES[0]]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/300w")
    ap.add_argument("--out", default="kdmark/assets/mean_face_68.json")
    args = ap.parse_args(argv)

    from tqdm.auto import tqdm

    from kdmark.data import read_dataset
    from kdmark.data.images import load_image
    from kdmark.io import atomic_write_json
    from kdmark.schemes import get_scheme
    from kdmark.teachers.landmarkers import MediaPipeLandmarker, box_of

    ds = read_dataset(args.data, split="train")
    mp = MediaPipeLandmarker()
    shapes, errors = [], []
    for s in tqdm(ds.samples, desc="meshes", unit="face"):
        mesh, _ = mp.mesh_for_box(load_image(s.image), box_of(s.points), depth=True)
        pts = mp.map(mesh)
        iod = np.linalg.norm(s.points[OUTER_EYES[1]] - s.points[OUTER_EYES[0]])
        errors.append(np.linalg.norm(pts[:, :2] - s.points, axis=1).mean() / iod)
        shapes.append(pts)
    shapes, errors = np.array(shapes), np.array(errors)
    keep = errors < 0.08  # faces where the mesh found the face (2-D error under 8% of the eye distance)
    mean = head_frame(procrustes_mean(shapes[keep]), list(get_scheme("300w").flip))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    card = {
        "what": "kdmark's 3-D mean face for head pose: the 68 iBUG points in millimetres, made by "
                "scripts/make_mean_face.py (its docstring says how)",
        "axes": "x left-to-right across a frontal photo, y down, z away from the camera; origin between the outer "
                "eye corners; pitch 0 where the eyes' and the mouth corners' midpoints lie at the same depth",
        "units": "mm, outer eye corners (points 36 and 45) 90 mm apart",
        "source": f"MediaPipe Face Mesh (Apache-2.0, kdmark/teachers/assets) with depth on {int(keep.sum())} of "
                  f"{len(shapes)} 300-W training faces ({args.data}, research-only photos; this is an average "
                  "shape and holds no image), mapped by kdmark/teachers/assets/mesh_to_300w.npz",
        "command": f"PYTHONPATH=. python scripts/make_mean_face.py --data {args.data} (kdmark {commit})",
        "mesh_2d_nme_median": round(float(np.median(errors[keep])), 4),
        "points": np.round(mean, 3).tolist(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, card, indent=1)
    print(f"{args.out}: {int(keep.sum())} of {len(shapes)} faces; nose tip depth {mean[30, 2]:.1f} mm, "
          f"eyes-to-mouth {mean[list(MOUTH_CORNERS)].mean(0)[1]:.1f} mm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
