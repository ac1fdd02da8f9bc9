"""The CLI, called in-process through kdmark.cli.main, as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from formats import write_image

from kdmark.cli import main
from kdmark.data.pts import write_pts


def test_data_info_real_300w(w300_root, capsys):
    assert main(["data", "info", str(w300_root)]) == 0
    out = capsys.readouterr().out
    assert "300w format, scheme 300w (68 points), 1220 faces" in out
    assert "train          1213  (afw 337, helen 872, lfpw 4)" in out
    assert "private           7  (indoor 3, outdoor 4)" in out
    assert "problems: none" in out


def test_data_info_lists_each_problem_once(tmp_path, capsys):
    pts = np.random.default_rng(0).uniform(10, 40, (68, 2))
    for name in ("good", "missing", "corrupt", "truncated"):
        write_pts(tmp_path / f"{name}.pts", pts)
    write_image(tmp_path / "good.png")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    write_image(tmp_path / "full.jpg")
    (tmp_path / "truncated.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:300])
    (tmp_path / "full.jpg").unlink()
    (tmp_path / "wrong.pts").write_text("version: 1\nn_points: 5\n{\n" + "1 1\n" * 5 + "}\n")
    report = tmp_path / "report.json"
    assert main(["data", "info", str(tmp_path), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "4 faces" in out and "problems: 4" in out
    lines = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and ": " in ln]
    assert any(ln.endswith("wrong.pts: wrong point count: 5 points, expected 68 (300w)") for ln in lines)
    assert any("missing.jpg: image file is missing" in ln for ln in lines)
    assert any("corrupt.jpg: not a readable image" in ln for ln in lines)
    assert any("truncated.jpg: not a readable image" in ln for ln in lines)
    assert len(json.loads(report.read_text())["problems"]) == 4
    assert main(["data", "info", str(tmp_path), "--strict"]) == 1


def test_box_outside_image_is_reported(tmp_path, capsys):
    (tmp_path / "list_98pt_rect_attr_test.txt").write_text(
        " ".join(["20.0"] * 196) + " 500 500 600 600 0 0 0 0 0 0 a.jpg\n")
    write_image(tmp_path / "a.jpg", 64, 48)
    main(["data", "info", str(tmp_path / "list_98pt_rect_attr_test.txt")])
    assert "face box [500, 500, 600, 600] lies outside the 64x48 image" in capsys.readouterr().out


def test_data_show_writes_png(w300_root, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["data", "show", str(w300_root), "--out", str(out), "--n", "4"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "4 of 1220 faces" in capsys.readouterr().out


def test_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    for args, message in [
        (["data", "info", str(tmp_path / "empty")], "empty folder"),
        (["data", "info", str(tmp_path / "nope")], "no such file or folder"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "kdmark", *args], capture_output=True, text=True)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_data_asm_writes_soft_landmarks_and_modes(w300_root, tmp_path, capsys):
    assert main(["data", "asm", str(w300_root), "--split", "train", "--variance", "0.9", "--out", str(tmp_path)]) == 0
    soft = json.loads((tmp_path / "soft_landmarks.json").read_text())
    assert len(soft) == 1213 and len(next(iter(soft.values()))) == 68
    assert (tmp_path / "modes.png").read_bytes()[:4] == b"\x89PNG"
    assert "modes keep 90% of the shape variance" in capsys.readouterr().out


def test_cli_and_help_import_neither_torch_nor_timm():
    """`kdmark --help`, `--version` and `import kdmark.cli` stay fast: no torch, timm or torchvision (issues 15,
    20.17)."""
    import subprocess
    import sys

    probe = ("import sys\nfrom kdmark.cli import main\n"
             "for args in (['--version'], ['--help'], ['train', '--help'], ['predict', '--help']):\n"
             "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
             "print('HEAVY', sorted(m for m in ('torch', 'timm', 'torchvision', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120).stdout
    assert "HEAVY []" in out, out[-500:]


def test_predict_prints_a_summary_and_json_to_stdout(tiny_checkpoint, shared_data, tmp_path, capsys):
    """Issue 20.14: without --json a per-face summary; --json - writes the JSON to stdout; URLs are refused."""
    import json

    from kdmark.cli import main

    photo = shared_data / "photos" / "afw_1130084326.jpg"
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({photo.name: [[950.0, 240.0, 1130.0, 420.0]]}))
    assert main(["predict", str(tiny_checkpoint), str(photo), "--boxes", str(boxes)]) == 0
    out = capsys.readouterr().out
    assert f"{photo.name}: 1 face" in out and "face 0: box [950, 240, 1130, 420], 68 points" in out
    assert main(["predict", str(tiny_checkpoint), str(photo), "--boxes", str(boxes), "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)[photo.name]) == 1 and "inputs done" in captured.err
    assert main(["predict", str(tiny_checkpoint), "https://example.com/a.jpg", str(photo), "--boxes",
                 str(boxes)]) == 1
    assert "URLs are not fetched" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["predict", "x.jpg", "--batch-size", "0"], ["data", "show", "x", "--n", "0"],
                                  ["data", "synth", "x", "--n", "0"], ["bench", "m.ckpt", "--runs", "0"]])
def test_zero_counts_are_one_line(args, capsys):
    from kdmark.cli import main

    with pytest.raises(SystemExit) as exc:
        code = main(args)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "must be at least 1" in err[-1] and "Traceback" not in "".join(err)  # argparse: usage, then the line


def test_disk_full_and_draw_onto_a_file_are_one_line(tiny_checkpoint, shared_data, tmp_path, monkeypatch, capsys):
    """Issue 20.10: a full disk while writing results, and --draw naming an existing file, are one line each."""
    import errno

    import kdmark.io
    from kdmark.cli import main

    photo = shared_data / "photos" / "afw_1130084326.jpg"
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps({photo.name: [[950.0, 240.0, 1130.0, 420.0]]}))
    a_file = tmp_path / "drawn"
    a_file.write_text("not a folder")
    assert main(["predict", str(tiny_checkpoint), str(photo), "--boxes", str(boxes), "--draw", str(a_file)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("kdmark: error:") and "drawn" in err[0]

    def full(path, writer):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(kdmark.io, "atomic_write", full)  # every atomic writer goes through it
    assert main(["predict", str(tiny_checkpoint), str(photo), "--boxes", str(boxes), "--json",
                 str(tmp_path / "o.json")]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "No space left on device" in err[0] and "o.json" in err[0]
    assert "overwrite=False" in __import__("subprocess").run(
        ["kdmark", "train", "--help"], capture_output=True, text=True).stdout  # train --help lists the settings


@pytest.mark.slow
def test_wheel_runs_outside_the_source_tree():
    """Issue 15: a built wheel (not an editable install) in a fresh virtualenv runs `kdmark --version`, `run --help`,
    `models`, `predict` with the shipped model and detector, and `kdmark run` on a tiny pipeline using a shipped
    recipe, from a folder outside the source tree (scripts/check_wheel.sh; about a minute)."""
    import shutil

    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    res = subprocess.run(["bash", str(root / "scripts" / "check_wheel.sh")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "wheel OK" in res.stdout
