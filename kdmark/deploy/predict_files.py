"""``kdmark predict``: images, folders and videos in; JSON and drawings out. One bad input is one error line,
and the other inputs are still processed (the exit status is 1 when any input failed)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from kdmark.config import PredictConfig
from kdmark.data.images import frame_count, load_image
from kdmark.data.readers._common import UNREAD_IMAGE_SUFFIXES, is_image_file
from kdmark.deploy.predict import Predictor, check_boxes, predict_video
from kdmark.drawing import draw as kdmark_draw
from kdmark.errors import DatasetError
from kdmark.io import atomic_write, atomic_write_json

__all__ = ["predict_files", "model_and_inputs", "camera_index", "drawing_suffix"]

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _expand(inputs: list[str]) -> tuple[list[Path], int]:
    """(the files, folders' contents and cameras to run on; how many inputs were refused: URLs)."""
    files, refused = [], 0
    for item in inputs:
        if "://" in item:
            print(f"kdmark: error: {item}: URLs are not fetched; download the image and pass the file",
                  file=sys.stderr)
            refused += 1
            continue
        p = Path(item)
        if camera_index(p) is not None:
            files.append(p)  # a webcam: 0, 1, ... or /dev/videoN
            continue
        if p.is_dir():
            inside = sorted(f for f in p.rglob("*") if f.is_file())
            found = [f for f in inside if is_image_file(f) or f.suffix.lower() in VIDEO_EXTS]
            unread = [f for f in inside if f.suffix.lower() in UNREAD_IMAGE_SUFFIXES]
            if unread:
                kinds = ", ".join(sorted({f.suffix.lower() for f in unread}))
                print(f"kdmark: note: {p}: {len(unread)} photo(s) skipped ({kinds}: kdmark does not read these; "
                      "convert them to JPEG or PNG)", file=sys.stderr)
            if not found:
                print(f"kdmark: error: {p}: no images or videos in this folder", file=sys.stderr)
            files.extend(found)
        else:
            files.append(p)
    return files, refused


def camera_index(path: Path) -> int | None:
    """The camera a predict input names (``0`` or ``/dev/video0``, when no such file exists), or None."""
    m = re.fullmatch(r"(?:/dev/video)?(\d{1,2})", str(path))
    return int(m.group(1)) if m and not path.exists() else None


def _unique_names(files: list[Path]) -> dict[Path, tuple[str, str]]:
    """(JSON key, drawing's file name) per input, unique across the inputs: the file name, or the path as given when
    two inputs share a name; the drawing is the stem and the drawn format's suffix (:func:`drawing_suffix`), or the
    key and that suffix when two inputs would draw to the same name (photo.gif and photo.png)."""
    from collections import Counter

    names = Counter(f.name for f in files)
    keys = {f: f.name if names[f.name] == 1 else str(f) for f in files}
    drawn = Counter(f.stem + drawing_suffix(f) for f in files)
    out = {}
    for f in files:
        plain = f.stem + drawing_suffix(f)
        name = plain if drawn[plain] == 1 else keys[f] + drawing_suffix(f)
        out[f] = (keys[f], name.replace("/", "__").replace("\\", "__"))
    return out


def _load_boxes(path: str | None) -> dict[str, list]:
    if path is None:
        return {}
    try:
        boxes = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(path, f"not a readable boxes JSON ({err})") from None
    if not isinstance(boxes, dict):
        raise DatasetError(path, "expected a JSON object: image file name -> [[x0, y0, x1, y1], ...]")
    for name, items in boxes.items():
        arr = np.asarray(items, dtype=float) if items else np.zeros((0, 4))
        if arr.ndim != 2 or arr.shape[1] != 4 or not np.isfinite(arr).all():
            raise DatasetError(path, f"{name}: boxes must be a list of [x0, y0, x1, y1] numbers")
        if len(arr) and ((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])).any():
            raise DatasetError(path, f"{name}: a box has zero or negative size")
    return boxes


DRAWN_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # kept; any other image: PNG
DRAWN_VIDEO = (".webm", "VP80")  # VP8 in WebM: every browser plays it, and OpenCV's own FFmpeg writes it


def drawing_suffix(source: Path) -> str:
    """The drawing's format: a video's is WebM; an image keeps its own format where OpenCV writes it (a JPEG stays
    a JPEG), else PNG."""
    if source.suffix.lower() in VIDEO_EXTS or camera_index(source) is not None:
        return DRAWN_VIDEO[0]
    return source.suffix.lower() if source.suffix.lower() in DRAWN_IMAGE_SUFFIXES else ".png"


def _save_image(path: Path, bgr: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(path.suffix, bgr, params)
    if not ok:
        raise DatasetError(path, "OpenCV could not encode the drawing in this format")
    atomic_write(path, lambda f: f.write(buf.tobytes()))


def _image(predictor: Predictor, path: Path, boxes: dict, draw: Path | None) -> list[dict]:
    img = load_image(path)
    frames = frame_count(path)
    if frames > 1:
        print(f"kdmark: note: {path}: {frames} frames (an animation); only the first was read", file=sys.stderr)
    given = boxes.get(str(path), boxes.get(path.name))
    if given is not None:
        given = check_boxes(given, img.shape, where=f"{path}: box")
    faces = predictor.predict(img, given)
    if draw is not None:
        _save_image(draw, kdmark_draw(img, faces, pose=True)[..., ::-1])
    return [f.to_dict() for f in faces]


def _video(predictor: Predictor, path: Path, draw: Path | None, smooth: bool, camera: int | None = None,
           max_frames: int | None = None) -> tuple[list[dict], bool]:
    """(per-frame faces, whether every frame the file announces was read). The drawn video keeps the input's frame
    rate and appears only once complete (an interrupted or failed run leaves an earlier drawn video untouched)."""
    frames, writer = [], None
    final = draw
    partial = final.with_name(f".{final.name}.partial{DRAWN_VIDEO[0]}") if final is not None else None
    stats: dict = {}
    try:
        source = camera if camera is not None else path
        for index, frame, faces in predict_video(predictor, source, smooth=smooth, progress=sys.stderr.isatty(),
                                                 stats=stats, max_frames=max_frames):
            frames.append({"frame": index, "faces": [f.to_dict() for f in faces]})
            if final is not None:
                if writer is None:
                    fps = stats.get("fps") or 25.0
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*DRAWN_VIDEO[1]), fps, (w, h))
                    if not writer.isOpened():
                        raise DatasetError(final, "OpenCV cannot write WebM (VP8) video here")
                writer.write(kdmark_draw(frame, faces, pose=True)[..., ::-1])
        if writer is not None:
            writer.release()
            writer = None
            os.replace(partial, final)
    finally:
        if writer is not None:
            writer.release()
        if partial is not None:
            partial.unlink(missing_ok=True)
    if stats.get("frames_expected") and stats["frames_read"] < stats["frames_expected"]:
        print(f"kdmark: error: {path}: read {stats['frames_read']} of {stats['frames_expected']} frames (a "
              "truncated or damaged file?); the frames read are in the results", file=sys.stderr)
        return frames, False
    return frames, True


def model_and_inputs(inputs: list[str], model: str | None = None) -> tuple[str, list[str]]:
    """``kdmark predict [MODEL] INPUT...``: the first item is the model when it names one (a zoo name, or a .ckpt or
    .onnx file followed by inputs); otherwise every item is an input and the default zoo model runs."""
    from kdmark import zoo

    items = list(inputs)
    if model is not None:
        return model, items
    first = items[0]
    if zoo.is_zoo_name(first) or (len(items) > 1 and Path(first).suffix.lower() in (".ckpt", ".onnx")):
        return first, items[1:]
    return zoo.DEFAULT, items


def predict_files(inputs: list[str], model: str | None = None, boxes: str | None = None, json_out: str | None = None,
                  draw: str | None = None, backend: str = PredictConfig.backend,
                  batch_size: int = PredictConfig.batch_size, smooth: bool = PredictConfig.smooth,
                  max_frames: int = PredictConfig.max_frames, detector: str = PredictConfig.detector,
                  detector_threshold: float | None = None, min_face: float = PredictConfig.min_face,
                  tta: str = PredictConfig.tta, precision: str = PredictConfig.precision) -> int:
    """``kdmark predict``: landmarks for images, folders, videos and cameras (``inputs``, optionally led by a model,
    see :func:`model_and_inputs`); results as JSON (``json_out``, ``-`` for stdout) or a summary, drawings in
    ``draw``. One bad input is one error line; returns the exit status (1 when any input failed)."""
    model, inputs = model_and_inputs(inputs, model)
    if not inputs:
        raise DatasetError(model, "a model, but nothing to run it on: kdmark predict [MODEL] INPUT... (images, "
                                  "folders, videos, or a camera: 0)")
    draw = Path(draw) if draw else None
    files, bad_inputs = _expand(inputs)
    names = _unique_names(files)
    _refuse_outputs_over_inputs(files, inputs, names, model, json_out, draw)
    predictor = Predictor(model, backend=backend, batch_size=batch_size, detector=detector,
                          detector_threshold=detector_threshold, min_face=min_face, tta=tta, precision=precision)
    box_table = _load_boxes(boxes)
    if draw is not None:
        draw.mkdir(parents=True, exist_ok=True)
    results, failed = {}, 0
    for path in tqdm(files, desc="predicting", unit="file", disable=not sys.stderr.isatty(), leave=False):
        key, drawn_name = names[path]
        drawn = draw / drawn_name if draw is not None else None
        try:
            camera = camera_index(path)
            if path.suffix.lower() in VIDEO_EXTS or camera is not None:
                results[key], whole = _video(predictor, path, drawn, smooth, camera,
                                             max_frames if camera is not None else None)
                failed += not whole
            else:
                results[key] = _image(predictor, path, box_table, drawn)
        except DatasetError as err:
            print(f"kdmark: error: {err}", file=sys.stderr)
            failed += 1
    to_stdout = json_out == "-"
    if to_stdout:
        print(json.dumps(results, indent=1))
    elif json_out:
        atomic_write_json(json_out, results, indent=1)
    else:
        for line in _summary(results):
            print(line)
    faces = sum(len(v) for v in results.values() if v and "box" in v[0])
    video_faces = sum(len(f["faces"]) for v in results.values() if v and "frame" in v[0] for f in v)
    frames = sum(len(v) for v in results.values() if v and "frame" in v[0])
    counted = f"{faces} faces in images" + (f", {video_faces} in {frames} video frames" if frames else "")
    print(f"{len(results)} of {len(files) + bad_inputs} inputs done, {counted}"
          + (f"; {failed + bad_inputs} failed" if failed + bad_inputs else "")
          + (f"; wrote {json_out}" if json_out and not to_stdout else ""),
          file=sys.stderr if to_stdout else sys.stdout)
    return 1 if failed or bad_inputs or not files else 0


def _refuse_outputs_over_inputs(files: list[Path], inputs: list[str], names: dict, model: str,
                                json_out: str | None, draw: Path | None) -> None:
    """One error line, before any work, when ``--json`` or a drawing would replace an input (or the model), or
    ``--draw`` lies inside an input folder (drawings would be read as inputs by the next run)."""
    from kdmark.io import refuse_overwriting_inputs

    sources = [f for f in files if camera_index(f) is None] + ([Path(model)] if Path(model).is_file() else [])
    folders = [Path(i) for i in inputs if Path(i).is_dir()]
    refuse_overwriting_inputs({"--json": json_out}, sources)
    if draw is not None:
        drawings = {f"--draw ({f.name})": draw / names[f][1] for f in files}
        refuse_overwriting_inputs({"--draw": draw, **drawings}, sources, folders)
        if json_out and json_out != "-" and Path(json_out).resolve() in {p.resolve() for p in drawings.values()}:
            from kdmark.errors import OutputError

            raise OutputError(f"{json_out}: --json and a drawing would be the same file")


def _summary(results: dict[str, list[dict]]) -> list[str]:
    """A few lines per input when no --json is given: each face's box and its landmarks' mean confidence."""
    lines = []
    for key, items in results.items():
        if items and "frame" in items[0]:
            n = sum(len(f["faces"]) for f in items)
            lines.append(f"{key}: {len(items)} frames, {n} faces in all (--json for the landmarks)")
            continue
        lines.append(f"{key}: {len(items)} face{'s' if len(items) != 1 else ''}")
        for i, face in enumerate(items):
            box = ", ".join(f"{v:.0f}" for v in face["box"])
            score = sum(face["scores"]) / max(len(face["scores"]), 1)
            lines.append(f"  face {i}: box [{box}], {len(face['landmarks'])} points, mean confidence {score:.2f}")
    if results:
        lines.append("(landmarks in image pixels: --json FILE, or --json - for stdout)")
    return lines
