"""The bad-input matrix: every verb that reads data or models turns each bad input into one line that names the
file and the problem, a non-zero exit (or, where the user asked to skip bad samples, a warning), no traceback,
and earlier outputs left as they were."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdmark.cli import main

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", str(ROOT / "recipes" / "300w_mbv2_heatmap.yaml"), "model.backbone=mobilenetv2_050",
         "model.head_channels=16", "data.input_size=64", "batch_size=8", "data.num_workers=0", "progress=false",
         "epochs=1", "data.val_fraction=0.3"]


@pytest.fixture()
def faces(w300_root, tmp_path) -> Path:
    """A folder of 12 real 300-W faces (images and .pts), copied for the test to break."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for pts in sorted((w300_root / "helen" / "trainset").glob("*.pts"))[:12]:
        shutil.copy(pts, folder)
        shutil.copy(pts.with_suffix(".jpg"), folder)
    return folder


def _run(args: list[str], capsys) -> tuple[int, list[str], str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    errors = [ln for ln in captured.err.splitlines() if ln.strip() and "Warning" not in ln and "warn" not in ln]
    return code, errors, captured.out


def _one_error(code: int, errors: list[str], *needles: str, expected_code: int = 2) -> None:
    assert code == expected_code, errors
    assert len(errors) == 1, errors
    assert errors[0].startswith("kdmark: error: ") and "Traceback" not in errors[0]
    for needle in needles:
        assert needle in errors[0], errors[0]


def _big_png_header(path: Path, w: int = 20000, h: int = 20000) -> None:
    """A PNG whose header declares w x h pixels (the pixel data is never needed to refuse it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


BROKEN_IMAGES = {
    "truncated-jpeg": (lambda p: p.write_bytes(p.read_bytes()[:2000]), "not a readable image"),
    "zero-byte": (lambda p: p.write_bytes(b""), "image file is empty (0 bytes)"),
    "huge-20000x20000": (lambda p: _big_png_header(p), "image too large (20000 x 20000 pixels)"),
}


@pytest.mark.parametrize("case", list(BROKEN_IMAGES))
def test_broken_image_in_every_verb(case, faces, tiny_checkpoint, tmp_path, capsys):
    breaker, message = BROKEN_IMAGES[case]
    victim = sorted(faces.glob("*.jpg"))[0]
    breaker(victim)
    code, errors, out = _run(["data", "info", faces, "--strict"], capsys)
    assert code == 1 and f"{victim}: {message}" in out
    code, errors, _ = _run([*TRAIN, f"data.root={faces}", f"out_dir={tmp_path / 'run'}"], capsys)
    _one_error(code, errors, victim.name, message)
    assert not (tmp_path / "run").exists()
    code, errors, out = _run([*TRAIN, f"data.root={faces}", f"out_dir={tmp_path / 'skip'}", "data.skip_bad=true"],
                             capsys)
    assert code == 0 and f"kdmark: skipped {victim}" in out  # asked to skip: a warning, and training goes on
    code, errors, _ = _run(["predict", tiny_checkpoint, victim, sorted(faces.glob("*.jpg"))[1], "--json",
                            tmp_path / "p.json", "--boxes", _boxes(tmp_path, faces)], capsys)
    _one_error(code, errors, victim.name, message, expected_code=1)
    assert len(json.loads((tmp_path / "p.json").read_text())) == 1  # the good image was still processed
    code, errors, _ = _run(["eval", tiny_checkpoint, "--data", faces, "--out", tmp_path / "eval"], capsys)
    _one_error(code, errors, victim.name, message)


def _boxes(tmp_path: Path, faces: Path) -> Path:
    boxes = {p.name: [[20, 20, 200, 200]] for p in faces.glob("*.jpg")}
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(boxes))
    return path


@pytest.mark.parametrize("mode", ["I;16", "L", "RGBA"])
def test_unusual_but_valid_images_just_work(mode, faces, tiny_checkpoint, tmp_path, capsys):
    victim = sorted(faces.glob("*.jpg"))[0]
    img = Image.open(victim).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img).astype(np.uint16) * 257)
    png = victim.with_suffix(".png")
    img.save(png)
    victim.unlink()
    code, _, out = _run(["data", "info", faces, "--strict"], capsys)
    assert code == 0 and "problems: none" in out
    code, errors, _ = _run(["predict", tiny_checkpoint, png, "--boxes", _boxes_for(tmp_path, png), "--json",
                            tmp_path / "p.json"], capsys)
    assert code == 0 and not errors
    assert len(json.loads((tmp_path / "p.json").read_text())[png.name]) == 1


def _boxes_for(tmp_path: Path, image: Path) -> Path:
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({image.name: [[20, 20, 200, 200]]}))
    return path


@pytest.mark.parametrize(
    "points, message",
    [
        (lambda p: p.__setitem__((3, 0), np.nan), "non-finite coordinate at point 3"),
        (lambda p: p.__setitem__((5, 1), np.inf), "non-finite coordinate at point 5"),
        (lambda p: p[:60], "wrong point count: 60 points, expected 68"),
    ],
    ids=["nan", "inf", "wrong-count"],
)
def test_bad_coordinates(points, message, faces, tmp_path, capsys):
    victim = sorted(faces.glob("*.pts"))[0]
    pts = np.loadtxt(victim, skiprows=3, max_rows=68)
    bad = points(pts)
    bad = pts if bad is None else bad
    body = "".join(f"{x} {y}\n" for x, y in bad)
    victim.write_text(f"version: 1\nn_points: {len(bad)}\n{{\n{body}}}\n")
    code, errors, out = _run(["data", "info", faces, "--strict"], capsys)
    assert code == 1 and f"{victim}: {message}" in out
    code, errors, _ = _run([*TRAIN, f"data.root={faces}", f"out_dir={tmp_path / 'run'}"], capsys)
    _one_error(code, errors, victim.name, message)
    code, _, out = _run([*TRAIN, f"data.root={faces}", f"out_dir={tmp_path / 'skip'}", "data.skip_bad=true"], capsys)
    assert code == 0 and f"kdmark: skipped {victim}" in out  # issue 20.8: the skipped face is named
    code, _, out = _run(["data", "show", faces, "--out", tmp_path / "grid.png", "--n", "4"], capsys)
    assert code == 0 and "1 bad faces left out" in out


def test_boxes_outside_or_empty(tmp_path, tiny_checkpoint, capsys):
    from formats import write_image

    write_image(tmp_path / "a.jpg", 64, 48)
    lst = tmp_path / "list_98pt_rect_attr_test.txt"
    lst.write_text(" ".join(["20.0"] * 196) + " 500 500 600 600 0 0 0 0 0 0 a.jpg\n"
                   + " ".join(["21.0"] * 196) + " 10 10 10 30 0 0 0 0 0 0 a.jpg\n")
    code, _, out = _run(["data", "info", lst, "--strict"], capsys)
    assert code == 1
    assert "lies outside the 64x48 image" in out and "has zero or negative size" in out
    (tmp_path / "boxes.json").write_text(json.dumps({"a.jpg": [[10, 10, 10, 30]]}))
    code, errors, _ = _run(["predict", tiny_checkpoint, tmp_path / "a.jpg", "--boxes", tmp_path / "boxes.json"],
                           capsys)
    _one_error(code, errors, "boxes.json", "a.jpg: a box has zero or negative size")


def test_empty_folder_in_every_verb(tmp_path, tiny_checkpoint, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["data", "info", empty], [*TRAIN, f"data.root={empty}", f"out_dir={tmp_path / 'r'}"],
                 ["eval", tiny_checkpoint, "--data", empty]):
        code, errors, _ = _run(args, capsys)
        _one_error(code, errors, str(empty), "empty folder")
    code, errors, _ = _run(["predict", tiny_checkpoint, empty], capsys)
    _one_error(code, errors, str(empty), "no images or videos", expected_code=1)


def test_another_scheme_than_the_model(tiny_checkpoint, fixtures_root, tmp_path, capsys):
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text('{"earlier": true}')
    code, errors, _ = _run(["eval", tiny_checkpoint, "--data", fixtures_root / "mmpose" / "wflw", "--out", eval_dir],
                           capsys)
    _one_error(code, errors, "98-point faces", "68-point 300w")
    assert (eval_dir / "metrics.json").read_text() == '{"earlier": true}'
    # init_from a model of another scheme is fine-tuning, not an error: tests/test_init_from.py


def test_corrupted_checkpoint_and_foreign_onnx(tmp_path, w300_root, tiny_checkpoint, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(Path(tiny_checkpoint).read_bytes()[:5000])
    photo = next((w300_root / "afw").glob("*.jpg"))
    for args in (["eval", bad, "--data", w300_root / "300W"], ["export", bad, "--out", tmp_path / "m.onnx"],
                 ["predict", bad, photo]):
        code, errors, _ = _run(args, capsys)
        _one_error(code, errors, "bad.ckpt", "not a readable kdmark checkpoint (truncated")
    assert not (tmp_path / "m.onnx").exists()
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"\x08\x07" + b"not a model" * 10)
    code, errors, _ = _run(["predict", foreign, photo], capsys)
    _one_error(code, errors, "foreign.onnx", "not a loadable ONNX model")
    resume_dir = tmp_path / "resume"
    resume_dir.mkdir()
    (resume_dir / "last.ckpt").write_bytes(b"garbage")
    code, errors, _ = _run([*TRAIN, f"data.root={w300_root}", "data.max_samples=16", f"out_dir={resume_dir}",
                            "resume=true"], capsys)
    _one_error(code, errors, "last.ckpt", "not a readable kdmark checkpoint")
    assert (resume_dir / "last.ckpt").read_bytes() == b"garbage"  # left as it was, for the user to inspect
