"""Face detectors: BlazeFace's anchors, decoding and NMS against hand-computed answers, the vendored ONNX file against
MediaPipe's .tflite, and both detectors on a real multi-face photo."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdmark.cli import main
from kdmark.deploy.detectors import (
    DETECTORS,
    TO_LANDMARK_BOX,
    BlazeFaceDetector,
    DetectorError,
    detector_box,
    landmark_box,
    make_detector,
)
from kdmark.deploy.detectors import blazeface as bf

SHARED = Path(__file__).resolve().parents[2] / "shared"
PHOTO = SHARED / "data" / "photos" / "afw_1130084326.jpg"
TFLITE = SHARED / "weights" / "mediapipe" / "face_detection_short_range.tflite"


def test_anchors_follow_mediapipes_ssd_layout():
    a = bf.anchors()
    assert a.shape == (896, 2)
    # stride 8: a 16 x 16 grid, two anchors per cell, row by row; then stride 16: 8 x 8, six per cell
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16]) and np.allclose(a[32], [0.5 / 16, 1.5 / 16])
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8]) and np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


def test_decode_by_hand():
    reg = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -10.0, np.float32)
    i = 512 + 6 * (8 * 3 + 5)  # stride-16 cell (x=5, y=3): anchor centre (88, 56) in input pixels
    reg[0, i, :4] = [2.0, -4.0, 30.0, 40.0]
    reg[0, i, 4:6] = [-6.0, -5.0]  # first keypoint (right eye) relative to the anchor
    logits[0, i, 0] = 2.0
    boxes, scores, kps = bf.decode(reg, logits, threshold=0.5)
    assert boxes.shape == (1, 4) and np.allclose(boxes[0], [90 - 15, 52 - 20, 90 + 15, 52 + 20])
    assert np.isclose(scores[0], 1 / (1 + np.exp(-2.0))) and np.allclose(kps[0, 0], [82, 51])
    logits[0, i, 0] = 1e6  # clipped to 100 before the sigmoid, as MediaPipe does
    assert np.isfinite(bf.decode(reg, logits, 0.5)[1]).all()


def test_decode_keeps_exactly_the_anchors_at_or_above_the_threshold():
    """decode scores only the logits that can pass (a shortcut for speed, issue 29 item 2): it must keep the same
    anchors as scoring all of them, at the threshold's edge too, and keep all of them at threshold 0."""
    rng = np.random.default_rng(0)
    reg = rng.normal(0, 5, (1, 896, 16)).astype(np.float32)
    logits = rng.normal(0, 3, (1, 896, 1)).astype(np.float32)
    edges = [np.log(t / (1 - t)) for t in (0.7, 1e-6, 1 - 1e-6)]  # logits on the edge of these thresholds
    logits[0, :6, 0] = [0.0, 150.0, *edges, np.nextafter(np.float32(edges[2]), np.float32(0))]  # 0.5's edge; clipped
    for threshold in (0.0, 1e-6, 0.3, 0.5, 0.7, 0.95, 1 - 1e-6, 1.0):
        scores_all = 1 / (1 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100, 100)))
        want = np.flatnonzero(scores_all >= threshold)
        boxes, scores, kps = bf.decode(reg, logits, threshold)
        assert np.array_equal(scores, scores_all[want]) and len(boxes) == len(kps) == len(want), threshold


def test_iou_matrix_is_box_iou_for_every_pair():
    from kdmark.data.transforms import box_iou

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (12, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 30, (12, 2))], axis=1)
    boxes[3] = boxes[4]  # identical boxes
    boxes[5, 2:] = boxes[5, :2]  # an empty one (zero area)
    m = bf._iou_matrix(boxes)
    assert np.array_equal(m, np.stack([box_iou(b, boxes) for b in boxes]))


def test_weighted_nms_averages_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    scores = np.array([0.6, 0.9, 0.7])
    kps = np.zeros((3, 6, 2))
    out = bf.weighted_nms(boxes, scores, kps)
    assert len(out) == 2 and out[0][1] == 0.9 and out[1][1] == 0.7
    assert np.allclose(out[0][0], [(0 * 0.6 + 1 * 0.9) / 1.5, 0, (10 * 0.6 + 11 * 0.9) / 1.5, 10])


def test_tiles_cover_the_photo_and_overlap():
    for w, h in ((2048, 1536), (480, 640), (500, 420)):
        tiles = bf.tile_grid(w, h, 1)
        assert len(tiles) >= 2
        xs = sorted({t[0] for t in tiles})
        side = tiles[0][2]
        assert min(t[0] for t in tiles) <= 0 and max(t[0] for t in tiles) + side >= w - 1e-6
        assert min(t[1] for t in tiles) <= 0 and max(t[1] for t in tiles) + side >= h - 1e-6
        assert all(b - a < side * (1 - bf.TILE_OVERLAP) + 1e-6 for a, b in zip(xs, xs[1:]))
    assert bf.tile_grid(640, 480, 0) == []


@pytest.mark.parametrize("size", [(250, 250), (256, 180), (150, 150), (100, 256), (384, 288), (300, 384)])
def test_small_photos_run_one_pass(size, monkeypatch):
    """Issue "Front doors, round three", item 2: on photos up to TILE_MIN_SIDE the whole-photo pass already finds
    smaller faces than dlib's HOG does, and tiles there made kdmark slower per photo than dlib."""
    assert bf.tile_grid(*size, 1) == []
    net = bf.BlazeFace(tiles=1)
    calls = []
    nothing = (np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)))  # every pass (detect_raw's _pass) finds nothing
    monkeypatch.setattr(net, "_pass", lambda image, m, size: calls.append((m, size)) or nothing)
    net.detect_raw(np.zeros((size[1], size[0], 3), np.uint8))
    assert len(calls) == 1 and calls[0][1] == bf.input_size(*size)
    side = bf.TILE_MIN_SIDE + 1
    net.detect_raw(np.zeros((side, side, 3), np.uint8))
    assert len(calls) == 1 + 1 + 4  # just over the line: the photo and its 2x2 tiles
    assert [c[1] for c in calls[1:]] == [128] * 5


def test_small_photos_run_at_the_small_input():
    """Issue "Front doors, round three", item 2: up to SMALL_MAX_SIDE the whole-photo pass runs at 96 px, where it
    costs 0.63x of the 128-px pass and finds the same faces (BENCHMARKS.md, "Detectors by photo size")."""
    assert bf.SMALL_INPUT % 16 == 0 and bf.SMALL_INPUT < bf.INPUT_SIZE
    assert bf.input_size(160, 120) == bf.input_size(bf.SMALL_MAX_SIDE, 1) == bf.SMALL_INPUT
    assert bf.input_size(100, 80) == bf.input_size(1, bf.TINY_MAX_SIDE) == bf.TINY_INPUT == 64
    assert bf.input_size(bf.TINY_MAX_SIDE + 1, 10) == bf.SMALL_INPUT
    assert bf.input_size(bf.SMALL_MAX_SIDE + 1, 10) == bf.input_size(10, bf.SMALL_MAX_SIDE + 1) == 128
    a = bf.anchors(96)  # 12 x 12 cells with two anchors at stride 8, 6 x 6 with six at stride 16
    assert a.shape == (504, 2) and np.allclose(a[0], [0.5 / 12, 0.5 / 12])
    assert np.allclose(a[288:294], [0.5 / 6, 0.5 / 6]) and np.allclose(a[-1], [5.5 / 6, 5.5 / 6])
    reg = np.zeros((1, 504, 16), np.float32)
    logits = np.full((1, 504, 1), -10.0, np.float32)
    i = 288 + 6 * (6 * 2 + 4)  # stride-16 cell (x=4, y=2) of the 96-px input: anchor centre (72, 40)
    reg[0, i, :4], logits[0, i, 0] = [2.0, -4.0, 30.0, 40.0], 2.0
    boxes, _, _ = bf.decode(reg, logits, 0.5, 96)
    assert np.allclose(boxes[0], [74 - 15, 36 - 20, 74 + 15, 36 + 20])


def test_vendored_onnx_runs_at_any_multiple_of_16():
    net = bf.BlazeFace()
    assert net.session.get_inputs()[0].shape[2:] == ["input_h", "input_w"]
    for size in (96, 128, 160):
        x = np.zeros((1, 3, size, size), np.float32)
        reg, cls = net.session.run(["regressors", "classificators"], {net.input_name: x})
        assert reg.shape == (1, len(bf.anchors(size)), 16) and cls.shape == (1, len(bf.anchors(size)), 1)


@pytest.mark.parametrize("side", [150, 100])
def test_a_small_photo_finds_the_face_the_128_px_pass_finds(side):
    """A 300-W photo shrunk to a 150-px long side (the 96-px pass) or to 100 px (the 64-px pass): the small pass
    finds its face where the 128-px pass does, its box within 10% of the face's size."""
    import cv2

    from kdmark.data.images import load_image

    files = sorted((SHARED / "data" / "300w" / "lfpw" / "trainset").glob("*.png"))[:12]
    if not files:
        pytest.skip("the shared 300-W faces are not here")
    net = bf.BlazeFace()
    for f in files:
        image = load_image(f)
        h, w = image.shape[:2]
        s = side / max(h, w)
        image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        small = net.detect_raw(image)
        h, w = image.shape[:2]
        big = net.run(image, bf.letterbox_matrix(w, h), 128)
        assert len(small) >= 1 and big, f.name
        b = bf.weighted_nms(*(np.array(v) for v in zip(*big)))[0][0]
        assert np.abs(small[0][0] - b).max() < 0.1 * (b[2] - b[0]), f.name


@pytest.mark.parametrize("w, h", [(3000, 300), (300, 3000), (1000, 400)])
def test_panorama_windows_hold_every_face_that_fits_the_height(w, h):
    """Issue "Reliability, round three", item 11: every square no bigger than the shorter side lies wholly inside
    one window square, and the windows' squares are big enough to see such a face at a findable size."""
    short = min(w, h)
    squares = bf.tile_grid(w, h, 1)
    windows = [s for s in squares if s[2] == 2 * short]
    assert len(windows) >= 2
    for start in np.linspace(0, max(w, h) - short, 37):
        x, y = (start, 0) if w >= h else (0, start)
        assert any(x0 - 1e-6 <= x and x + short <= x0 + side + 1e-6 and y0 - 1e-6 <= y and y + short <= y0 + side
                   + 1e-6 for x0, y0, side in windows)


def test_a_face_on_a_tile_border_at_the_photos_edge_is_kept():
    # borders on the photo's own edge are not a cut (no other tile sees past them); inner borders are
    assert bf.inside_tile(np.array([0.5, 0.5, 50, 50]), 0, 0, 100, 300, 100)
    assert not bf.inside_tile(np.array([60, 10, 99.5, 50]), 0, 0, 100, 300, 100)
    assert bf.inside_tile(np.array([210, 10, 299.9, 99.9]), 200, 0, 100, 300, 100)


def _node(tmp_path, start: str, end: str, tail: str) -> list[str]:
    """stdout lines of kdmark.js's code from ``start`` up to ``end``, followed by ``tail``, run in Node."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found")
    source = (Path(bf.__file__).parents[1] / "web" / "kdmark.js").read_text()
    script = tmp_path / "probe.js"
    script.write_text(source[source.index(start):source.index(end)] + tail)
    return subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout.splitlines()


def test_the_web_page_tiles_like_python(tmp_path):
    """kdmark.js's tile grid and border rule, run in Node, give Python's squares on photos of every shape."""
    sizes = [(2048, 1536), (480, 640), (500, 420), (384, 300), (385, 385), (250, 250), (3000, 300), (300, 3000),
             (1000, 400), (1920, 1080)]
    cfg = {"tile_min_side": bf.TILE_MIN_SIDE, "tile_max_aspect": bf.TILE_MAX_ASPECT,
           "tile_overlap": bf.TILE_OVERLAP}
    out = _node(tmp_path, "function starts(", "class Detector {",
                f"\nconst c = {json.dumps(cfg)};\nconsole.log(JSON.stringify({json.dumps(sizes)}.map("
                "([w, h]) => [1, 2].map((k) => tileGrid(w, h, k, c)))));\n"
                "console.log(JSON.stringify([insideTile([0.5, 0.5, 50, 50], 0, 0, 100, 300, 100, 0.02), "
                "insideTile([60, 10, 99.5, 50], 0, 0, 100, 300, 100, 0.02)]));\n")
    js = json.loads(out[0])
    for (w, h), got in zip(sizes, js):
        for k, squares in zip((1, 2), got):
            assert np.allclose(np.array(squares).reshape(-1, 3), np.array(bf.tile_grid(w, h, k)).reshape(-1, 3))
    assert json.loads(out[1]) == [True, False]


def test_the_web_page_picks_the_input_size_and_anchors_like_python(tmp_path):
    """kdmark.js's whole-photo input side and its anchor grids (96 and 128 px), run in Node, are Python's."""
    sizes = [(100, 60), (100, 100), (101, 50), (150, 100), (160, 160), (161, 100), (100, 161), (2048, 1536)]
    cfg = {"small_input": bf.SMALL_INPUT, "small_max_side": bf.SMALL_MAX_SIDE, "tiny_input": bf.TINY_INPUT,
           "tiny_max_side": bf.TINY_MAX_SIDE}
    out = _node(tmp_path, "const DET = 128;", "function iou(",
                f"\nconst c = {json.dumps(cfg)};\nconsole.log(JSON.stringify({{sizes: "
                f"{json.dumps(sizes)}.map(([w, h]) => detInput(w, h, c)), a64: anchors(64), a96: anchors(96), "
                "a128: anchors(128), m: letterboxMatrix(150, 100, 96)}));\n")
    js = json.loads(out[0])
    assert js["sizes"] == [bf.input_size(w, h) for w, h in sizes] and js["sizes"][:3] == [64, 64, 96]
    assert np.allclose(js["a64"], bf.anchors(64))
    assert np.allclose(js["a96"], bf.anchors(96)) and np.allclose(js["a128"], bf.anchors(128))
    assert np.allclose(np.reshape(js["m"], (2, 3)), bf.letterbox_matrix(150, 100, 96))


def test_landmark_box_round_trips():
    for name in DETECTORS:
        raw = np.array([100.0, 50.0, 200.0, 150.0])
        box = landmark_box(raw, name)
        dx, dy, s = TO_LANDMARK_BOX[name]
        assert np.isclose(box[2] - box[0], 100 * s) and np.isclose((box[1] + box[3]) / 2, 100 + dy * 100)
        assert np.allclose(detector_box(box, name), raw)


def test_unknown_detector_is_one_clear_error(capsys):
    with pytest.raises(DetectorError, match="unknown detector 'yolo'"):
        make_detector("yolo")
    with pytest.raises(SystemExit) as exit_:  # the CLI refuses it before reading anything
        main(["predict", "x.jpg", "--detector", "yolo"])
    assert exit_.value.code == 2 and "invalid choice: 'yolo'" in capsys.readouterr().err


def test_vendored_onnx_equals_mediapipes_tflite():
    if not TFLITE.is_file():
        pytest.skip(f"{TFLITE} not found")
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    it = interpreter.Interpreter(model_path=str(TFLITE))
    it.allocate_tensors()
    net = bf.BlazeFace()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    reg, cls = net.session.run(["regressors", "classificators"], {net.input_name: x.transpose(0, 3, 1, 2).copy()})
    want = {d["name"]: it.get_tensor(d["index"]) for d in it.get_output_details()}
    assert np.abs(reg - want["regressors"]).max() < 1e-3 and np.abs(cls - want["classificators"]).max() < 1e-3


@pytest.fixture(scope="module")
def photo():
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} not found")
    from kdmark.data.images import load_image

    return load_image(PHOTO)


def test_both_detectors_find_the_three_faces_where_they_are_annotated(photo):
    from kdmark.data.pts import read_pts
    from kdmark.deploy.detectors import box_iou

    truth = [read_pts(p) for p in sorted(PHOTO.parent.glob(PHOTO.stem + "_*.pts"))]
    truth_boxes = [np.r_[t.min(0), t.max(0)] for t in truth]
    assert len(truth_boxes) == 3
    for name in DETECTORS:
        found = make_detector(name)(photo)
        assert len(found) == 3, name
        for t in truth_boxes:
            assert max(box_iou(d.box, t) for d in found) > 0.5, name
    # the whole photo alone misses the smallest face: the tiles find it
    assert len(BlazeFaceDetector(tiles=0)(photo)) == 2


def test_predict_cli_takes_either_detector(tmp_path, photo):
    for name in DETECTORS:
        out = tmp_path / f"{name}.json"
        assert main(["predict", str(PHOTO), "--detector", name, "--json", str(out)]) == 0
        faces = json.loads(out.read_text())[PHOTO.name]
        assert len(faces) == 3 and all("detector_score" in f for f in faces)
    hi = tmp_path / "hi.json"
    assert main(["predict", str(PHOTO), "--detector-threshold", "0.96", "--json", str(hi)]) == 0
    assert 0 < len(json.loads(hi.read_text())[PHOTO.name]) < 3
