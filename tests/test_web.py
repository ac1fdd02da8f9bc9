"""`kdmark export MODEL --web`: the exported page works offline in a real browser (headless Chromium) on a photo and
on a fake-camera video, and its landmarks equal onnxruntime-python's on the same pixels.

Without Chromium or Playwright these browser tests skip here, and fail under CI (KDMARK_REQUIRE_BROWSER=1, set by
.ci/run, which installs Chromium)."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdmark import zoo
from kdmark.cli import main
from kdmark.deploy.detectors import TO_LANDMARK_BOX
from kdmark.deploy.detectors import blazeface as bf
from kdmark.deploy.predict import VIDEO_ONE_EURO, Predictor
from kdmark.deploy.web import export_web
from kdmark.deploy.web.serve import chromium_path, launch_chromium, serve, write_y4m
from kdmark.errors import ExportError

PHOTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "afw_1130084326.jpg"
TOLERANCE_PX = 0.5


def _need_browser():
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright (pip install -e '.[test]')"
    if missing is None and chromium_path() is None:
        missing = "Chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("KDMARK_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests are required here but {missing} is missing")
        pytest.skip(f"no {missing} on this machine")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return export_web("kdmark-68-s", tmp_path_factory.mktemp("web") / "site")


@pytest.fixture(scope="module")
def site_fp32(tmp_path_factory) -> Path:
    return export_web("kdmark-68-s", tmp_path_factory.mktemp("web") / "site-fp32", precision="fp32")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """The multi-face AFW photo as a PNG (lossless, so browser and Python decode the same pixels)."""
    if not PHOTO.is_file():
        pytest.skip(f"{PHOTO} not found")
    out = tmp_path_factory.mktemp("photo") / "three_faces.png"
    Image.open(PHOTO).convert("RGB").resize((1024, 768), Image.BILINEAR).save(out)
    return out


def test_export_writes_a_self_contained_folder(site):
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    assert {"index.html", "kdmark.js", "config.json", "landmarks.onnx", "blazeface.onnx", "NOTICE",
            "LICENSE.mediapipe", "ort/ort.wasm.min.js", "ort/ort-wasm-simd-threaded.js",
            "ort/ort-wasm-simd-threaded.wasm"} <= names
    cfg = json.loads((site / "config.json").read_text())
    # the page decodes with the constants Python uses
    assert cfg["detector"]["to_landmark_box"] == list(TO_LANDMARK_BOX["blazeface"])
    assert tuple(cfg["detector"][k] for k in ("tile_overlap", "tile_edge", "tile_min_side", "tile_max_aspect",
                                              "nms_iou", "small_input", "small_max_side", "tiny_input",
                                              "tiny_max_side")) == (
        bf.TILE_OVERLAP, bf.TILE_EDGE, bf.TILE_MIN_SIDE, bf.TILE_MAX_ASPECT, bf.NMS_IOU, bf.SMALL_INPUT,
        bf.SMALL_MAX_SIDE, bf.TINY_INPUT, bf.TINY_MAX_SIDE)
    assert cfg["one_euro"] == list(VIDEO_ONE_EURO) and cfg["model"]["input_size"] == 120
    # a zoo model that ships an INT8 file gives the page that file (issue 26 item 6: where size matters most)
    assert cfg["model"]["precision"] == "int8"
    assert (site / "landmarks.onnx").read_bytes() == zoo.get("kdmark-68-s").int8.read_bytes()
    html = (site / "index.html").read_text() + (site / "kdmark.js").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN, no external resource


def test_any_exported_model_or_checkpoint_makes_a_page(tiny_checkpoint, tmp_path):
    from kdmark.deploy.export import export_onnx

    from_ckpt = export_web(tiny_checkpoint, tmp_path / "ckpt")
    onnx_file = export_onnx(tiny_checkpoint, tmp_path / "tiny.onnx").path
    from_onnx = export_web(onnx_file, tmp_path / "onnx")
    for site in (from_ckpt, from_onnx):
        cfg = json.loads((site / "config.json").read_text())
        assert cfg["model"]["input_size"] == 64 and (site / "landmarks.onnx").stat().st_size > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_refuses_a_foreign_folder_and_replaces_its_own(site, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="not an earlier kdmark web export"):
        export_web("kdmark-68-s", foreign)
    assert (foreign / "keep.txt").read_text() == "x"
    again = tmp_path / "again"
    assert main(["export", "kdmark-68-s", "--web", str(again)]) == 0
    (again / "index.html").write_text("edited")  # a file the export wrote: replaced by the next export
    export_web("kdmark-68-s", again)
    assert (again / "index.html").read_text() != "edited"
    (again / "notes.txt").write_text("mine")  # a file the user added beside it: never removed (issue 27, item 2)
    with pytest.raises(ExportError, match="did not write.*notes.txt"):
        export_web("kdmark-68-s", again)
    assert (again / "notes.txt").read_text() == "mine" and (again / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_bad_onnxruntime_web_package_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "ort.tgz"
    bad.write_bytes(b"not a tarball")
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "out"), "--ort-web", str(bad)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ort.tgz" in err[0] and "not an onnxruntime-web package" in err[0]
    assert not (tmp_path / "out").exists()


def _open_page(browser, url, requests):
    page = browser.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url + "index.html")
    page.wait_for_function("window.kdmark && ['ready', 'error'].includes(kdmark.state)", timeout=60_000)
    assert page.evaluate("kdmark.state") == "ready", page.evaluate("kdmark.error")
    return page


def _python_faces(png: Path | bytes, precision: str = "int8"):
    """Python's faces from the file the page runs: the zoo's INT8 copy (``export_web`` gives a page the INT8 file
    wherever one ships)."""
    image = np.asarray(Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB"))
    return Predictor("kdmark-68-s", precision=precision).predict(image)


def _assert_equal_faces(page_faces, py_faces, key="landmarks", tolerance=None):
    """The page's faces are Python's: boxes within TOLERANCE_PX, landmarks within ``tolerance`` (one (K,) bound
    per face; default TOLERANCE_PX)."""
    assert len(page_faces) == len(py_faces) >= 1
    for i, (got, want) in enumerate(zip(page_faces, py_faces)):
        assert np.abs(np.array(got["box"]) - want.box).max() < TOLERANCE_PX
        bound = TOLERANCE_PX if tolerance is None else tolerance[i]
        assert np.abs(np.array(got[key]) - want.landmarks).max() < bound


def _int8_tolerance(png) -> list[float]:
    """The INT8 file runs on different INT8 kernels in the browser (onnxruntime-web's WebAssembly) and in Python
    (native onnxruntime): the page must agree with Python's INT8 faces within INT8's own error, i.e. 1.5x the
    largest difference between Python's FP32 and INT8 landmarks of that face (at least TOLERANCE_PX)."""
    fp32, int8 = _python_faces(png, "fp32"), _python_faces(png, "int8")
    return [max(TOLERANCE_PX, 1.5 * float(np.abs(a.landmarks - b.landmarks).max())) for a, b in zip(fp32, int8)]


# The canvas colour under each landmark of the faces drawn last: what a user sees, not what the page computed.
CANVAS_AT_LANDMARKS = """(faces) => {
  const c = document.getElementById('view'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const R = Math.round, inside = ([x, y]) => R(x) >= 0 && R(y) >= 0 && R(x) < c.width && R(y) < c.height;
  const at = ([x, y]) => 4 * (R(y) * c.width + R(x));
  return { width: c.width, height: c.height, shown: c.style.width, colours: faces.flatMap((f) => f.landmarks
    .map((p, j) => [p, f.scores[j]]).filter(([p]) => inside(p))
    .map(([p, s]) => [Array.from(d.slice(at(p), at(p) + 3)), s])) };
}"""


def _assert_dots_drawn(canvas, size):
    """Every landmark inside the frame has a dot under it: green where the model is sure (score >= 0.3), red where
    not (within 8 levels: the dots are anti-aliased)."""
    assert (canvas["width"], canvas["height"]) == size, canvas["width"]
    good = [np.abs(np.subtract(rgb, [0, 200, 0] if score >= 0.3 else [230, 0, 0])).max() <= 8
            for rgb, score in canvas["colours"]]
    assert len(good) >= 68 and np.mean(good) > 0.95, [c for c, g in zip(canvas["colours"], good) if not g]


def _photo_on_page(site, photo, tmp_path, small=None, tiny=None):
    _need_browser()
    from playwright.sync_api import sync_playwright

    requests, extra = [], {}
    with serve(site) as url, sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = _open_page(browser, url, requests)
        page.set_input_files("#file", str(photo))
        page.wait_for_function("kdmark.state === 'photo-done'", timeout=60_000)
        result = page.evaluate("kdmark.photo")
        assert "3 face(s)" in page.inner_text("#status") and " ms" in page.inner_text("#status")
        page.screenshot(path=str(tmp_path / "page.png"))
        extra["canvas"] = page.evaluate(CANVAS_AT_LANDMARKS, result["faces"])
        with page.expect_download() as got:
            page.click("#download")
        extra["download"] = (got.value.suggested_filename, json.loads(Path(got.value.path()).read_text()))
        if small is not None:  # a small photo is shown larger than its own size, its dots drawn on it
            page.set_input_files("#file", str(small))
            page.wait_for_function("kdmark.photo && kdmark.photo.name === 'small.png'", timeout=60_000)
            page.wait_for_function("kdmark.state === 'photo-done'", timeout=60_000)
            extra["small"] = page.evaluate(CANVAS_AT_LANDMARKS, page.evaluate("kdmark.photo.faces"))
        if tiny is not None:  # a photo of at most SMALL_MAX_SIDE px: the detector's 96-px pass
            page.set_input_files("#file", str(tiny))
            page.wait_for_function("kdmark.photo && kdmark.photo.name === 'tiny.png'", timeout=60_000)
            page.wait_for_function("kdmark.state === 'photo-done'", timeout=60_000)
            extra["tiny"] = page.evaluate("kdmark.photo.faces")
        browser.close()
    return result, requests, url, extra


def test_page_finds_the_faces_of_a_photo_like_python_offline(site, photo, tmp_path):
    """The default page runs the zoo's INT8 file: equal to Python's INT8 faces within INT8's own error."""
    small, tiny = tmp_path / "small.png", tmp_path / "tiny.png"
    Image.open(photo).resize((320, 240), Image.BILINEAR).save(small)
    from kdmark.data.pts import read_pts

    face = read_pts(sorted(PHOTO.parent.glob(PHOTO.stem + "_*.pts"))[0])
    (cx, cy), side = (face.min(0) + face.max(0)) / 2, 2.2 * (face.max(0) - face.min(0)).max()
    Image.open(PHOTO).convert("RGB").crop((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)).resize(
        (150, 150), Image.BILINEAR).save(tiny)
    assert bf.input_size(150, 150) == 96
    result, requests, url, extra = _photo_on_page(site, photo, tmp_path, small, tiny)
    _assert_equal_faces(extra["tiny"], _python_faces(tiny, "int8"), tolerance=_int8_tolerance(tiny))
    faces = result["faces"]
    _assert_dots_drawn(extra["canvas"], (1024, 768))
    name, saved = extra["download"]  # the download button saves what `kdmark predict --json` writes
    assert name == "three_faces.json" and list(saved) == ["three_faces.png"] and len(saved["three_faces.png"]) == 3
    for got, face in zip(saved["three_faces.png"], faces):
        assert {"box", "landmarks", "scores", "detector_score"} <= set(got)
        assert np.abs(np.array(got["landmarks"]) - np.array(face["landmarks"])).max() < 1e-3
    assert extra["small"]["shown"] == "480px" and extra["small"]["width"] == 320
    _assert_equal_faces(faces, _python_faces(photo, "int8"), tolerance=_int8_tolerance(photo))
    err = [np.abs(np.array(g["landmarks"]) - w.landmarks) for g, w in zip(faces, _python_faces(photo, "int8"))]
    # most points agree far closer than the worst one: within 0.25 px, or INT8's own median error on this CPU
    # (native onnxruntime's INT8 kernels differ by instruction set: 8-bit dot products or AVX2's 16-bit sums)
    own = np.median(np.concatenate([np.abs(a.landmarks - b.landmarks) for a, b in zip(
        _python_faces(photo, "fp32"), _python_faces(photo, "int8"))]))
    assert np.median(np.concatenate(err)) < max(0.25, 1.5 * own), own
    assert len(faces) == 3
    assert requests and all(r.startswith(url) for r in requests), requests  # nothing outside the folder
    assert (tmp_path / "page.png").stat().st_size > 50_000


def test_an_fp32_page_finds_the_faces_python_finds(site_fp32, photo, tmp_path):
    """``precision="fp32"``: the page runs the FP32 file, equal to Python's FP32 faces within TOLERANCE_PX."""
    result, _, _, _ = _photo_on_page(site_fp32, photo, tmp_path)
    assert json.loads((site_fp32 / "config.json").read_text())["model"]["precision"] == "fp32"
    _assert_equal_faces(result["faces"], _python_faces(photo, "fp32"))


def test_page_tracks_a_fake_camera_like_python(site, photo, tmp_path):
    _need_browser()
    from playwright.sync_api import sync_playwright

    img = np.asarray(Image.open(photo).convert("RGB"))
    frames = [img[120 + 4 * i:600 + 4 * i, 150:790] for i in range(10)]  # 640 x 480, the faces drift up
    video = write_y4m(tmp_path / "camera.y4m", frames)
    requests = []
    with serve(site) as url, sync_playwright() as pw:
        browser = launch_chromium(pw, fake_video=video)
        page = _open_page(browser, url, requests)
        page.click("#camera")
        page.wait_for_function("kdmark.video && kdmark.video.frames >= 8", timeout=60_000)
        assert page.inner_text("#camera") == "Stop the camera"
        page.click("#camera")  # the same button stops it
        page.wait_for_function("kdmark.state === 'video-stopped'", timeout=10_000)
        first = page.evaluate("kdmark.video.first")
        later = page.evaluate("kdmark.video.faces")
        frames = page.evaluate("kdmark.video.frames")
        canvas = page.evaluate(CANVAS_AT_LANDMARKS, later)  # the frame drawn last holds the faces seen last
        page.wait_for_timeout(500)
        assert page.evaluate("kdmark.video.frames") == frames and page.inner_text("#camera") == "Start the camera"
        log = page.evaluate("kdmark.results()")["camera"]
        browser.close()
    _assert_dots_drawn(canvas, (640, 480))  # the camera's frames are drawn (the canvas was 0 x 0 before)
    n = len(first["faces"])  # the two faces inside the 640 x 480 window, followed with one id each
    assert n == 2 and len(log) == frames and all(len(f["faces"]) == n for f in log)
    assert sorted(face["track_id"] for face in log[-1]["faces"]) == [0, 1]
    png = base64.b64decode(first["png"].split(",", 1)[1])
    _assert_equal_faces(first["faces"], _python_faces(png), key="raw_landmarks", tolerance=_int8_tolerance(png))
    # the first frame's smoothed landmarks are its raw ones (the filter starts there); later frames are smoothed
    assert np.allclose(first["faces"][0]["landmarks"], first["faces"][0]["raw_landmarks"])
    assert later and all(len(f["landmarks"]) == 68 and "raw_landmarks" in f for f in later)
    assert all(r.startswith(url) for r in requests), requests


def test_page_opened_as_a_file_says_how_to_serve_it(site):
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        page = browser.new_page()
        page.goto((site / "index.html").resolve().as_uri())
        page.wait_for_function("document.getElementById('status').textContent.includes('must be served')",
                               timeout=10_000)
        assert "python -m kdmark.deploy.web.serve" in page.inner_text("#status")
        browser.close()
