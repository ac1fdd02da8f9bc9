"""``kdmark.draw(image, faces)``: a picture of what kdmark found, as ``kdmark predict --draw`` writes it.

What the colours mean:
    blue box        the face box the landmarks were cropped from (the detector's, or the one you gave)
    green dots      landmarks the model is sure of (per-point confidence >= ``min_score``, default 0.3)
    red dots        landmarks it is unsure of (covered, blurred or outside the photo)
    axes (pose=True) the head's pose from the nose tip: red to the face's right as seen, green up, blue toward
                    the camera (68-point models)
    label           ``#id`` (the face's track id in a video) above the box
"""

from __future__ import annotations

import numpy as np

__all__ = ["draw"]

BOX, SURE, UNSURE = (0, 200, 255), (0, 200, 0), (230, 0, 0)  # RGB
AXES = ((230, 0, 0), (0, 200, 0), (40, 80, 255))


def draw(image, faces, pose: bool = False, min_score: float = 0.3, bgr: bool = False) -> np.ndarray:
    """An RGB uint8 copy of ``image`` (anything ``Predictor.predict`` reads; ``bgr=True`` for OpenCV arrays, and
    the result is then BGR too) with each face's box, its landmarks coloured by confidence and, with ``pose=True``,
    its head-pose axes. Dots and lines scale with each face, so a small face stays readable."""
    import cv2

    from kdmark.data.images import as_rgb

    out = np.ascontiguousarray(as_rgb(image, bgr).copy())
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    for f in faces:
        x0, y0, x1, y1 = (float(v) for v in f.box)
        side = max(x1 - x0, y1 - y0, 1.0)
        width = max(1, round(side / 150))
        radius = max(1.2, side / 90)
        cv2.rectangle(out, (round(x0), round(y0)), (round(x1), round(y1)), BOX, width, cv2.LINE_AA)
        for (x, y), s in zip(np.asarray(f.landmarks, float), np.asarray(f.scores, float)):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(out, (round(x * 16), round(y * 16)), round(radius * 16), SURE if s >= min_score else UNSURE,
                           -1, cv2.LINE_AA, shift)
        fitted = getattr(f, "pose", None) if pose else None  # the face's own (cached) fit: the JSON's pose, drawn
        if fitted is not None:
            from kdmark.pose import project_axes

            ends = project_axes(fitted, f.image_shape, length_mm=60.0)
            if np.isfinite(ends).all():
                origin = tuple(round(v * 16) for v in ends[0])
                for end, colour in zip(ends[1:], AXES):
                    cv2.line(out, origin, tuple(round(v * 16) for v in end), colour, max(2, width + 1), cv2.LINE_AA,
                             shift)
        if getattr(f, "track_id", None) is not None:
            scale = max(0.4, side / 300)
            cv2.putText(out, f"#{f.track_id}", (round(x0), max(0, round(y0 - 4 * scale))), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, BOX, max(1, width), cv2.LINE_AA)
    return out[..., ::-1].copy() if bgr else out
