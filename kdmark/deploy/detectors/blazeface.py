"""MediaPipe's BlazeFace short-range face detector on onnxruntime, torch-free.

The network is MediaPipe's ``face_detection_short_range.tflite`` (Apache-2.0, see ``NOTICE``) converted once to ONNX
by ``scripts/convert_blazeface.py``; the parts MediaPipe runs around it are written here in numpy, following its
graph ``face_detection_short_range.pbtxt``:

- input: the photo letterboxed into 128 x 128 (aspect kept, zero border), RGB scaled to [-1, 1]; small photos
  (longer side up to ``SMALL_MAX_SIDE``) into ``SMALL_INPUT`` x ``SMALL_INPUT`` instead, the smallest (up to
  ``TINY_MAX_SIDE``) into ``TINY_INPUT`` (the graph is fully
  convolutional and the vendored file's height and width are symbolic, so it runs at any multiple of 16 with its
  anchor grids scaled to match);
- 896 SSD anchors (``SsdAnchorsCalculator``: strides 8, 16, 16, 16, fixed anchor size, two anchors per cell at
  stride 8 and six at stride 16), so each anchor is just a cell centre;
- decoding (``TensorsToDetectionsCalculator``): box centre = raw / 128 + anchor, size = raw / 128 (raw offsets are
  in input pixels, at any input size), six keypoints
  (eyes, nose tip, mouth, ear tragions) likewise; score = sigmoid(clip(raw, -100, 100));
- weighted non-maximum suppression at IoU 0.3 (``NonMaxSuppressionCalculator``, algorithm WEIGHTED): overlapping
  detections are averaged, weighted by score.

The web page that ``kdmark export --web`` writes runs the same steps in JavaScript (``kdmark/deploy/web/kdmark.js``).

Example:
    >>> det = BlazeFace()
    >>> for box, score, keypoints in det.detect_raw(image):   # image: RGB uint8 (H, W, 3)
    ...     print(box, score)                                  # [x0, y0, x1, y1] image pixels, in [0, 1]
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from kdmark.data.transforms import warp_image

__all__ = ["BlazeFace", "ONNX_PATH", "anchors", "decode", "weighted_nms", "letterbox_matrix", "tile_grid",
           "inside_tile", "input_size"]

ONNX_PATH = Path(__file__).with_name("blazeface_short_range.onnx")
INPUT_SIZE = 128
SCORE_CLIP = 100.0
NMS_IOU = 0.3
NUM_KEYPOINTS = 6
# Photos whose longer side is at most SMALL_MAX_SIDE px are letterboxed into SMALL_INPUT px, not 128: there the
# 128-px pass upsamples the photo, and its fixed cost made kdmark no faster than dlib's HOG (upsample 0) on 150-px
# photos, where HOG scans few windows. At 96 px the pass costs 0.63x (1.10 against 1.74 ms on 100 AFLW photos of
# 150 px) and finds the same faces (100 against 99; 60 photos of 300-W scaled to 150, 176 and 192 px: 61 faces at
# both sizes, the top face within 10% of its size in 60 of 60; scripts/probe_blazeface_input.py). A face must be
# about 20 input px to be found for sure: at 96 px on a 160-px photo that is a face of 33 photo px (a landmark crop
# of 96 px from it is already upsampled 3x). Issue "Front doors, round three", item 2.
SMALL_INPUT = 96
SMALL_MAX_SIDE = 160
# Photos of at most TINY_MAX_SIDE px go one step further, to TINY_INPUT: on 300-W photos scaled to 100 px the 96-px
# pass left kdmark at 0.6x dlib's HOG per photo (1.89 against 1.19 ms), while at 64 px BlazeFace found the same 60
# faces with the top box within 10% of the 96-px one in 58 of 60 (scripts/probe_blazeface_input.py --small 64).
# The ~20-input-px face BlazeFace needs is then a face of 31 photo px in a 100-px photo.
TINY_INPUT = 64
TINY_MAX_SIDE = 100


def input_size(width: int, height: int) -> int:
    """The side of the whole-photo pass's input for a ``width`` x ``height`` photo (tiles always use 128)."""
    side = max(width, height)
    return TINY_INPUT if side <= TINY_MAX_SIDE else SMALL_INPUT if side <= SMALL_MAX_SIDE else INPUT_SIZE


@lru_cache(maxsize=4)
def anchors(size: int = INPUT_SIZE) -> np.ndarray:
    """(6 * (size / 16)^2, 2) anchor centres in [0, 1] of the ``size``-px input (896 at 128), in the network's
    output order."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):  # strides 16, 16, 16 share one grid: 3 layers x 2 anchors
        n = size // stride
        for y in range(n):
            for x in range(n):
                out += [((x + 0.5) / n, (y + 0.5) / n)] * per_cell
    return np.array(out, np.float32)


def letterbox_matrix(width: int, height: int, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine from image pixels to the ``size`` x ``size`` letterboxed input (aspect kept, centred)."""
    s = size / max(width, height)
    return np.array([[s, 0.0, (size - s * width) / 2], [0.0, s, (size - s * height) / 2]])


def decode(regressors: np.ndarray, logits: np.ndarray, threshold: float,
           size: int = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) [x0, y0, x1, y1], scores (N,) and keypoints (N, 6, 2) in input pixels, for the anchors that
    score at least ``threshold`` (``size``: the input's side)."""
    x = logits.reshape(-1)
    if 0.0 < threshold < 1.0:  # the sigmoid is monotone: only logits at or above logit(threshold) can pass (_logit
        idx = np.flatnonzero(x >= _logit(threshold))  # keeps a margin below it); the exact score decides below
    else:
        idx = np.arange(x.size)
    scores = 1.0 / (1.0 + np.exp(-np.clip(x[idx].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = scores >= threshold
    idx, scores = idx[keep], scores[keep]
    raw = regressors.reshape(-1, 4 + 2 * NUM_KEYPOINTS)[idx].astype(np.float64)
    a = _anchor_pixels(size)[idx]
    centre, half = raw[:, :2] + a, raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    return boxes, scores, keypoints


@lru_cache(maxsize=8)
def _logit(p: float) -> float:
    """logit(p), lowered by a margin of 1e-6 relative (logits are float32: ~1.2e-7 relative apart), so that the
    prefilter never drops a logit whose exact score reaches p."""
    z = float(np.log(p / (1.0 - p)))
    return z - 1e-6 * max(1.0, abs(z))


@lru_cache(maxsize=4)
def _anchor_pixels(size: int) -> np.ndarray:
    """The anchor centres in input pixels (float64), as decode uses them."""
    return anchors(size).astype(np.float64) * size


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray,
                 iou: float = NMS_IOU) -> list[tuple[np.ndarray, float, np.ndarray]]:
    """MediaPipe's weighted NMS: take the best remaining detection, average it with every remaining detection that
    overlaps it by more than ``iou`` (weights: scores), keep the best score; repeat. Ties keep input order."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    overlaps = _iou_matrix(boxes) > iou  # every pair at once (box_iou's formula): a photo has a few candidates
    out = []
    remaining = np.arange(len(scores))
    while remaining.size:
        overlap = overlaps[remaining[0], remaining]
        group = remaining[overlap]
        wts = scores[group][:, None]
        box = (boxes[group] * wts).sum(0) / wts.sum()
        kps = (keypoints[group] * wts[:, :, None]).sum(0) / wts.sum()
        out.append((box, float(scores[group[0]]), kps))
        remaining = remaining[~overlap]
    return out


def _iou_matrix(boxes: np.ndarray) -> np.ndarray:
    """(N, N) intersection over union of every pair of [x0, y0, x1, y1] rows (``box_iou`` for all pairs)."""
    b = np.asarray(boxes, float)
    ix = np.maximum(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0.0)
    iy = np.maximum(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0.0)
    inter = ix * iy
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class BlazeFace:
    """BlazeFace short range on onnxruntime: faces that fill at least ~1/8 of the photo's longer side (selfies,
    webcams, portraits). ``threshold`` is MediaPipe's ``min_score_thresh`` (0.5)."""

    def __init__(self, threshold: float = 0.5, threads: int | None = 1, path: str | Path = ONNX_PATH,
                 tiles: int = 1):
        from kdmark.runtime import onnx_session

        self.threshold, self.tiles = threshold, tiles
        self.session = onnx_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, image: np.ndarray, m: np.ndarray,
            size: int = INPUT_SIZE) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """Detections in the ``size``-px input that the 2x3 affine ``m`` makes from ``image``, mapped back to image
        pixels."""
        return [(b, float(sc), k) for b, sc, k in zip(*self._pass(image, m, size))]

    def _pass(self, image: np.ndarray, m: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``run`` as arrays: boxes (N, 4), scores (N,), keypoints (N, 6, 2) in image pixels."""
        x = np.ascontiguousarray(warp_image(image, m, size).transpose(2, 0, 1)[None], dtype=np.float32)
        x /= 127.5  # RGB scaled to [-1, 1], in place (the same float32 arithmetic as x / 127.5 - 1)
        x -= 1.0
        regressors, logits = self.session.run(["regressors", "classificators"], {self.input_name: x})
        s, tx, ty = m[0, 0], m[0, 2], m[1, 2]
        boxes, scores, kps = decode(regressors, logits, self.threshold, size)
        return (boxes - [tx, ty, tx, ty]) / s, scores, (kps - [tx, ty]) / s

    def detect_raw(self, image: np.ndarray) -> list[tuple[np.ndarray, float, np.ndarray]]:
        """(box [x0, y0, x1, y1], score, keypoints (6, 2)) per face, in image pixels, best first: the whole photo,
        then (``tiles`` > 0) overlapping square tiles of it, merged by weighted NMS. A small photo's whole-photo pass
        runs at ``SMALL_INPUT`` px (``input_size``)."""
        h, w = image.shape[:2]
        size = input_size(w, h)
        found = [self._pass(image, letterbox_matrix(w, h, size), size)]
        for x0, y0, side in tile_grid(w, h, self.tiles):
            s = INPUT_SIZE / side
            boxes, scores, kps = self._pass(image, np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0]]), INPUT_SIZE)
            keep = np.array([inside_tile(b, x0, y0, side, w, h) for b in boxes], bool)
            found.append((boxes[keep], scores[keep], kps[keep]))
        boxes, scores, kps = found[0] if len(found) == 1 else (np.concatenate(p) for p in zip(*found))
        return weighted_nms(boxes, scores, kps) if len(scores) else []


TILE_OVERLAP = 0.25  # tiles of one level overlap by this fraction of their side
TILE_EDGE = 0.02  # a tile's detection that comes this close (fraction of the side) to its border is dropped
# Photos whose longer side is at most this get no tiles. The photo-only pass finds 95% of 300-W faces 16 px wide in
# its 128-px input and all of them from 20 px (scripts/bench_detectors.py --sizes: 0% at 8 px, 42% at 12, 83% at
# 14), i.e. every face of 16% of the longer side or more: on a 384-px photo, every face of 60 px and up, where dlib's
# HOG at upsample 0 finds no face under its 80-px window. Tiles there cost 4-5 passes instead of 1 and made kdmark
# slower per photo than that dlib (issue "Front doors, round three", item 2; BENCHMARKS.md, "Detectors by photo
# size").
TILE_MIN_SIDE = 384
# Photos longer than this many times their height (or width) are cut into windows twice as long as they are high,
# each half over the next (so any face that fits the height lies wholly inside one), and each window gets the
# photo-only pass and the tiles a 2:1 photo gets: letterboxed whole, a 3000 x 300 panorama shrinks a face that fills
# its height to 13 px of the 128-px input, too small to find (issue "Reliability, round three", item 11).
TILE_MAX_ASPECT = 2.0


def tile_grid(width: int, height: int, levels: int) -> list[tuple[float, float, float]]:
    """(x0, y0, side) of the squares run besides the whole photo: level k (1..levels) cuts the longer side into
    k + 1 overlapping squares and covers the shorter side with as many as it takes, spread evenly; a photo longer
    than ``TILE_MAX_ASPECT`` times its shorter side is first cut into 2:1 windows (each one's square and tiles);
    photos up to ``TILE_MIN_SIDE`` and ``levels`` 0 get none."""
    long, short = max(width, height), min(width, height)
    if long <= TILE_MIN_SIDE or levels <= 0:
        return []
    if long <= TILE_MAX_ASPECT * short:
        return _levels(width, height, levels)
    out = []
    for start in _starts(long, 2 * short, overlap=0.5):
        squares = [(0.0, -short / 2, 2.0 * short)]  # the window letterboxed, as the whole photo is
        squares += _levels(2 * short, short, levels)
        out += [(start + a, b, side) if width >= height else (b, start + a, side) for a, b, side in squares]
    return out


def _levels(width: float, height: float, levels: int) -> list[tuple[float, float, float]]:
    out = []
    for k in range(1, levels + 1):
        side = max(width, height) / (k + 1) / (1 - TILE_OVERLAP)
        for y0 in _starts(height, side):
            for x0 in _starts(width, side):
                out.append((x0, y0, side))
    return out


def inside_tile(box: np.ndarray, x0: float, y0: float, side: float, width: int, height: int) -> bool:
    """Whether a tile's detection keeps clear of the tile's borders inside the photo: a face cut by such a border
    is another tile's (or the whole photo's) to find. Borders on the photo's own edge do not count (no other tile
    sees past them)."""
    edge = side * TILE_EDGE
    return ((box[0] > x0 + edge or x0 <= 1e-6) and (box[1] > y0 + edge or y0 <= 1e-6)
            and (box[2] < x0 + side - edge or x0 + side >= width - 1e-6)
            and (box[3] < y0 + side - edge or y0 + side >= height - 1e-6))


def _starts(length: float, side: float, overlap: float = TILE_OVERLAP) -> list[float]:
    if side >= length:
        return [(length - side) / 2]
    n = int(np.ceil((length - side) / (side * (1 - overlap)))) + 1
    return [i * (length - side) / (n - 1) for i in range(n)]
