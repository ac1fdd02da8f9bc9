"""The model zoo shipped in the package: every model loads, its files match the sha256 in models.json and its card,
its ONNX file gives its checkpoint's points, the default model is used when none is given, zoo names work where
checkpoint paths do, and nothing is downloaded or rebuilt at run time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import kdmark
from kdmark import zoo
from kdmark.checkpoint import load_checkpoint
from kdmark.cli import main
from kdmark.deploy.export import onnx_session

NAMES = list(zoo._index())


def test_the_zoo_ships_the_three_models():
    assert NAMES == ["kdmark-68-s", "kdmark-68-m", "kdmark-68-teacher"]
    assert zoo.DEFAULT == "kdmark-68-s"


def _package_files() -> dict[str, float]:
    folder = Path(str(zoo._folder()))
    return {str(p): p.stat().st_mtime for p in folder.iterdir()}


@pytest.mark.parametrize("name", NAMES)
def test_zoo_model_loads_and_matches_its_card(name):
    entry = zoo.get(name)
    files = [entry.checkpoint] + [f for f in (entry.onnx, entry.int8) if f is not None]
    for path in files:
        assert path.is_file() and zoo.sha256_of(path) == entry.info["sha256"][path.name]
        assert entry.info["sha256"][path.name] in entry.card.read_text(), f"{path.name}: sha256 not in the card"
    model, payload = load_checkpoint(name)  # the name resolves to the shipped checkpoint
    assert model.card["scheme"] == "300w" and model.card["num_points"] == 68
    assert model.card["input_size"] == entry.info["input_size"]
    card = entry.card.read_text()
    for needle in ("non-commercial", "300-W", "sha256", "NME"):
        assert needle in card, needle


ONNX_FILES = [(n, kind) for n in NAMES for kind in ("onnx", "int8") if getattr(zoo.get(n), kind) is not None]


@pytest.mark.parametrize(("name", "kind"), ONNX_FILES)
def test_zoo_onnx_equals_its_checkpoint(name, kind, w300_root):
    """On real face crops (INT8 is calibrated on faces; on noise its ranges clip)."""
    from kdmark.data import read_dataset
    from kdmark.data.crops import sample_crops

    entry = zoo.get(name)
    model, _ = load_checkpoint(entry.checkpoint)
    faces = read_dataset(w300_root).samples[:8]
    crops = sample_crops(faces, model.card, [f.landmark_box() for f in faces])[0].astype(np.float32)
    x = torch.from_numpy(crops)
    ref = model.predict(x)[0].numpy()
    path = getattr(entry, kind)
    pts = onnx_session(path).run(["points", "scores"], {"image": x.numpy()})[0]
    err = np.abs(pts - ref)
    if kind == "int8":  # INT8: within its quantisation error, in input pixels
        assert path.name.endswith(".int8.onnx") and np.median(err) < 0.5
    else:
        assert np.percentile(err, 99) < 0.02


def test_the_small_student_ships_an_int8_file_under_1_mb():
    """Issue 26 item 6: kdmark-68-s also as INT8 ONNX, at most 1 MB, inside the package."""
    entry = zoo.get("kdmark-68-s")
    assert entry.int8 is not None and entry.int8.stat().st_size <= 1_000_000
    assert entry.info["size_bytes_int8"] == entry.int8.stat().st_size


@pytest.mark.parametrize(("fast", "precision", "want"), [
    (True, "auto", "int8"), (False, "auto", "onnx"), (True, "fp32", "onnx"), (False, "int8", "int8")])
def test_precision_picks_the_shipped_file(monkeypatch, fast, precision, want):
    """auto runs the INT8 file only where this CPU has 8-bit dot-product instructions (where it measured faster)."""
    import kdmark.runtime
    from kdmark.model import shipped_onnx

    monkeypatch.setattr(kdmark.runtime, "int8_is_fast", lambda: fast)
    entry = zoo.get("kdmark-68-s")
    assert shipped_onnx(entry, precision) == getattr(entry, want)
    p = kdmark.Predictor("kdmark-68-s", precision=precision)
    assert p.card.get("precision", "fp32") == ("int8" if want == "int8" else "fp32")


def test_int8_speed_rule_reads_the_cpu_flags():
    from kdmark.runtime import _has_dot_product

    avx2 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma bmi2\n"
    vnni = "flags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni avx512_bf16\n"
    arm = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n"
    assert not _has_dot_product(avx2) and _has_dot_product(vnni) and _has_dot_product(arm)
    assert not _has_dot_product("")


def test_precision_is_checked(tiny_checkpoint, capsys):
    from kdmark.errors import CheckpointError, ConfigError

    with pytest.raises(ConfigError, match="precision must be one of"):
        kdmark.Predictor("kdmark-68-s", precision="int4")
    with pytest.raises(CheckpointError, match="ships no INT8 file"):
        kdmark.Predictor("kdmark-68-teacher", precision="int8")
    with pytest.raises(CheckpointError, match="export one"):
        kdmark.Predictor(tiny_checkpoint, precision="int8")


def test_default_model_is_used_when_none_is_given(tmp_path, capsys):
    before = _package_files()
    p = kdmark.Predictor()
    assert p.card["scheme"] == "300w" and p.size == zoo.get(zoo.DEFAULT).info["input_size"]
    photo = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos" / "afw_1130084326.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    out = tmp_path / "out.json"
    assert main(["predict", str(photo), "--json", str(out)]) == 0
    faces = json.loads(out.read_text())[photo.name]
    assert len(faces) == 3 and all(len(f["landmarks"]) == 68 for f in faces)
    assert _package_files() == before  # nothing exported, downloaded or rebuilt into the package


def test_zoo_names_work_where_checkpoints_do(tmp_path, w300_root, capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in NAMES) and "(default)" in listing
    assert main(["models", "kdmark-68-teacher"]) == 0 and "sha256" in capsys.readouterr().out
    assert main(["models", "kdmark-68-x"]) == 2 and "not a kdmark zoo model" in capsys.readouterr().err
    p = kdmark.Predictor("kdmark-68-m", backend="torch")
    assert p.num_points == 68
    assert main(["distill", f"data.root={w300_root}", "data.max_samples=16", "data.num_workers=0", "progress=false",
                 "model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "batch_size=8",
                 "epochs=1", "max_steps=1", "teachers=[kdmark-68-teacher]", "kd.w_heatmap=1.0",
                 f"out_dir={tmp_path}"]) == 0


def test_zoo_stays_small():
    total = sum(os.path.getsize(p) for p in _package_files())
    assert total < 20e6, f"the zoo is {total / 1e6:.1f} MB"


def test_finetune_from_the_zoo_to_another_scheme_is_one_command(fixtures_root, tmp_path, capsys):
    """Issue 17.4: the documented command starts a 98-point WFLW model from kdmark-68-s (everything but the output
    layer loaded), on the shared fixtures."""
    wflw = fixtures_root / "mmpose" / "wflw"
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "finetune_from_zoo.yaml"
    assert main(["train", str(recipe), f"data.root={wflw}", "data.train_split=null", f"data.val_root={wflw}",
                 "data.num_workers=0", "progress=false", "epochs=1", "max_steps=1", "batch_size=4",
                 f"out_dir={tmp_path}"]) == 0
    assert "init_from=kdmark-68-s (300w): loaded" in capsys.readouterr().out
    model, _ = load_checkpoint(tmp_path / "last.ckpt")
    assert model.card["num_points"] == 98 and model.channel_spec == load_checkpoint("kdmark-68-s")[0].channel_spec


def test_the_readme_zoo_table_is_made_from_models_json():
    """Issue 29 item 7: the README's zoo table is what ``kdmark.zoo.markdown_table()`` makes from models.json (the
    file the cards and ``kdmark models`` read), so a re-packaged model cannot leave the README's numbers stale:
    ``python scripts/zoo_package.py --readme`` rewrites it."""
    from pathlib import Path

    from kdmark import zoo

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index("<!-- zoo table: made from kdmark/zoo/models.json")
    block = text[text.index("\n", start) + 1:text.index("<!-- end of zoo table -->")]
    assert block.rstrip("\n").splitlines() == zoo.markdown_table()
    for m in zoo.models():
        assert f"{m.info['nme']:.2%}" in block and f"`{m.name}`" in block
