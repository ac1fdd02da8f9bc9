"""Built-in synthetic faces with exact 68-point iBUG landmarks, written in the 300-W ``.pts`` grammar so the very
same readers load them (``kdmark data synth OUT --n 2000 --seed 0``).

A face is a procedural 3-D landmark template (every point placed by its iBUG meaning) deformed by identity
(face, jaw, chin, cheek, eye, brow, nose, mouth and lip proportions, eye tilt) and expression (open jaw, smile,
frown, pout, raised or knitted brows, wide, closed or winking eyes), rotated in 3-D (yaw, pitch, roll) and
projected. It is drawn as a shaded head ellipsoid (a directional light of any side and strength, textured skin of
any tone) on a neck and shoulders over a plain, striped, blotchy or leafy wall with clutter and face-like
distractors; brows sit under their landmarks' upper edge, eyes have irises, lids and creases, the nose nostrils and
a bridge shadow, an open mouth teeth. Hair (fringes over the brows, long hair), beards, glasses and sunglasses,
hands, face masks, objects and strands of hair occlude it; colour casts, gamma, Gaussian, motion or low-resolution
blur, JPEG and noise finish it. Each face carries WFLW-style attribute flags (largepose, expression, illumination,
makeup, occlusion: at least 4 landmarks covered, blur) in ``attributes.json``, so subset metrics work on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from kdmark.data.pts import write_pts

__all__ = ["template_68", "SynthFace", "render_face", "annotate", "write_synthetic", "GENERATOR"]

# the generator's version, recorded in synth.json: faces made by an older one are made again by `kdmark run`
GENERATOR = 2


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
    """The template deformed by identity (face, jaw, chin, cheek, eye, brow, nose, mouth and lip proportions, eye
    tilt, a little asymmetry) and expression (open jaw, smile, frown, pout, raised or knitted brows, wide, closed or
    winking eyes), in face units."""
    p = template_68()
    p[:, 0] *= rng.uniform(0.82, 1.15)  # face width
    p[0:17, 1] *= rng.uniform(0.88, 1.12)  # jaw length
    p[6:11, 1] += rng.uniform(-0.06, 0.09) * np.array([0.3, 0.7, 1, 0.7, 0.3])  # square or pointed chin
    p[[1, 2, 3, 13, 14, 15], 0] *= rng.uniform(0.92, 1.08)  # cheekbones
    eye_scale, eye_gap, eye_open = rng.uniform(0.8, 1.25), rng.uniform(-0.04, 0.05), rng.uniform(0.7, 1.35)
    tilt = rng.uniform(-0.18, 0.18)  # canthal tilt, mirrored between the eyes
    for i0, sign in ((36, -1), (42, 1)):
        c = p[i0:i0 + 6, :2].mean(0)
        d = (p[i0:i0 + 6, :2] - c) * [eye_scale, eye_scale * eye_open]
        a = -sign * tilt
        d = d @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        p[i0:i0 + 6, :2] = c + d + [sign * eye_gap, 0]
    brow_up, arch = rng.uniform(-0.04, 0.05), rng.uniform(-0.03, 0.06)
    p[17:27, 1] -= brow_up
    p[[18, 19, 20, 23, 24, 25], 1] -= arch * np.array([0.7, 1, 0.7, 0.7, 1, 0.7])
    p[27:36, 1] *= rng.uniform(0.9, 1.15)  # nose length
    p[31:36, 0] *= rng.uniform(0.8, 1.3)  # nose width
    p[48:68, 0] *= rng.uniform(0.8, 1.2)  # mouth width
    p[48:68, 1] += rng.uniform(-0.03, 0.04)  # mouth height
    p[49:54, 1] -= rng.uniform(-0.015, 0.03)  # upper lip thickness
    p[55:60, 1] += rng.uniform(-0.015, 0.04)  # lower lip thickness
    expr = {"open": rng.random() < 0.3, "smile": rng.random() < 0.3, "frown": rng.random() < 0.1,
            "pout": rng.random() < 0.08, "brows": rng.random() < 0.2, "knit": rng.random() < 0.1,
            "closed": rng.random() < 0.1, "wink": rng.random() < 0.05, "wide": rng.random() < 0.1}
    if expr["open"]:  # the jaw drops with the lower lip
        gap = rng.uniform(0.04, 0.2)
        p[[55, 56, 57, 58, 59, 65, 66, 67], 1] += gap
        p[5:12, 1] += gap * np.array([0.2, 0.45, 0.7, 0.8, 0.7, 0.45, 0.2])
    if expr["smile"]:
        lift = rng.uniform(0.03, 0.09)
        p[[48, 54, 60, 64], 1] -= lift
        p[[48, 60], 0] -= lift / 2
        p[[54, 64], 0] += lift / 2
    elif expr["frown"]:
        p[[48, 54, 60, 64], 1] += rng.uniform(0.02, 0.06)
    if expr["pout"]:
        p[48:68, 0] *= 0.8
        p[48:68, 2] += 0.05
    if expr["brows"]:
        p[17:27, 1] -= rng.uniform(0.05, 0.12)
    if expr["knit"]:
        p[[20, 21, 22, 23], 1] += rng.uniform(0.03, 0.06)
        p[[20, 21], 0] += 0.02
        p[[22, 23], 0] -= 0.02
    if expr["wide"] and not expr["closed"]:
        for i0 in (36, 42):
            c = p[i0:i0 + 6, 1].mean()
            p[i0:i0 + 6, 1] = c + (p[i0:i0 + 6, 1] - c) * 1.35
    shut = [36, 42] if expr["closed"] else ([int(rng.choice([36, 42]))] if expr["wink"] else [])
    for i0 in shut:
        p[[i0 + 1, i0 + 2], 1] = p[[i0 + 5, i0 + 4], 1] - 0.01
    p[:, :2] += rng.normal(0, 0.008, (68, 2))  # individual variation
    return p, expr


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def _field(rng: np.random.Generator, size: int, cells: int | tuple[int, int], channels: int = 1) -> np.ndarray:
    """Smooth random field (size, size, channels), unit variance at its ``cells`` control points."""
    cy, cx = (cells, cells) if np.isscalar(cells) else cells
    low = rng.normal(0, 1, (cy, cx, channels)).astype(np.float32)
    return cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC).reshape(size, size, channels)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A plain, gradient, stripy, blotchy or leafy wall with clutter and, now and then, a face-like distractor."""
    base = rng.uniform(20, 235, 3).astype(np.float32)
    kind = rng.integers(4)
    xx, yy = _grid(size)
    if kind == 0:
        img = base + rng.uniform(10, 50) * _field(rng, size, int(rng.integers(2, 6)), 3)
    elif kind == 1:
        a, f = rng.uniform(0, np.pi), rng.uniform(0.03, 0.25)
        wave = np.sin(f * (np.cos(a) * xx + np.sin(a) * yy))[..., None]
        img = base + (rng.uniform(-90, 90, 3) * (wave > 0) if rng.random() < 0.5 else rng.uniform(10, 60) * wave)
    elif kind == 2:
        g = rng.uniform(-1, 1, 2)
        img = base + rng.uniform(20, 80) * ((g[0] * xx + g[1] * yy) / size)[..., None]
    else:
        img = base + rng.uniform(25, 70) * _field(rng, size, int(rng.integers(16, 48)), 3)
    img = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    for _ in range(rng.integers(3, 12)):  # clutter
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        kind = rng.integers(4)
        a, b = rng.integers(0, size, 2), rng.integers(0, size, 2)
        if kind == 0:
            cv2.rectangle(img, tuple(map(int, a)), tuple(map(int, b)), colour, -1)
        elif kind == 1:
            cv2.circle(img, tuple(map(int, a)), int(rng.integers(5, size // 4)), colour, -1)
        elif kind == 2:
            cv2.line(img, tuple(map(int, a)), tuple(map(int, b)), colour, int(rng.integers(1, 6)))
        else:  # a face-like blob: two eyes and a mouth
            r = int(rng.integers(size // 16, size // 6))
            cv2.ellipse(img, tuple(map(int, a)), (r, int(r * 1.3)), 0, 0, 360, colour, -1)
            for dx in (-0.4, 0.4):
                cv2.circle(img, (int(a[0] + dx * r), int(a[1] - 0.2 * r)), max(1, r // 7), (30, 25, 25), -1)
            cv2.line(img, (int(a[0] - 0.35 * r), int(a[1] + 0.5 * r)), (int(a[0] + 0.35 * r), int(a[1] + 0.5 * r)),
                     (90, 30, 40), max(1, r // 10))
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0)).astype(np.float32)


def _shade(size: int, rot: np.ndarray, scale: float, centre: np.ndarray, light: np.ndarray,
           ambient: float) -> np.ndarray:
    """Lambertian shading (size, size) of the head ellipsoid under a directional ``light`` (camera frame), from
    the analytic ray-ellipsoid intersection at half resolution; pixels off the head get the half-lit value."""
    half = size // 2
    xx, yy = _grid(half)
    q = np.stack([((xx + 0.5) * 2 - 0.5 - centre[0]) / scale, ((yy + 0.5) * 2 - 0.5 - centre[1]) / scale])
    inv = 1 / np.array([0.95, 1.15, 0.6], np.float32) ** 2
    v = np.tensordot(rot.T[:, :2].astype(np.float32), q, axes=1)  # head-frame point of each ray at depth 0
    u = rot.T[:, 2].astype(np.float32)  # head-frame ray direction
    a = float((u * u * inv).sum())
    b = np.tensordot(u * inv, v, axes=1)
    c = np.tensordot(inv, v * v, axes=1) - 1
    disc = b * b - a * c
    t = (-b + np.sqrt(np.maximum(disc, 0))) / a  # the surface nearest the camera
    n = (v + u[:, None, None] * t) * inv[:, None, None]
    n = np.tensordot(rot.astype(np.float32), n, axes=1)
    lam = np.clip(np.tensordot(light.astype(np.float32), n, axes=1) / (np.linalg.norm(n, axis=0) + 1e-6), 0, 1)
    lam = np.where(disc > 0, lam, 0.5)
    return cv2.resize(ambient + (1 - ambient) * lam, (size, size), interpolation=cv2.INTER_LINEAR)


def _mask(shape: tuple[int, int], polys, origin, thickness: int = -1, closed: bool = True) -> np.ndarray:
    """uint8 anti-aliased mask (0-255) of ``shape`` whose pixel (0, 0) is image pixel ``origin`` (x, y): the
    polygons filled, or drawn as lines of ``thickness``, with 2 bits of sub-pixel precision."""
    mask = np.zeros(shape, np.uint8)
    pts = [np.round((np.asarray(p) - origin) * 4).astype(np.int32).reshape(-1, 1, 2) for p in polys]
    if thickness < 0:
        cv2.fillPoly(mask, pts, 255, cv2.LINE_AA, shift=2)
    else:
        cv2.polylines(mask, pts, closed, 255, thickness, cv2.LINE_AA, shift=2)
    return mask


def _paint(img: np.ndarray, polys, colour, alpha: float = 1.0, thickness: int = -1, closed: bool = True,
           occ: np.ndarray | None = None) -> None:
    """Blend ``colour`` (RGB, or an image the size of ``img``) into float ``img`` through an anti-aliased mask of
    the polygons (filled, or lines of ``thickness``), drawn with 2 bits of sub-pixel precision; optionally also
    into the occluder mask ``occ``."""
    h, w = img.shape[:2]
    allp = np.vstack(polys)
    pad = 3 + max(thickness, 0)
    x0, y0 = np.maximum(np.floor(allp.min(0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(allp.max(0)).astype(int) + pad + 1, [w, h])
    if x1 <= x0 or y1 <= y0:
        return
    mask = _mask((y1 - y0, x1 - x0), polys, (x0, y0), thickness, closed)
    a = mask.astype(np.float32)[..., None] * (alpha / 255)
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 3:
        colour = colour[y0:y1, x0:x1]
    roi = img[y0:y1, x0:x1]
    roi += a * (colour - roi)
    if occ is not None:
        np.maximum(occ[y0:y1, x0:x1], mask, out=occ[y0:y1, x0:x1])


def _project(pts3: np.ndarray, rot: np.ndarray, scale: float, centre: np.ndarray) -> np.ndarray:
    return (np.asarray(pts3, float) @ rot.T)[:, :2] * scale + centre


_HAIR = np.array([[25, 20, 18], [55, 38, 28], [100, 68, 40], [160, 120, 75], [215, 185, 125], [140, 55, 25],
                  [140, 140, 140], [225, 225, 220]], np.float32)


def _textured(rng: np.random.Generator, size: int, colour: np.ndarray, streaks: bool) -> np.ndarray:
    """``colour`` with a random texture: hair-like streaks or fabric-like blotches."""
    cells = (int(rng.integers(2, 5)), int(rng.integers(24, 48))) if streaks else int(rng.integers(3, 12))
    f = _field(rng, size, cells, 1)
    if streaks:
        f = cv2.warpAffine(f, cv2.getRotationMatrix2D((size / 2, size / 2), float(rng.uniform(60, 120)), 1.0),
                           (size, size), borderMode=cv2.BORDER_REFLECT)[..., None]
    return colour * (1 + rng.uniform(0.08, 0.25) * f)


def render_face(rng: np.random.Generator, size: int = 256, clean: bool = False) -> SynthFace:
    """One synthetic face on a ``size`` square canvas, with its exact landmarks and attribute flags.

    The head is a shaded ellipsoid (directional light, textured skin of any tone) on a neck and shoulders over a
    cluttered wall; brows, eyes (iris, lids, creases), nose (nostrils, bridge shadow) and lips (teeth when open)
    sit at their landmarks; hair (a fringe that may cover the brows, long hair), beards, glasses, hands, masks and
    objects occlude; colour cast, blur, low resolution, JPEG and noise finish it.
    ``clean`` draws it evenly lit on a plain background without hair, occluders or camera effects, with pure-white
    eyes and lips of one colour (tests find the drawn features).

    Each painter below draws one part in turn from the same random stream (the order is part of the faces: a test
    pins their checksum)."""
    face = _Face.new(rng, size, clean)
    _paint_head(face, rng)
    _paint_brows(face, rng)
    face.makeup = bool(not clean and rng.random() < 0.2)
    for painter in (_paint_eyes, _paint_nose, _paint_mouth, _paint_beard, _paint_hairline, _paint_glasses,
                    _paint_occluder):
        painter(face, rng)
    img, blurred = _camera(face, rng)
    proj, occ = face.proj, face.occ
    inside = np.all((proj >= 0) & (proj < size - 0.5), axis=1)
    covered = int((occ[np.clip(np.round(proj[:, 1]).astype(int), 0, size - 1),
                       np.clip(np.round(proj[:, 0]).astype(int), 0, size - 1)] > 127)[inside].sum())
    expr = face.expr
    attributes = {"largepose": abs(face.yaw) > 30 or abs(face.pitch) > 20,
                  "expression": bool(expr["open"] or expr["smile"] or expr["frown"] or expr["pout"]),
                  "illumination": face.strong_light, "makeup": face.makeup, "occlusion": covered >= 4, "blur": blurred}
    return SynthFace(img, proj, attributes)


class _Face:
    """What the painters of :func:`render_face` share: the pose and its projection, the canvas and the occlusion
    mask, the light, the skin and the hair."""

    @classmethod
    def new(cls, rng: np.random.Generator, size: int, clean: bool) -> _Face:
        """Pose, projection, background, skin, light and hair, drawn from ``rng`` in this order."""
        shape, expr = _shape(rng)
        yaw, pitch, roll = rng.normal(0, 25), rng.normal(0, 12), rng.normal(0, 14)
        yaw, pitch = float(np.clip(yaw, -60, 60)), float(np.clip(pitch, -35, 35))
        rot = _rotation(*np.deg2rad([yaw, pitch, roll]))
        scale = size * rng.uniform(0.24, 0.34)
        centre = np.array([size / 2, size / 2]) + rng.normal(0, size * 0.03, 2)
        proj = _project(shape, rot, scale, centre)


        img = _background(size, rng) if not clean else np.full((size, size, 3), 128, np.float32)
        occ = np.zeros((size, size), np.uint8)
        tone = rng.uniform(0, 1)
        skin = np.array([70 + 175 * tone, (45 + 160 * tone) * rng.uniform(0.82, 1.0),
                         (35 + 150 * tone) * rng.uniform(0.75, 1.0)], np.float32)
        strong_light = bool(rng.random() < 0.15)
        light = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.6), rng.uniform(0.2, 1.2)])
        if strong_light:  # light from the side with little ambient: half the face in shadow
            light[0], light[2] = np.sign(light[0]) * rng.uniform(1, 2), rng.uniform(0.1, 0.5)
        light /= np.linalg.norm(light)
        ambient = rng.uniform(0.12, 0.3) if strong_light else rng.uniform(0.35, 0.7)
        tint = (1 + rng.normal(0, 0.06, 3)).astype(np.float32)
        exposure = rng.uniform(1.0, 1.35)
        # clean renders are evenly lit, so drawn features keep their contrast
        shade = np.ones((size, size)) if clean else _shade(size, rot, scale, centre, light, ambient) * exposure
        texture = 1 + rng.uniform(0.02, 0.1) * _field(rng, size, int(rng.integers(4, 10)))[..., 0]
        texture += rng.uniform(0.0, 0.04) * rng.normal(0, 1, (size, size)).astype(np.float32)
        lit = (shade * texture)[..., None] * tint  # what the light does to a colour at each pixel
        skin_img = skin * lit
        hair = not clean and rng.random() < 0.8
        hair_colour = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.15)
        hair_img = _textured(rng, size, hair_colour, streaks=True) * lit if hair else None
        face = cls()  # every name drawn above becomes an attribute the painters read
        face.__dict__.update({k: v for k, v in locals().items() if k not in ("cls", "face")})
        return face

    def project(self, p3) -> np.ndarray:
        return _project(p3, self.rot, self.scale, self.centre)

    def at(self, colour, point) -> np.ndarray:
        """A feature colour as lit where it sits."""
        x, y = np.clip(np.round(point).astype(int), 0, self.size - 1)
        return np.asarray(colour, np.float32) if self.clean else np.asarray(colour, np.float32) * self.lit[y, x]


def _paint_brows(face: _Face, rng: np.random.Generator) -> None:
    """The brows, their upper edge on the landmarks."""
    face.dark = face.skin * 0.3
    brow_colour = face.hair_colour * 0.8 if face.hair else face.skin * rng.uniform(0.2, 0.5)
    face.down = (face.rot @ [0, 1, 0])[:2]
    thick = rng.uniform(0.025, 0.07) * face.scale
    for i0, taper in ((17, [0.4, 0.8, 1, 1, 0.9]), (22, [0.9, 1, 1, 0.8, 0.4])):  # points on the upper edge
        upper = face.proj[i0:i0 + 5]
        lower = upper + np.outer(np.array(taper) * thick, face.down)
        _paint(face.img, [np.vstack([upper, lower[::-1]])], face.at(brow_colour, upper[2]), alpha=rng.uniform(0.7, 1))


def _camera(face: _Face, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Colour cast, then perhaps blur (Gaussian, motion or low resolution), gamma, noise and JPEG: (image, blurred)."""
    img, clean, size = face.img, face.clean, face.size
    if not clean:
        img = img * (1 + rng.normal(0, 0.05, 3)) * rng.uniform(0.8, 1.15)
    img = np.clip(img, 0, 255).astype(np.uint8)
    blurred = bool(rng.random() < 0.2) and not clean
    if blurred:
        kind = rng.integers(3)
        if kind == 0:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.2, 2.5))
        elif kind == 1:  # motion
            n = int(rng.integers(5, 12))
            k = np.zeros((n, n), np.float32)
            k[n // 2] = 1 / n
            k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1),
                               (n, n))
            img = cv2.filter2D(img, -1, k / k.sum())
        else:  # low resolution
            f = rng.uniform(2.5, 4.5)
            small = cv2.resize(img, (int(size / f), int(size / f)), interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if not clean:
        gamma = rng.uniform(0.75, 1.3)
        img = (255 * (img / 255.0) ** gamma + rng.normal(0, rng.uniform(2, 9), img.shape))
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.25:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 70))])
            img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return img, blurred


def _paint_head(face: _Face, rng: np.random.Generator) -> None:
    """Shoulders, neck, long hair behind, ears, the face and forehead, freckles."""
    if not face.clean:  # shoulders and neck
        shirt = _textured(rng, face.size, rng.uniform(10, 245, 3), streaks=False) * face.lit
        _paint(face.img, [face.project([[-1.7, 1.5, -0.3], [1.7, 1.5, -0.3], [2.4, 4, -0.3], [-2.4, 4, -0.3]])], shirt)
    neck = face.project([[-0.38, 0.3, -0.1], [0.38, 0.3, -0.1], [0.44, 2.2, -0.1], [-0.44, 2.2, -0.1]])
    _paint(face.img, [neck], face.skin_img * rng.uniform(0.55, 0.8))
    if face.hair and rng.random() < 0.4:  # long face.hair behind the head
        a = np.linspace(-0.15, np.pi + 0.15, 11)
        back = np.c_[1.05 * np.cos(a), -0.1 - 1.2 * np.sin(a), np.full(11, -0.3)]
        length = rng.uniform(0.5, 1.8)
        back = np.vstack([[[1.1, length, -0.3]], back, [[-1.1, length, -0.3]]])
        _paint(face.img, [face.project(back)], face.hair_img)
    for side in (-1, 1):  # ears, mostly hidden behind the face unless it turns
        c = face.project([[side * 0.86, -0.22, -0.1]])[0]
        ear = cv2.ellipse2Poly(tuple(int(v) for v in c), (max(2, int(face.scale * 0.1)), max(3, int(face.scale * 0.2))),
                               int(face.roll), 0, 360, 30)
        _paint(face.img, [ear.astype(float)], face.skin_img * 0.9)
    a = np.linspace(0.2, np.pi - 0.2, 9)  # the forehead closes the face outline above the jaw
    head = face.project(np.c_[0.82 * np.cos(a), -0.05 - 1.05 * np.sin(a), np.full(9, 0.2)])
    _paint(face.img, [np.vstack([face.proj[0:17], head])], face.skin_img)
    if not face.clean and rng.random() < 0.15:  # freckles or spots
        for c in face.proj[rng.integers(0, 68, int(rng.integers(10, 40)))] + rng.normal(0, face.scale * 0.08, (1, 2)):
            cv2.circle(face.img, tuple(int(v) for v in c), 1, tuple(float(v) for v in face.skin * 0.75), -1)


def _paint_eyes(face: _Face, rng: np.random.Generator) -> None:
    """Creases, eye shadow, whites, irises and pupils clipped by the lids, lid lines (or a lash line when closed)."""
    for i0 in (36, 42):
        eye = face.proj[i0:i0 + 6]
        width = np.linalg.norm(eye[3] - eye[0])
        lid = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
        if not face.clean:  # the crease above the lid, eye shadow with make-up
            crease = eye[[0, 1, 2, 3]] - face.down * width * rng.uniform(0.25, 0.4)
            if face.makeup:
                _paint(face.img, [np.vstack([eye[[0, 1, 2, 3]], crease[::-1]])],
                       face.at(rng.uniform(40, 200, 3), crease[1]), alpha=0.45)
            _paint(face.img, [crease], face.at(face.skin * 0.6, crease[1]), alpha=0.35, thickness=1, closed=False)
        if lid < 0.1 * width:  # closed: a lash line
            _paint(face.img, [eye[[0, 1, 2, 3]]], face.at(face.dark, eye[1]), thickness=2, closed=False)
            continue
        white = (235, 235, 235) if face.clean else face.at(np.full(3, rng.uniform(185, 240)), eye.mean(0))
        _paint(face.img, [eye], white)
        if not face.clean:  # iris and pupil, clipped by the lids
            roi0 = np.floor(eye.min(0)).astype(int) - 2
            roi1 = np.ceil(eye.max(0)).astype(int) + 3
            if (roi0 >= 0).all() and (roi1 <= face.size).all():
                h, w = roi1[1] - roi0[1], roi1[0] - roi0[0]
                m_eye, m_iris = _mask((h, w), [eye], roi0), np.zeros((h, w), np.uint8)
                gaze = eye.mean(0) + (eye[3] - eye[0]) * rng.uniform(-0.15, 0.15) - roi0
                r = width * rng.uniform(0.2, 0.28)
                cv2.circle(m_iris, tuple(int(round(v * 4)) for v in gaze), int(round(r * 4)), 255, -1,
                           cv2.LINE_AA, shift=2)
                iris = rng.uniform(15, 130, 3)
                alpha = (m_eye.astype(np.float32) * m_iris / 255**2)[..., None]
                view = face.img[roi0[1]:roi1[1], roi0[0]:roi1[0]]
                roi = view + alpha * (face.at(iris, eye.mean(0)) - view)
                cv2.circle(roi, tuple(int(round(v * 4)) for v in gaze), int(round(r * 1.6)), (10, 10, 10), -1,
                           cv2.LINE_AA, shift=2)
                view[...] = np.where(m_eye[..., None] > 0, roi, view)
        if face.clean:
            _paint(face.img, [eye], tuple(face.dark), thickness=1)
        else:
            _paint(face.img, [eye[[0, 1, 2, 3]]], face.at(face.dark * 0.5, eye[1]), thickness=int(rng.integers(1, 4)),
                   closed=False)
            _paint(face.img, [eye[[3, 4, 5, 0]]], face.at(face.dark, eye[4]), alpha=0.5, thickness=1, closed=False)


def _paint_nose(face: _Face, rng: np.random.Generator) -> None:
    """The bridge shadow away from the light, the lower edge, nostrils."""
    img, proj, at, skin = face.img, face.proj, face.at, face.skin
    # the nose: bridge shadow on the side away from the face.light, the lower edge, nostrils
    side = -np.sign(face.light[0]) * face.scale * 0.05
    _paint(img, [proj[27:31] + [side, 0]], at(skin * 0.6, proj[29]), alpha=rng.uniform(0.15, 0.5),
           thickness=int(rng.integers(1, 4)), closed=False)
    _paint(img, [proj[31:36]], at(skin * 0.45, proj[33]), alpha=rng.uniform(0.4, 1), thickness=int(rng.integers(1, 3)),
           closed=False)
    nostril_size = max(1, int(np.linalg.norm(proj[35] - proj[31]) * 0.12 * 4))
    for a, b in ((31, 33), (35, 33)):
        c = 0.6 * proj[a] + 0.4 * proj[b] + 0.25 * (proj[30] - proj[33])
        cv2.ellipse(img, tuple(int(round(v * 4)) for v in c), (nostril_size, max(1, nostril_size // 2)),
                    float(face.roll), 0, 360, tuple(float(v) for v in at(skin * 0.3, c)), -1, cv2.LINE_AA, shift=2)


def _paint_mouth(face: _Face, rng: np.random.Generator) -> None:
    """Lips, the open mouth and upper teeth, or the line between closed lips."""
    img, proj, at, skin = face.img, face.proj, face.at, face.skin
    lip = (200, 40, 70) if face.clean else (rng.choice([[200, 40, 70], [150, 30, 50], [190, 70, 110], [90, 30, 60]])
                                       if face.makeup else skin * np.array([0.9, 0.55, 0.55]) * rng.uniform(0.8, 1.1))
    upper_lip = np.vstack([proj[48:55], proj[[64, 63, 62, 61, 60]]])
    lower_lip = np.vstack([proj[[54, 55, 56, 57, 58, 59, 48]], proj[[60, 67, 66, 65, 64]]])
    _paint(img, [upper_lip], at(lip, proj[51]))
    _paint(img, [lower_lip], at(lip, proj[57]) * (1 if face.clean else 1.1))
    if face.expr["open"]:
        _paint(img, [proj[60:68]], at((40, 10, 15), proj[62]))
        if not face.clean and rng.random() < 0.6:  # upper teeth
            drop = 0.35 * (proj[66] - proj[62])
            _paint(img, [np.vstack([proj[60:65], proj[64:59:-1] + drop])], at((225, 220, 205), proj[62]))
    else:
        _paint(img, [proj[60:65]], at(face.dark, proj[62]), alpha=0.6, thickness=1, closed=False)


def _paint_beard(face: _Face, rng: np.random.Generator) -> None:
    """Sometimes a moustache, perhaps a beard."""
    img, proj = face.img, face.proj
    if not face.clean and rng.random() < 0.12:  # a moustache and perhaps a beard
        beard = face.hair_img if face.hair else (
            _textured(rng, face.size, _HAIR[rng.integers(len(_HAIR))], streaks=True) * face.lit)
        _paint(img, [np.vstack([proj[31:36] * 0.65 + proj[[48, 50, 51, 52, 54]] * 0.35, proj[54:47:-1]])], beard,
               alpha=rng.uniform(0.6, 0.95))
        if rng.random() < 0.6:
            _paint(img, [np.vstack([proj[3:14], proj[[54, 55, 56, 57, 58, 59, 48]]])], beard,
                   alpha=rng.uniform(0.6, 0.95))


def _paint_hairline(face: _Face, rng: np.random.Generator) -> None:
    """The hairline, perhaps a fringe over the brows (an occluder)."""
    if face.hair and rng.random() < 0.85:  # the hairline, perhaps a fringe over the brows
        line = rng.uniform(-1.0, -0.45)
        x = np.linspace(-0.86, 0.86, 9)
        y = line + rng.uniform(-0.1, 0.1) * x + rng.normal(0, 0.04, 9) + 0.25 * (np.abs(x) > 0.75)
        a = np.linspace(0.05, np.pi - 0.05, 11)
        top = np.c_[0.95 * np.cos(a), -0.1 - 1.22 * np.sin(a), np.full(11, 0.25)]
        _paint(face.img, [face.project(np.vstack([top, np.c_[x, y, np.full(9, 0.35)]]))], face.hair_img, occ=face.occ)


def _paint_glasses(face: _Face, rng: np.random.Generator) -> None:
    """Sometimes glasses, some of them dark."""
    if not face.clean and rng.random() < 0.18:  # glasses, some of them face.dark
        frame = face.at(rng.uniform(0, 120, 3), face.proj[27])
        sun = rng.random() < 0.35
        rims = []
        for i0 in (36, 42):
            eye = face.proj[i0:i0 + 6]
            width = np.linalg.norm(eye[3] - eye[0])
            ang = np.degrees(np.arctan2(*(eye[3] - eye[0])[::-1]))
            c = eye.mean(0) + face.down * width * 0.1
            rim = cv2.ellipse2Poly((int(c[0] * 4), int(c[1] * 4)), (int(width * 3.2), int(width * 2.4)), int(ang), 0,
                                   360, 20).astype(float) / 4
            rims.append(rim)
            if sun:
                _paint(face.img, [rim], frame * 0.4, alpha=0.88, occ=face.occ)
        _paint(face.img, rims, frame, thickness=int(rng.integers(1, 4)), occ=None if sun else face.occ)
        _paint(face.img, [np.array([rims[0][0], rims[1][len(rims[1]) // 2]])], frame, thickness=2, closed=False)


def _paint_occluder(face: _Face, rng: np.random.Generator) -> None:
    """Sometimes a hand, a mask, an object or a strand of hair in front of the face."""
    img, proj, skin, scale = face.img, face.proj, face.skin, face.scale
    if not face.clean and rng.random() < 0.25:  # something in front of the face
        kind = rng.integers(4)
        c = proj[rng.integers(0, 68)] + rng.normal(0, scale * 0.1, 2)
        if kind == 0:  # a hand with fingers
            hand = skin * rng.uniform(0.85, 1.15) * face.shade[..., None] * face.tint
            ang = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(ang), np.sin(ang)])
            palm = cv2.ellipse2Poly(tuple(int(v) for v in c + d * scale * 0.35), (int(scale * 0.3), int(scale * 0.22)),
                                    int(np.degrees(ang)), 0, 360, 20).astype(float)
            _paint(img, [palm], hand, occ=face.occ)
            for k in range(4):
                base = c + d * scale * 0.3 + np.array([-d[1], d[0]]) * scale * (k - 1.5) * 0.12
                _paint(img, [np.array([base, base - d * scale * rng.uniform(0.3, 0.5)])], hand,
                       thickness=max(2, int(scale * 0.09)), closed=False, occ=face.occ)
        elif kind == 1:  # a face mask over the nose and mouth
            colour = rng.choice([[225, 230, 235], [120, 170, 210], [30, 30, 35]]) * face.lit
            _paint(img, [np.vstack([proj[2:15], proj[[15, 29, 1]] * [[0.6], [1], [0.6]] + proj[[14, 29, 2]] *
                                    [[0.4], [0], [0.4]]])], colour, occ=face.occ)
        elif kind == 2:  # an object or a patch
            w, h = scale * rng.uniform(0.15, 0.5, 2)
            box = c + np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) @ cv2.getRotationMatrix2D(
                (0, 0), float(rng.uniform(0, 180)), 1)[:, :2].T
            _paint(img, [box], _textured(rng, face.size, rng.uniform(0, 255, 3), streaks=False), occ=face.occ)
        else:  # a strand of face.hair across the face
            pts = c + np.cumsum(rng.normal(0, scale * 0.12, (6, 2)), axis=0)
            _paint(img, [pts], face.hair_colour * 0.9, thickness=max(2, int(scale * rng.uniform(0.03, 0.08))),
                   closed=False, occ=face.occ)


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
    settings = {"n": n, "seed": seed, "size": size, "test_fraction": test_fraction, "label_noise": label_noise,
                "generator": GENERATOR}
    (out / "synth.json").write_text(json.dumps(settings))
    return out
