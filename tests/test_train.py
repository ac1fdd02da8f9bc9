"""End to end on real faces with tiny models: train writes its files, checkpoints reload to identical outputs,
resume continues exactly, and `kdmark eval` writes all its reports."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from kdmark.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from kdmark.cli import main
from kdmark.config import TrainConfig, load_config
from kdmark.jobs.train import train

TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "batch_size=8",
        "data.max_samples=24", "data.num_workers=0", "progress=false", "optim.warmup_epochs=0"]


def tiny_cfg(root, out, *extra):
    return load_config(TrainConfig, None, [f"data.root={root}", f"out_dir={out}", *TINY, *extra])


@pytest.fixture(scope="module")
def trained(w300_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return train(tiny_cfg(w300_root, out, "epochs=2")), out


def test_train_writes_run_folder(trained):
    result, out = trained
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "best.ckpt", "last.ckpt", "metrics.csv"}
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["epochs"] == 2 and saved["model"]["backbone"] == "mobilenetv2_050"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3 and "val_nme" in rows[0]
    assert 0 < result.metrics["best_val_nme"] < 10


def test_checkpoint_is_self_describing_and_weights_only(trained):
    _, out = trained
    payload = torch.load(out / "best.ckpt", map_location="cpu", weights_only=True)
    assert payload["card"]["scheme"] == "300w" and payload["card"]["input_size"] == 64
    assert payload["card"]["codec"]["kind"] == "heatmap" and payload["config"]["epochs"] == 2
    model, _ = load_checkpoint(out / "best.ckpt")
    x = torch.rand(2, 3, 64, 64)
    again, _ = load_checkpoint(out / "best.ckpt")
    assert torch.equal(model(x)["heatmaps"], again(x)["heatmaps"])


def test_resume_continues_exactly(w300_root, tmp_path):
    full = train(tiny_cfg(w300_root, tmp_path / "full", "epochs=3"))
    steps_per_epoch = read_checkpoint(full.last_checkpoint)["train_state"]["state"]["step"] // 3
    cut = tiny_cfg(w300_root, tmp_path / "cut", "epochs=3", f"max_steps={2 * steps_per_epoch}")
    train(cut)
    state = read_checkpoint(tmp_path / "cut" / "last.ckpt")["train_state"]
    assert state["state"]["epoch"] == 2 and state["state"]["step"] == 2 * steps_per_epoch
    resumed = train(tiny_cfg(w300_root, tmp_path / "cut", "epochs=3", "resume=true"))
    a = read_checkpoint(full.last_checkpoint)["train_state"]
    b = read_checkpoint(resumed.last_checkpoint)["train_state"]
    assert b["state"]["epoch"] == 3 and b["state"]["step"] == a["state"]["step"]
    assert b["scheduler"]["last_epoch"] == a["scheduler"]["last_epoch"]
    for k in a["model"]:
        torch.testing.assert_close(b["model"][k], a["model"][k], rtol=1e-4, atol=1e-5)
    ga, gb = a["optimizer"]["param_groups"][0], b["optimizer"]["param_groups"][0]
    assert ga["lr"] == pytest.approx(gb["lr"])


def test_eval_cli_writes_all_files(trained, shared_data, tmp_path, capsys):
    _, out = trained
    dest = tmp_path / "eval"
    assert main(["eval", str(out / "best.ckpt"), "--data", str(shared_data / "300w" / "300W"),
                 "--out", str(dest)]) == 0
    assert {p.name for p in dest.iterdir()} >= {"metrics.json", "per_image.csv", "ced.png", "worst.png"}
    report = json.loads((dest / "metrics.json").read_text())
    assert report["num_images"] == 7 and report["normaliser"] == "inter_ocular"
    assert set(report["subsets"]) == {"private", "indoor", "outdoor"}
    assert len((dest / "per_image.csv").read_text().splitlines()) == 8
    assert "NME" in capsys.readouterr().out


def test_eval_refuses_another_scheme(trained, fixtures_root, capsys):
    _, out = trained
    assert main(["eval", str(out / "best.ckpt"), "--data", str(fixtures_root / "mmpose" / "wflw")]) == 2
    err = capsys.readouterr().err
    assert "98-point faces" in err and "68-point 300w" in err and err.count("\n") == 1


def test_corrupt_checkpoint_is_one_line(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="bad.ckpt: not a readable kdmark checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a kdmark checkpoint"):
        load_checkpoint(tmp_path / "other.ckpt")


def test_data_show_augment(w300_root, tmp_path):
    out = tmp_path / "aug.png"
    assert main(["data", "show", str(w300_root), "--out", str(out), "--n", "4", "--augment", "",
                 "augment.rotation=45"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_train_cli_unknown_key(capsys):
    assert main(["train", "recipes/300w_mbv2_heatmap.yaml", "epoch=1"]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
