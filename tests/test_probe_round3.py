"""Reliability, round three (issue 27): an output never destroys an input, an export removes only what an export
wrote, and the atomic writer keeps what it replaces as the user set it. Each test is named after the probe that
broke; each fails on the code before its fix."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat

import cv2
import numpy as np
import pytest

from kdmark.cli import main
from kdmark.errors import OutputError
from kdmark.io import atomic_write_text


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A real kdmark checkpoint without training one: the shipped kdmark-68-s, copied out of the package (these
    tests need a checkpoint to damage, evaluate or export, not a particular model; the session's trained tiny
    model cost this file most of its run time)."""
    from kdmark import zoo

    out = tmp_path_factory.mktemp("shipped") / "kdmark-68-s.ckpt"
    shutil.copy(zoo.get("kdmark-68-s").checkpoint, out)
    return out


@pytest.fixture
def photos(shared_data, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    img = cv2.imread(str(shared_data / "photos" / "afw_1130084326.jpg"))
    img = cv2.resize(img, (img.shape[1] // 4, img.shape[0] // 4))
    cv2.imwrite(str(folder / "group.png"), img)
    cv2.imwrite(str(folder / "group2.jpg"), img)
    return folder


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_item1_draw_into_the_input_folder_is_refused(photos, capsys):
    before = _snapshot(photos)
    assert main(["predict", str(photos), "--draw", str(photos)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inside the input folder" in err[0]
    assert _snapshot(photos) == before  # the .png input is still the photo, and no drawing became an input
    assert main(["predict", str(photos), "--draw", str(photos / "drawn")]) == 2  # a sub-folder is read back too


def test_item1_draw_over_a_video_is_refused(tmp_path, capsys, monkeypatch):
    clip = tmp_path / "clip.webm"  # drawn videos are WebM: this input's drawing would be ./clip.webm
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"VP80"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    before = clip.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "clip.webm", "--draw", "."]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_item1_drawings_elsewhere_still_work(photos, tmp_path):
    out = tmp_path / "drawn"
    assert main(["predict", str(photos), "--draw", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["group.png", "group2.jpg"]


@pytest.mark.parametrize("config", [{"note": "kdmark_web_export"}, {"x": ["kdmark_web_export"]},
                                    {"kdmark_web_export": 1}, "kdmark_web_export_v2"])
def test_item2_export_never_deletes_a_folder_that_merely_mentions_the_marker(tmp_path, config):
    from kdmark.deploy.web import export_web
    from kdmark.errors import ExportError

    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "work.txt").write_text("mine")
    before = _snapshot(folder)
    with pytest.raises(ExportError, match="not an earlier kdmark web export"):
        export_web("kdmark-68-s", folder)
    assert _snapshot(folder) == before


def test_item2_a_manifest_naming_files_outside_removes_nothing_there(tmp_path):
    from kdmark.deploy.web import export_web

    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    site = export_web("kdmark-68-s", tmp_path / "site")
    cfg = json.loads((site / "config.json").read_text())
    cfg["files"].append("../precious.txt")
    (site / "config.json").write_text(json.dumps(cfg))
    export_web("kdmark-68-s", site)
    assert outside.read_text() == "keep" and (site / "index.html").is_file()


def test_item2_a_symlinked_web_folder_is_one_line(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "link")]) == 2
    assert "symlink" in capsys.readouterr().err


def test_item3_json_over_an_input_photo_is_refused(photos, capsys):
    photo = photos / "group2.jpg"
    before = photo.read_bytes()
    assert main(["predict", str(photo), "--json", str(photo)]) == 2
    assert "--json would overwrite the input" in capsys.readouterr().err
    assert photo.read_bytes() == before
    link = photos / "alias.json"
    os.symlink(photo, link)  # by another name
    assert main(["predict", str(photo), "--json", str(link)]) == 2
    assert photo.read_bytes() == before


def test_item3_export_over_its_own_checkpoint_is_refused(tiny_checkpoint, tmp_path, capsys):
    ckpt = tmp_path / "best.ckpt"
    shutil.copy(tiny_checkpoint, ckpt)
    before = ckpt.read_bytes()
    assert main(["export", str(ckpt), "--out", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out would overwrite the input" in err[0]
    assert ckpt.read_bytes() == before


def test_item7_replacing_a_file_keeps_its_mode(tmp_path):
    target = tmp_path / "o.json"
    target.write_text("{}")
    target.chmod(0o600)
    atomic_write_text(target, '{"a": 1}')
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == '{"a": 1}'


def test_item7_a_read_only_file_is_refused(tmp_path):
    target = tmp_path / "o.json"
    target.write_text("keep")
    target.chmod(0o444)
    with pytest.raises(OutputError, match="read-only"):
        atomic_write_text(target, "new")
    assert target.read_text() == "keep"


def test_item7_a_hard_linked_file_is_refused(tmp_path):
    target, twin = tmp_path / "o.json", tmp_path / "twin.json"
    target.write_text("keep")
    os.link(target, twin)
    with pytest.raises(OutputError, match="2 hard links"):
        atomic_write_text(target, "new")
    assert target.read_text() == twin.read_text() == "keep"


def test_item7_predict_json_keeps_the_mode_of_its_output(photos, tmp_path):
    out = tmp_path / "o.json"
    out.write_text("{}")
    out.chmod(0o600)
    assert main(["predict", str(photos / "group2.jpg"), "--json", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "group2.jpg" in json.loads(out.read_text())


# --- item 9: boxes; item 10: what Predictor.predict accepts --------------------------------------------------------


@pytest.fixture(scope="module")
def predictor():
    from kdmark import Predictor

    return Predictor()


@pytest.fixture(scope="module")
def group(shared_data):
    from kdmark.data.images import load_image

    img = load_image(shared_data / "photos" / "afw_1130084326.jpg")
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2))


@pytest.mark.parametrize("box, problem", [
    ([5000, 5000, 5100, 5100], "outside the"),
    ([-300, -300, -100, -100], "outside the"),
    ([0, 0, 1e300, 1e300], "more than 4 times"),
    ([float("nan"), 10, 50, 50], "not finite"),
    ([50, 50, 10, 10], "zero or negative size"),
    (["a", 1, 2, 3], "must be numbers"),
    ([[1, 2, 3]], "not an array of shape"),
])
def test_item9_a_bad_box_is_one_line(predictor, group, box, problem):
    from kdmark.errors import DatasetError

    with pytest.raises(DatasetError, match=problem) as err:
        predictor.predict(group, boxes=[box] if np.ndim(box) == 1 else box)
    assert "\n" not in str(err.value)


def test_item9_a_box_over_the_edge_still_works(predictor, group):
    h, w = group.shape[:2]
    faces = predictor.predict(group, boxes=[[w - 60, h - 60, w + 40, h + 40]])
    assert len(faces) == 1 and np.isfinite(faces[0].landmarks).all()


def test_item9_cli_box_off_the_image_is_one_line(photos, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"group.png": [[5000, 5000, 5100, 5100]]}))
    assert main(["predict", str(photos / "group.png"), "--boxes", str(boxes)]) == 1  # an input failed
    err = capsys.readouterr().err.strip()
    assert "group.png: box 0 [5000, 5000, 5100, 5100]: outside the 512 x 384 image" in err and "\n" not in err


def test_item10_every_unambiguous_array_gives_the_uint8_answer(predictor, group):
    from PIL import Image

    want = predictor.predict(group)
    assert len(want) == 3
    grey = group.mean(axis=2).round().astype(np.uint8)
    grey_faces = len(predictor.predict(np.repeat(grey[:, :, None], 3, axis=2)))
    inputs = {
        "float01": group / 255.0, "float255": group.astype(np.float32), "uint16": group.astype(np.uint16) * 257,
        "int64": group.astype(np.int64), "rgba": np.dstack([group, np.full(group.shape[:2], 255, np.uint8)]),
        "pil": Image.fromarray(group), "bgr": np.ascontiguousarray(group[:, :, ::-1]),
    }
    for name, image in inputs.items():
        got = predictor.predict(image, bgr=name == "bgr")
        assert len(got) == 3, name
        for a, b in zip(got, want):
            assert np.abs(a.landmarks - b.landmarks).max() < 0.01, name
    assert len(predictor.predict(grey)) == grey_faces
    assert len(predictor.predict(grey[:, :, None])) == grey_faces
    ok, png = cv2.imencode(".png", np.ascontiguousarray(group[:, :, ::-1]))
    assert len(predictor.predict(png.tobytes())) == 3


@pytest.mark.parametrize("make, problem", [
    (lambda g: g > 128, "not pixel values"),
    (lambda g: g.transpose(2, 0, 1).copy(), "channels first"),
    (lambda g: np.zeros((0, 0, 3), np.uint8), "empty image"),
    (lambda g: np.full((20, 20, 3), np.nan), "NaN"),
    (lambda g: g.astype(np.int64) * 300, "outside 0..255"),
    (lambda g: g.astype(np.float32) * 3, "neither in"),
    (lambda g: g[:, :, :2], "not an image shape"),
    (lambda g: b"not an image", "not a readable image"),
    (lambda g: [[1, 2], [3, 4]], "expected an RGB image"),
])
def test_item10_ambiguous_input_is_one_line(predictor, group, make, problem):
    from kdmark.errors import DatasetError

    with pytest.raises(DatasetError, match=problem) as err:
        predictor.predict(make(group))
    assert "\n" not in str(err.value)


def test_item10_batch_size_must_be_positive():
    from kdmark import Predictor
    from kdmark.errors import ConfigError

    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            Predictor(batch_size=bad)


def test_predict_many_equals_one_by_one(predictor, group):
    small = cv2.resize(group, (group.shape[1] // 2, group.shape[0] // 2))
    many = predictor.predict_many([group, small, group[:40, :40]])
    assert [len(f) for f in many] == [len(predictor.predict(group)), len(predictor.predict(small)), 0]
    for a, b in zip(many[0], predictor.predict(group)):
        assert np.abs(a.landmarks - b.landmarks).max() < 1e-3 and a.detector_score == b.detector_score


# --- item 13: numbers that are not numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("argv, problem", [
    (["--detector-threshold", "nan"], "must be a finite number"),
    (["--min-face", "nan"], "--min-face: must be a finite number >= 0"),
    (["--min-face", "-3"], "must be a finite number >= 0"),
])
def test_item13_predict_numbers_must_be_finite(photos, capsys, argv, problem):
    with pytest.raises(SystemExit) as code:
        main(["predict", str(photos / "group.png"), *argv])
    assert code.value.code == 2
    assert problem in capsys.readouterr().err


@pytest.mark.parametrize("value, problem", [("nan", "must be a finite number"), ("-1", "must be in (0, 1]"),
                                            ("0", "must be in (0, 1]"), ("1.5", "must be in (0, 1]")])
def test_item13_eval_threshold_must_be_a_fraction(tiny_checkpoint, fixtures_root, capsys, value, problem):
    with pytest.raises(SystemExit) as code:
        main(["eval", str(tiny_checkpoint), "--data", str(fixtures_root), "--threshold", value])
    assert code.value.code == 2
    assert f"--threshold: {problem}" in capsys.readouterr().err


def test_item13_python_detector_threshold_nan_is_refused():
    from kdmark import Predictor
    from kdmark.errors import ConfigError

    with pytest.raises(ConfigError, match="finite"):
        Predictor(detector_threshold=float("nan"))
    with pytest.raises(ConfigError, match="min_face"):
        Predictor(min_face=float("nan"))


def test_item13_rank_that_is_not_a_number_is_one_line(photos, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "abc")
    assert main(["data", "label", str(photos), "--out", str(tmp_path / "L"), "--teachers", "dlib"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "kdmark: error: environment RANK='abc': expected a whole number"


def _labelled(tmp_path, confidence):
    from kdmark.data.pts import write_pts

    root = tmp_path / "L"
    root.mkdir()
    write_pts(root / "a.pts", np.random.default_rng(0).uniform(10, 90, (68, 2)))
    cv2.imwrite(str(root / "a.png"), np.full((100, 100, 3), 128, np.uint8))
    (root / "labels.jsonl").write_text(json.dumps({"faces": [{"pts": "a.pts", "confidence": confidence}]}) + "\n")
    return root


@pytest.mark.parametrize("confidence, problem", [
    ([float("nan")] * 68, "confidences must be numbers in \\[0, 1\\]"),
    (["x"] * 68, "confidences must be numbers in \\[0, 1\\]"),
    ([2.0] * 68, "confidences must be numbers in \\[0, 1\\]"),
])
def test_item13_bad_confidences_name_the_file(tmp_path, confidence, problem):
    from kdmark.data.labels import read_confidences
    from kdmark.errors import DatasetError

    root = _labelled(tmp_path, confidence)
    with pytest.raises(DatasetError, match=problem) as err:
        read_confidences(root)
    assert "labels.jsonl" in str(err.value) and "a.pts" in str(err.value)


def test_item13_wrong_length_confidences_are_refused(tmp_path):
    from kdmark.config import DataConfig, ExtraData
    from kdmark.engine.setup import extra_samples
    from kdmark.errors import DatasetError
    from kdmark.schemes import get_scheme

    root = _labelled(tmp_path, [0.9] * 60)
    with pytest.raises(DatasetError, match="60 confidences in labels\\*.jsonl for a 68-point face"):
        extra_samples(DataConfig(extra=(ExtraData(root=str(root)),)), get_scheme("300w"))


# items 4 and 5: `data label` never mixes two photos under one name, never runs twice into one shard, never reads
# its own output back and never writes among the inputs' own files


def _label(inputs, out, teachers=None):
    from test_teachers import FakeTeacher, fake_detector

    from kdmark.teachers.label import label_images

    teachers = teachers or [FakeTeacher("a", 0.0), FakeTeacher("b", 0.5)]
    return label_images(inputs, teachers, out, weights=[1.0, 1.0], detector=fake_detector, progress=False)


def _photo(path, seed, size=(80, 100)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8))
    return path


def test_item4_two_photos_under_one_name_are_refused(tmp_path):
    from kdmark.errors import DatasetError

    a, b = _photo(tmp_path / "A" / "face.jpg", 0), _photo(tmp_path / "B" / "face.jpg", 1, (120, 90))
    with pytest.raises(DatasetError) as err:
        _label([a, b], tmp_path / "L")
    assert "face.jpg" in str(err.value) and str(b) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "L").exists()
    report = _label([a, a], tmp_path / "L")  # the same photo twice is one photo
    assert report.images == 1


def test_item4_a_resume_with_another_photo_under_a_labelled_name_is_refused(tmp_path):
    from kdmark.errors import DatasetError

    a, b = _photo(tmp_path / "A" / "face.jpg", 0), _photo(tmp_path / "B" / "face.jpg", 1, (120, 90))
    _label([a], tmp_path / "L")
    before = _snapshot(tmp_path / "L")
    with pytest.raises(DatasetError, match="already holds labels of face.jpg from"):
        _label([b], tmp_path / "L")
    assert _snapshot(tmp_path / "L") == before
    assert _label([a], tmp_path / "L").done_before == 1  # the same photo again resumes as before


def test_item5_a_second_labeller_on_the_same_shard_is_refused(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "L"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from kdmark.io import lock_folder\n"
        f"lock_folder({str(out)!r}, '.lock.r0'); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match="another kdmark process \\(pid \\d+\\) is labelling shard 0 of 1"):
            _label([_photo(tmp_path / "in" / "p.jpg", 0)], out)
        assert not list(out.glob("labels*"))
    finally:
        holder.kill()
        holder.wait()
    assert _label([tmp_path / "in"], out).kept == 1  # the lock dies with its process
    assert not (out / ".lock.r0").exists()  # and a finished run removes its own


def test_item5_out_inside_the_input_folder_is_refused(tmp_path, capsys):
    photos = tmp_path / "photos"
    _photo(photos / "p.jpg", 0)
    before = _snapshot(photos)
    with pytest.raises(OutputError, match="inside the input folder"):
        _label([photos], photos / "labels")
    assert main(["data", "label", str(photos), "--out", str(photos / "labels"), "--teachers", "dlib"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "inside the input folder" in err[0]
    assert _snapshot(photos) == before


@pytest.mark.parametrize("where", ["parent", "same"])
def test_item5_out_holding_an_input_is_refused(tmp_path, where):
    photo = _photo(tmp_path / "photos" / "p.jpg", 0)
    (tmp_path / "photos" / "p_1.pts").write_text("the user's own points\n")
    before = _snapshot(tmp_path)
    out = tmp_path if where == "parent" else tmp_path / "photos"
    with pytest.raises(OutputError, match="holds the input"):
        _label([photo if where == "same" else tmp_path / "photos"], out)
    assert _snapshot(tmp_path) == before


# item 6: one eval's outputs appear together or not at all; item 17: what a killed writer left is removed


def _eval(ckpt, data, out, **kw):
    from kdmark.jobs.evaluate import evaluate

    return evaluate(ckpt, data, out_dir=out, progress=False, heldout=0.1, **kw)


def test_item6_a_crash_while_writing_leaves_the_earlier_eval_whole(tiny_checkpoint, small_300w, tmp_path,
                                                                   monkeypatch):
    import kdmark.jobs.evaluate as ev

    out = tmp_path / "ev"
    _eval(tiny_checkpoint, small_300w, out)
    before = _snapshot(out)
    assert set(before) == {"metrics.json", "per_image.csv", "ced.png", "worst.png"}
    assert json.loads(before["metrics.json"])["files"] == ["per_image.csv", "ced.png", "worst.png", "metrics.json"]

    def crash(*a, **k):
        raise KeyboardInterrupt  # a kill half-way through the new set (after per_image.csv was written)

    monkeypatch.setattr(ev, "plot_ced", crash)
    with pytest.raises(KeyboardInterrupt):
        _eval(tiny_checkpoint, small_300w, out, worst=2)
    assert _snapshot(out) == before and not list(out.glob(".*"))  # the earlier set, whole; no staging left


def test_item6_a_kill_inside_the_commit_never_leaves_a_mixed_set(tiny_checkpoint, small_300w, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ev"
    _eval(tiny_checkpoint, small_300w, out)
    (out / "notes.txt").write_text("the user's own")
    proc = subprocess.Popen([sys.executable, "-m", "kdmark", "eval", str(tiny_checkpoint), "--data",
                             str(small_300w), "--heldout", "0.1", "--out", str(out), "--worst", "0"],
                            env={**os.environ, "KDMARK_TEST_SLOW_SAVE": "4"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while (out / "metrics.json").exists() and time.time() < deadline:  # the old marker goes first
            time.sleep(0.05)
        assert not (out / "metrics.json").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "metrics.json").exists()  # no marker vouches for what is there
    assert (out / "notes.txt").read_text() == "the user's own"
    res = _eval(tiny_checkpoint, small_300w, out, worst=0)  # the next run replaces it; its staging is removed
    names = json.loads((out / "metrics.json").read_text())["files"]
    assert names == ["per_image.csv", "ced.png", "metrics.json"] and len(res.files) == 3
    assert not (out / "worst.png").exists()  # the earlier run's file this one does not write is gone
    assert (out / "notes.txt").exists() and not list(out.glob(".*.tmp"))


def test_item6_a_damaged_marker_removes_nothing_it_names(tiny_checkpoint, small_300w, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    (out / "mine.txt").write_text("keep")
    (out / "metrics.json").write_text(json.dumps({"files": ["../precious.txt", "mine.txt/..", "/etc/passwd", 3]}))
    _eval(tiny_checkpoint, small_300w, out)
    assert (tmp_path / "precious.txt").read_text() == (out / "mine.txt").read_text() == "keep"


def test_item17_a_killed_writers_temporaries_are_removed(tiny_checkpoint, small_300w, tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (out / f".metrics.json.{dead}.tmp").mkdir()
    (out / f".metrics.json.{dead}.tmp" / "ced.png").write_bytes(b"half")
    (out / f".ced.png.{dead}.tmp").write_bytes(b"half")
    (out / ".user.tmp").write_text("not kdmark's naming: kept")
    _eval(tiny_checkpoint, small_300w, out)
    assert sorted(p.name for p in out.glob(".*")) == [".user.tmp"]


# item 12: prune takes zoo names, and a zoo checkpoint's training folders that are not here do not break it


def test_item12_prune_takes_a_zoo_name_whose_extra_data_is_elsewhere(small_300w, tmp_path, capsys, monkeypatch):
    from kdmark.checkpoint import read_checkpoint

    saved = read_checkpoint("kdmark-68-s")["config"]["data"]["extra"][0]["root"]  # where it was built
    monkeypatch.chdir(tmp_path)  # a machine where that folder is not
    assert not os.path.exists(saved)
    out = tmp_path / "p"
    code = main(["prune", "kdmark-68-s", "ratio=0.25", "importance=l2", "schedule=global", "finetune_epochs=0",
                 "samples=4", f"out_dir={out}", f"train.data.root={small_300w}", "train.progress=false"])
    said = capsys.readouterr()
    assert code == 0, said.err
    assert f"{saved}, which is not here: retraining without it" in said.out
    from kdmark.checkpoint import load_checkpoint

    model, payload = load_checkpoint(out / "pruned.ckpt")
    assert payload["config"]["data"]["extra"] == [] and model.card["input_size"] == 120


# item 15: a zoo file changed inside the installed package is refused, not run


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    from kdmark import zoo

    folder = tmp_path / "zoo"
    shutil.copytree(zoo._folder(), folder)
    monkeypatch.setattr(zoo, "_folder", lambda: folder)
    zoo._index.cache_clear()
    yield folder
    zoo._index.cache_clear()


def test_item15_a_replaced_zoo_file_is_refused(zoo_copy, capsys):
    from kdmark import Predictor
    from kdmark.errors import CheckpointError

    Predictor("kdmark-68-s")  # the copy is whole
    onnx = zoo_copy / "kdmark-68-s.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the sha256 that zoo model kdmark-68-s ships with"):
        Predictor("kdmark-68-s")
    photo = _photo(zoo_copy.parent / "p.jpg", 0)
    assert main(["predict", "kdmark-68-s", str(photo)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kdmark-68-s.onnx: does not match the sha256" in err[0]
    (zoo_copy / "kdmark-68-m.ckpt").unlink()
    with pytest.raises(CheckpointError, match="missing from the installed package"):
        Predictor("kdmark-68-m")


def test_item17_a_killed_exports_temporaries_are_removed_by_the_next(tiny_checkpoint, tmp_path):
    from kdmark.deploy.export import export_onnx

    dead = 2**22 + 12345  # above the default pid_max: no such process
    left = [tmp_path / f".m.onnx.{dead}.tmp", tmp_path / f".m.onnx-export.{dead}.tmp"]
    for p in left:
        p.write_bytes(b"half")
    (tmp_path / f".other.onnx.{dead}.tmp").write_bytes(b"another output's: kept")
    export_onnx(tiny_checkpoint, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.glob(".*")) == [f".other.onnx.{dead}.tmp"]


def _with_card(tiny_checkpoint, tmp_path, change, name="damaged.ckpt"):
    import torch

    payload = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, tmp_path / name)
    return tmp_path / name


def _set(path: str, value):
    def change(payload):
        *parents, last = path.split(".")
        d = payload
        for k in parents:
            d = d[k]
        if value is _DROP:
            del d[last]
        else:
            d[last] = value
    return change


_DROP = object()


@pytest.mark.parametrize(("change", "problem"), [
    (_set("card", "a string"), "damaged model card: must be a mapping, not str"),
    (_set("card", [1, 2]), "damaged model card: must be a mapping, not list"),
    (_set("card", {}), "damaged model card: scheme is missing"),
    (_set("card.codec.stride", 0), "codec.stride must be a whole number from 1 to 64, not 0"),
    (_set("card.input_size", 100000), "input_size must be a whole number from 16 to 1024, not 100000"),
    (_set("card.num_points", "68"), "num_points must be a whole number"),
    (_set("card.codec.sigma", float("nan")), "codec.sigma must be a number"),
    (_set("card.crop", {"margin": -1}), "crop.margin must be a number from 0 to 2"),
    (_set("card.model", _DROP), "damaged model card: model is missing"),
    (_set("state_dict", _DROP), "without its weights (state_dict missing)"),
])
def test_item14_a_damaged_checkpoint_card_is_one_line(tiny_checkpoint, small_300w, tmp_path, capsys, change,
                                                     problem):
    bad = _with_card(tiny_checkpoint, tmp_path, change)
    from kdmark.checkpoint import load_checkpoint
    from kdmark.errors import CheckpointError

    with pytest.raises(CheckpointError, match=re.escape(problem)):
        load_checkpoint(bad)
    assert main(["eval", str(bad), "--data", str(small_300w), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and problem in err[0], err


@pytest.mark.parametrize(("meta", "problem"), [
    ("{not json", "damaged model card: its kdmark_card metadata is not JSON"),
    ("[]", "damaged model card: must be a mapping, not list"),
    ('"text"', "damaged model card: must be a mapping, not str"),
    (None, "input_size must be a whole number from 16 to 1024, not 100000"),
])
def test_item14_a_damaged_onnx_card_is_one_line(tiny_checkpoint, tmp_path, capsys, meta, problem):
    """A card that asks predict for a 100000-px input is refused before any allocation."""
    import onnx

    from kdmark.deploy.export import export_onnx

    path = export_onnx(tiny_checkpoint, tmp_path / "m.onnx").path
    model = onnx.load(str(path))
    entry = next(p for p in model.metadata_props if p.key == "kdmark_card")
    entry.value = meta if meta is not None else json.dumps(json.loads(entry.value) | {"input_size": 100000})
    onnx.save(model, str(path))
    assert main(["predict", str(path), str(tmp_path / "none.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and problem in err[0], err


@pytest.mark.parametrize("vertical", [False, True])
def test_item11_a_face_that_fills_a_panorama_is_found(w300_root, vertical):
    """A face as high as a 3000 x 300 panorama: letterboxed whole it is 13 px of BlazeFace's input, and the old
    tiles (2000-px squares) made it 19; the 2:1 windows find it, where it is."""
    from kdmark.data.pts import read_pts
    from kdmark.deploy.detectors import BlazeFaceDetector

    det = BlazeFaceDetector(tiles=1)
    image = sorted((w300_root / "helen" / "trainset").glob("*.jpg"))[0]
    img, pts = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB), read_pts(image.with_suffix(".pts")) - 1
    s = 240 / np.ptp(pts[:, 0])
    img, pts = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA), pts * s
    cx, cy = (pts.min(0) + pts.max(0)) / 2
    x0, y0 = int(cx - 150), int(cy - 150)
    crop = img[max(y0, 0):y0 + 300, max(x0, 0):x0 + 300]
    pano = np.full((3000, 300, 3) if vertical else (300, 3000, 3), 110, np.uint8)
    if vertical:  # the face stays upright
        pano[1700:1700 + crop.shape[0], :crop.shape[1]] = crop
        centre = 1700 + cy - max(y0, 0)
    else:
        pano[:crop.shape[0], 1700:1700 + crop.shape[1]] = crop
        centre = 1700 + cx - max(x0, 0)
    faces = det(pano)
    along = [(f.box[1] + f.box[3]) / 2 if vertical else (f.box[0] + f.box[2]) / 2 for f in faces]
    assert len(faces) == 1 and abs(along[0] - centre) < 40, (along, centre)


def _get(url: str, host: str | None = None) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture
def served(tmp_path):
    site, secret = tmp_path / "site", tmp_path / "secret"
    (site / "ort").mkdir(parents=True)
    secret.mkdir()
    (site / "index.html").write_text("<p>page</p>")
    (site / "ort" / "a.js").write_text("//")
    (secret / "key.txt").write_text("private")
    os.symlink(secret / "key.txt", site / "key.txt")
    os.symlink(secret, site / "out")
    (site / "inside.html").symlink_to(site / "index.html")
    return site


def test_item16_the_web_server_follows_no_symlink_out_and_lists_no_folder(served):
    from kdmark.deploy.web.serve import serve

    with serve(served) as url:
        assert _get(url) == 200 and _get(url + "ort/a.js") == 200 and _get(url + "inside.html") == 200
        assert _get(url + "key.txt") == 404 and _get(url + "out/key.txt") == 404
        assert _get(url + "ort/") == 404 and _get(url + "out/") == 404


def test_item16_the_web_server_answers_only_requests_addressed_to_this_machine(served):
    from kdmark.deploy.web.serve import serve

    with serve(served) as url:
        port = url.rstrip("/").rsplit(":", 1)[1]
        assert _get(url, f"localhost:{port}") == 200
        assert _get(url, f"attacker.example:{port}") == 403  # DNS rebinding: the page's origin is not ours
        assert _get(url, "127.0.0.1:1") == 403


def test_item16_a_port_that_is_taken_is_one_line(served, capsys):
    import socket

    from kdmark.deploy.web.serve import main as serve_main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert serve_main([str(served), "--port", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--port" in err, err
    assert serve_main([str(served / "nope"), "--port", "0"]) == 2
    assert "no such folder" in capsys.readouterr().err


def _fake_ort_tgz(path, name="onnxruntime-web", version="9.9.9"):
    import io
    import tarfile

    from kdmark.deploy.web import ORT_FILES

    with tarfile.open(path, "w:gz") as tar:
        for f in ORT_FILES:
            data = json.dumps({"name": name, "version": version}).encode() if f == "package.json" else b"//"
            info = tarfile.TarInfo(f"package/{f}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_item16_an_ort_web_package_that_is_not_the_pinned_one_is_recorded_as_such(tmp_path, capsys):
    tgz = _fake_ort_tgz(tmp_path / "ort.tgz")
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "site"), "--ort-web", str(tgz)]) == 0
    config = json.loads((tmp_path / "site" / "config.json").read_text())
    assert config["ort_web_version"] == "9.9.9" and config["ort_web_verified"] is False
    assert set(config["ort_web_sha256"]) == {"ort.wasm.min.js", "ort-wasm-simd-threaded.js",
                                             "ort-wasm-simd-threaded.wasm", "package.json"}
    assert "9.9.9" in (tmp_path / "site" / "NOTICE").read_text()
    assert "unverified" in capsys.readouterr().err
    other = _fake_ort_tgz(tmp_path / "pad.tgz", name="left-pad")
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "site2"), "--ort-web", str(other)]) == 2
    assert "left-pad" in capsys.readouterr().err and not (tmp_path / "site2").exists()


# The "Small" list: one line each.
def _zip_checkpoint(path, entries):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def test_small_a_malicious_zip_checkpoint_is_called_what_it_is(photos, tmp_path, capsys):
    # a pickle that asks for os.system: refused by weights-only loading, and said so (not "truncated")
    evil = _zip_checkpoint(tmp_path / "evil.ckpt", {
        "archive/data.pkl": b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.",
        "archive/version": b"3\n"})
    junk = _zip_checkpoint(tmp_path / "junk.ckpt", {"archive/data.pkl": b"garbage"})
    for ckpt, says in ((evil, "asks to load os.system, which is code, not weights"),
                       (junk, "a zip archive, but not a whole torch.save checkpoint")):
        assert main(["predict", str(photos / "group.png"), "--model", str(ckpt)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ckpt.name in err[0] and says in err[0] and "truncated" not in err[0], err


def test_small_a_truncated_checkpoint_is_still_called_truncated(photos, tmp_path, capsys):
    from kdmark import zoo

    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(zoo.get("kdmark-68-s").checkpoint.read_bytes()[:4000])
    assert main(["predict", str(photos / "group.png"), "--model", str(cut)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_small_predict_a_model_and_no_inputs_says_why(capsys):
    assert main(["predict", "kdmark-68-s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "kdmark-68-s: a model, but nothing to run it on" in err[0]


def test_small_models_with_an_empty_name_is_refused(capsys):
    assert main(["models", ""]) == 2
    err = capsys.readouterr()
    assert "'': not a kdmark zoo model" in err.err and "kdmark-68-s" not in err.out


def test_small_unreadable_photo_formats_in_a_folder_are_named(photos, capsys):
    from PIL import Image

    (photos / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    first = Image.open(photos / "group2.jpg")
    first.save(photos / "anim.gif", save_all=True, append_images=[first.transpose(Image.FLIP_LEFT_RIGHT)])
    assert main(["predict", str(photos), "--json", str(photos.parent / "out.json")]) == 0
    err = capsys.readouterr().err
    assert "1 photo(s) skipped (.heic" in err
    assert "anim.gif: 2 frames (an animation); only the first was read" in err
    assert "anim.gif" in json.loads((photos.parent / "out.json").read_text())  # GIFs in folders are read
    assert main(["predict", str(photos / "phone.heic")]) == 1
    assert "phone.heic: kdmark does not read .heic photos" in capsys.readouterr().err


def test_small_export_web_int8_is_not_ignored(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "w"), "--int8"]) == 0
    assert json.loads((tmp_path / "w" / "config.json").read_text())["model"]["precision"] == "int8"
    capsys.readouterr()
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "w2"), "--int8", "--precision", "fp32"]) == 2
    assert "--int8: contradicts --precision fp32" in capsys.readouterr().err
    assert main(["export", "kdmark-68-s", "--web", str(tmp_path / "w3"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--out: not used with --web" in capsys.readouterr().err
    assert not (tmp_path / "w2").exists() and not (tmp_path / "w3").exists()


def test_small_bench_vs_a_peer_without_data_is_refused_before_any_work(capsys, monkeypatch):
    import kdmark.deploy.bench as bench

    monkeypatch.setattr(bench, "load_model", lambda *a, **k: pytest.fail("measured before refusing"))
    assert main(["bench", "kdmark-68-s", "--vs", "mediapipe"]) == 2
    assert "--vs: mediapipe needs --data DATASET" in capsys.readouterr().err


def test_small_shard_zero_of_zero_is_named(photos, tmp_path, capsys):
    assert main(["data", "label", str(photos), "--out", str(tmp_path / "L"), "--shard", "0/0"]) == 2
    assert "world size must be at least 1" in capsys.readouterr().err


def test_small_a_closed_pipe_is_no_traceback(monkeypatch):
    import io
    import sys

    class ClosedPipe(io.StringIO):  # ``kdmark models | head -1``: the reader has gone
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["models"]) == 141  # 128 + SIGPIPE, quietly, as Unix tools end


def test_small_torch_warnings_do_not_leak_past_the_one_line(photos, tmp_path, capfd):
    import pickle

    bare = tmp_path / "bare.ckpt"
    bare.write_bytes(pickle.dumps({"a": 1}, protocol=4))  # torch warns about the protocol, then refuses
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    for ckpt, says in ((bare, "a Python pickle, not a torch.save checkpoint"), (empty, "empty (0 bytes)")):
        assert main(["predict", str(photos / "group.png"), "--model", str(ckpt)]) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err

