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
    files = [entry.checkpoint] + ([entry.onnx] if entry.onnx else [])
    for path in files:
        assert path.is_file() and zoo.sha256_of(path) == entry.info["sha256"][path.name]
        assert entry.info["sha256"][path.name] in entry.card.read_text(), f"{path.name}: sha256 not in the card"
    model, payload = load_checkpoint(name)  # the name resolves to the shipped checkpoint
    assert model.card["scheme"] == "300w" and model.card["num_points"] == 68
    assert model.card["input_size"] == entry.info["input_size"]
    card = entry.card.read_text()
    for needle in ("non-commercial", "300-W", "sha256", "NME"):
        assert needle in card, needle


@pytest.mark.parametrize("name", [n for n in NAMES if zoo.get(n).onnx])
def test_zoo_onnx_equals_its_checkpoint(name, w300_root):
    entry = zoo.get(name)
    model, _ = load_checkpoint(entry.checkpoint)
    size = model.card["input_size"]
    torch.manual_seed(0)
    x = torch.rand(4, 3, size, size)
    ref = model.predict(x)[0].numpy()
    pts = onnx_session(entry.onnx).run(["points", "scores"], {"image": x.numpy()})[0]
    err = np.abs(pts - ref)
    if entry.onnx.name.endswith(".int8.onnx"):  # INT8: within its quantisation error, in input pixels
        assert np.median(err) < 0.5
    else:
        assert np.percentile(err, 99) < 0.02


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
                 "epochs=1", "max_steps=1", "teachers=[kdmark-68-teacher]", "kd.heatmap=1.0",
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
