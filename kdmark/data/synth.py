"""Built-in synthetic faces with exact 68-point iBUG landmarks, written in the 300-W ``.pts`` grammar so the very
same readers load them (``kdmark data synth OUT --n 2000 --seed 0``).

A face is a procedural 3-D landmark template (every point placed by its iBUG meaning) deformed by identity
(face, eye, nose and mouth proportions) and expression (open mouth, smile, raised brows, closed eyes), rotated in
3-D (yaw, pitch, roll), projected, and drawn with shading over a cluttered background, then occluded (hands, hair,
glasses-like bars, patches), blurred and noised. Each face carries WFLW-style attribute flags (largepose,
expression, illumination, makeup, occlusion, blur) in ``attributes.json``, so subset metrics work on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kdmark.data.pts import write_pts

__all__ = ["template_68", "SynthFace", "render_face", "annotate", "write_synthetic"]


def _arc(p0, p1, n, bulge):
    t = np.linspace(0, 1, n)
    pts = np.outer(1 - t, p0) + np.outer(t, p1)
    pts[:, 1] -= bulge * np.sin(np.pi * t)
    return pts


def template_68() -> np.ndarray:
    """(68, 3) frontal template in face units (x right, y down, z towards the camera), by iBUG point meaning."""
    p = np.zeros((68, 3))
    t = np.linspace(-0.2, np.pi + 0.2, 17)  # jaw: image-left ear (0) -> chin (8) -> image-right ear (16)
    p[0:17, 0], p[0:17, 1] = -0.82 * np.cos(t), -0.05 + 0.95 * np.sin(t)
    p[17:22, :2] = _arc((-0.68, -0.52), (-0.14, -0.58), 5, 0.1)  # image-left brow, outer -> inner
    p[22:27, :2] = _arc((0.14, -0.58), (0.68, -0.52), 5, 0.1)
    p[27:31, 0], p[27:31, 1] = 0.0, np.linspace(-0.42, 0.05, 4)  # nose bridge
    p[31:36, 0], p[31:36, 1] = np.linspace(-0.17, 0.17, 5), [0.14, 0.17, 0.19, 0.17, 0.14]
    w, h = 0.14, 0.06  # eyes: 36 outer, 37-38 upper, 39 inner, 40-41 lower; 42 inner, 43-44 upper, 45 outer, ...
    for i0, cx in ((36, -0.38), (42, 0.38)):
        p[i0:i0 + 6, 0] = cx + np.array([-w, -w / 3, w / 3, w, w / 3, -w / 3])
        p[i0:i0 + 6, 1] = -0.33 + np.array([0, -h, -h, 0, h, h])
    mx = np.array([-0.26, -0.16, -0.06, 0.0, 0.06, 0.16, 0.26, 0.16, 0.06, 0.0, -0.06, -0.16])
    my = np.array([0.45, 0.40, 0.38, 0.39, 0.38, 0.40, 0.45, 0.52, 0.55, 0.56, 0.55, 0.52])
    p[48:60, 0], p[48:60, 1] = mx, my
    p[60:68, 0] = [-0.22, -0.08, 0.0, 0.08, 0.22, 0.08, 0.0, -0.08]
    p[60:68, 1] = [0.45, 0.44, 0.44, 0.44, 0.45, 0.46, 0.46, 0.46]
    # depth: an ellipsoid, with the nose standing out
    p[:, 2] = 0.55 * np.sqrt(np.clip(1 - (p[:, 0] / 0.95) ** 2 - (p[:, 1] / 1.15) ** 2, 0.02, None))
    p[27:36, 2] += np.array([0.08, 0.15, 0.23, 0.3, 0.12, 0.16, 0.18, 0.16, 0.12])
    return p


@dataclass
class SynthFace:
    image: np.ndarray  # RGB uint8
    points: np.ndarray  # (68, 2) 0-based pixels
    attributes: dict[str, bool]


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _shape(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    p = template_68()
    p[:, 0] *= rng.uniform(0.85, 1.12)  # face width
    p[0:17, 1] *= rng.uniform(0.9, 1.1)  # jaw length
    eye_scale, eye_gap = rng.uniform(0.8, 1.25), rng.uniform(-0.04, 0.05)
    for i0, sign in ((36, -1), (42, 1)):
        c = p[i0:i0 + 6, :2].mean(0)
        p[i0:i0 + 6, :2] = c + (p[i0:i0 + 6, :2] - c) * eye_scale + [sign * eye_gap, 0]
    p[27:36, 1] *= rng.uniform(0.9, 1.15)  # nose length
    p[48:68, 0] *= rng.uniform(0.8, 1.2)  # mouth width
    expr = {"open": rng.random() < 0.3, "smile": rng.random() < 0.3, "brows": rng.random() < 0.25,
            "closed": rng.random() < 0.12}
    if expr["open"]:
        gap = rng.uniform(0.05, 0.16)
        p[[55, 56, 57, 58, 59, 65, 66, 67], 1] += gap
    if expr["smile"]:
        lift = rng.uniform(0.04, 0.09)
        p[[48, 54, 60, 64], 1] -= lift
        p[[48, 60], 0] -= lift / 2
        p[[54, 64], 0] += lift / 2
    if expr["brows"]:
        p[17:27, 1] -= rng.uniform(0.05, 0.12)
    if expr["closed"]:
        p[[37, 38], 1], p[[43, 44], 1] = p[[41, 40], 1] - 0.01, p[[47, 46], 1] - 0.01
    p[:, :2] += rng.normal(0, 0.008, (68, 2))  # individual variation
    return p, expr


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    img = np.full((size, size, 3), rng.integers(20, 235, 3), np.uint8)
    for _ in range(rng.integers(5, 14)):  # clutter
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        kind = rng.integers(3)
        a, b = rng.integers(0, size, 2), rng.integers(0, size, 2)
        if kind == 0:
            cv2.rectangle(img, tuple(map(int, a)), tuple(map(int, b)), colour, -1)
        elif kind == 1:
            cv2.circle(img, tuple(map(int, a)), int(rng.integers(5, size // 4)), colour, -1)
        else:
            cv2.line(img, tuple(map(int, a)), tuple(map(int, b)), colour, int(rng.integers(1, 6)))
    return cv2.GaussianBlur(img, (0, 0), 1.0)


def _poly(img, pts, colour, closed=True, thickness=-1):
    pts = np.round(pts * 4).astype(np.int32).reshape(-1, 1, 2)  # 2 bits of sub-pixel precision
    if thickness < 0:
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA, shift=2)
    else:
        cv2.polylines(img, [pts], closed, colour, thickness, cv2.LINE_AA, shift=2)


def render_face(rng: np.random.Generator, size: int = 256, clean: bool = False) -> SynthFace:
    """One synthetic face on a ``size`` square canvas, with its exact landmarks and attribute flags.

    ``clean`` draws it on a plain background without occluders, blur or noise (tests find the drawn features)."""
    shape, expr = _shape(rng)
    yaw, pitch, roll = rng.normal(0, 22), rng.normal(0, 10), rng.normal(0, 12)
    yaw, pitch = float(np.clip(yaw, -60, 60)), float(np.clip(pitch, -35, 35))
    rot = _rotation(*np.deg2rad([yaw, pitch, roll]))
    scale = size * rng.uniform(0.26, 0.34)
    centre = np.array([size / 2, size / 2]) + rng.normal(0, size * 0.03, 2)
    proj = (shape @ rot.T)[:, :2] * scale + centre
    a = np.linspace(0.2, np.pi - 0.2, 9)  # the forehead closes the face outline above the jaw
    head3 = np.c_[0.82 * np.cos(a), -0.05 - 1.05 * np.sin(a), np.full(9, 0.2)]
    head = (head3 @ rot.T)[:, :2] * scale + centre
    img = _background(size, rng) if not clean else np.full((size, size, 3), 128, np.uint8)
    skin = np.array([rng.uniform(60, 240), 0, 0])
    skin = np.array([skin[0], skin[0] * rng.uniform(0.7, 0.85), skin[0] * rng.uniform(0.55, 0.75)])
    _poly(img, np.vstack([proj[0:17], head]), tuple(int(c) for c in skin))
    light = rng.uniform(-1, 1, 2)
    strong_light = bool(np.abs(light).max() > 0.8 and rng.random() < 0.6)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    shade = 1 + (0.45 if strong_light else 0.2) * (light[0] * (xx - centre[0]) + light[1] * (yy - centre[1])) / size
    img = np.clip(img.astype(np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    dark = tuple(int(c) for c in (skin * 0.35))
    for i0 in (17, 22):
        _poly(img, proj[i0:i0 + 5], dark, closed=False, thickness=max(2, int(scale * 0.05)))
    for i0 in (36, 42):
        eye = proj[i0:i0 + 6]
        if expr["closed"]:
            _poly(img, eye[[0, 1, 2, 3]], dark, closed=False, thickness=2)
        else:
            _poly(img, eye, (235, 235, 235))
            iris_colour = tuple(int(c) for c in rng.integers(20, 120, 3))
            if not clean:  # clean renders keep the whole eye white, so tests can locate it exactly
                r = max(2.0, np.linalg.norm(eye[0] - eye[3]) * 0.22)
                centre = tuple(int(round(v * 4)) for v in eye.mean(0))
                cv2.circle(img, centre, int(round(r * 4)), iris_colour, -1, cv2.LINE_AA, shift=2)
            _poly(img, eye, dark, thickness=1)
    _poly(img, proj[27:31], dark, closed=False, thickness=2)
    _poly(img, proj[31:36], dark, closed=False, thickness=2)
    makeup = bool(rng.random() < 0.2)
    lip = (200, 40, 70) if (makeup or clean) else tuple(int(c) for c in skin * np.array([0.9, 0.55, 0.55]))
    _poly(img, proj[48:60], lip)
    if expr["open"]:
        _poly(img, proj[60:68], (40, 10, 15))
    occluded = False
    if rng.random() < 0.3 and not clean:
        occluded = True
        kind = rng.integers(3)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if kind == 0:  # a glasses-like bar across the eyes
            _poly(img, np.vstack([proj[36] - [8, 6], proj[45] + [8, -6], proj[45] + [8, 6], proj[36] - [8, -6]]),
                  colour, thickness=3)
        elif kind == 1:  # a hand-like skin blob from below
            c = proj[rng.integers(0, 68)]
            cv2.ellipse(img, tuple(int(v) for v in c), (int(scale * 0.35), int(scale * 0.22)),
                        float(rng.uniform(0, 180)), 0, 360, tuple(int(v) for v in skin * 0.95), -1, cv2.LINE_AA)
        else:  # a patch or a strand of hair
            x0, y0 = (proj[rng.integers(0, 68)] - scale * 0.15).astype(int)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + scale * 0.3), int(y0 + scale * 0.25)), colour, -1)
    blurred = bool(rng.random() < 0.2) and not clean
    if blurred:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.2, 2.5))
    if not clean:
        noise = rng.normal(0, rng.uniform(2, 8), img.shape)
        img = np.clip(img + noise, 0, 255).astype(np.uint8)
    attributes = {"largepose": abs(yaw) > 30 or abs(pitch) > 20, "expression": expr["open"] or expr["smile"],
                  "illumination": strong_light, "makeup": makeup, "occlusion": occluded, "blur": blurred}
    return SynthFace(img, proj, attributes)


# points that lie on a contour without a landmark of their own: annotators place them anywhere along it
_CONTOURS = (range(0, 17), range(17, 22), range(22, 27))


def annotate(points: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """What a human annotator would click for exact ``points`` (68, 2): every point off by an isotropic Gaussian of
    ``noise`` inter-ocular distances, and the jaw and brow points, which have no local feature to fix them, also
    slid along their contour by three times that. ``noise=0`` returns the exact points."""
    if noise <= 0:
        return points.copy()
    iod = np.linalg.norm(points[45] - points[36])
    out = points + rng.normal(0, noise * iod, points.shape)
    for contour in _CONTOURS:
        idx = np.array(contour)
        tangent = np.gradient(points[idx], axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
        out[idx] += tangent * rng.normal(0, 3 * noise * iod, (len(idx), 1))
    return out


def write_synthetic(out: str | Path, n: int = 2000, seed: int = 0, size: int = 256,
                    test_fraction: float = 0.2, label_noise: float = 0.0, progress: bool = False) -> Path:
    """Write ``n`` faces as ``out/{train,test}/synth_NNNNN.png`` + ``.pts`` (300-W grammar, 1-based),
    ``out/attributes.json`` and ``out/synth.json`` (the settings). The same settings always give the same files.

    ``label_noise`` > 0 makes the *training* labels human-like (see :func:`annotate`: real annotations are noisy,
    and that noise is what a teacher's smoothed targets help a student with); test labels always stay exact, so
    the test split measures the truth."""
    from tqdm.auto import tqdm

    if not (np.isfinite(label_noise) and label_noise >= 0):
        raise ValueError(f"label_noise must be a finite number >= 0, not {label_noise}")
    out = Path(out)
    attrs = {}
    n_test = int(round(n * test_fraction))
    for i in tqdm(range(n), desc="synthesising", unit="face", disable=not progress, leave=False):
        face = render_face(np.random.default_rng([seed, i]), size)
        split = "test" if i >= n - n_test else "train"
        points = face.points if split == "test" else annotate(face.points, label_noise,
                                                              np.random.default_rng([seed, i, 1]))
        stem = out / split / f"synth_{i:05d}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(stem.with_suffix(".png")), cv2.cvtColor(face.image, cv2.COLOR_RGB2BGR))
        write_pts(stem.with_suffix(".pts"), points)
        attrs[f"{split}/{stem.name}.pts"] = face.attributes
    (out / "attributes.json").write_text(json.dumps(attrs, indent=0))
    settings = {"n": n, "seed": seed, "size": size, "test_fraction": test_fraction, "label_noise": label_noise}
    (out / "synth.json").write_text(json.dumps(settings))
    return out
