"""Reliability, round three (issue 27): an output never destroys an input, an export removes only what an export
wrote, and the atomic writer keeps what it replaces as the user set it. Each test is named after the probe that
broke; each fails on the code before its fix."""

from __future__ import annotations

import json
import os
import shutil
import stat

import cv2
import numpy as np
import pytest

from kdmark.cli import main
from kdmark.errors import OutputError
from kdmark.io import atomic_write_text


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
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    before = clip.read_bytes()
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "clip.mp4", "--draw", "."]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert clip.read_bytes() == before


def test_item1_drawings_elsewhere_still_work(photos, tmp_path):
    out = tmp_path / "drawn"
    assert main(["predict", str(photos), "--draw", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["group.png", "group2.png"]


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
