"""Issue 18's training settings: "auto" precision and memory format resolve to this hardware's choice and are what
the run records; bf16 mixed precision trains a tiny model as fp32 does; compiled tasks checkpoint like eager ones."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from kdmark.checkpoint import read_checkpoint
from kdmark.config import TrainConfig, load_config
from kdmark.engine.loop import WARMUP_STEPS, _unwrap
from kdmark.engine.setup import cpu_has_native_bf16, resolve_auto
from kdmark.engine.tasks import build_task
from kdmark.jobs.train import train

TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "batch_size=8",
        "data.num_workers=0", "progress=false", "optim.warmup_epochs=0"]


def tiny_cfg(root, out, *extra):
    return load_config(TrainConfig, None, [f"data.root={root}", f"out_dir={out}", *TINY, *extra])


def _rows(out):
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_auto_settings_resolve_and_the_run_records_the_choice(w300_root, tmp_path):
    cfg = tiny_cfg(w300_root, tmp_path / "run", "epochs=1", "data.max_samples=56")
    assert (cfg.precision, cfg.memory_format) == ("auto", "auto")  # the defaults
    want = "bf16-mixed" if cpu_has_native_bf16() and not torch.cuda.is_available() else None
    resolved = resolve_auto(cfg)
    assert resolved.memory_format == "channels_last" and resolved.precision != "auto"
    if want:
        assert resolved.precision == want
    elif not torch.cuda.is_available():
        assert resolved.precision == "32-true"  # no native bf16 on this CPU: emulated bf16 would be slower
    result = train(cfg)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["precision"], saved["memory_format"]) == (resolved.precision, "channels_last")
    ckpt_cfg = read_checkpoint(result.best_checkpoint)["config"]
    assert (ckpt_cfg["precision"], ckpt_cfg["memory_format"]) == (resolved.precision, "channels_last")
    row = _rows(tmp_path / "run")[-1]
    assert float(row["steady_images_per_s"]) > 0 and int(row["step"]) == 7 > WARMUP_STEPS
    # an explicit setting is kept as given
    explicit = resolve_auto(tiny_cfg(w300_root, tmp_path / "x", "precision=32-true", "memory_format=contiguous"))
    assert (explicit.precision, explicit.memory_format) == ("32-true", "contiguous")


def test_bf16_mixed_reduces_the_loss_like_fp32(w300_root, tmp_path):
    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        out = tmp_path / precision
        train(tiny_cfg(w300_root, out, "epochs=4", "data.max_samples=48", f"precision={precision}",
                       "optim.lr=0.004", "augment.enabled=false"))
        losses[precision] = [float(r["train_loss"]) for r in _rows(out)]
        assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == precision
    fp32, bf16 = losses["32-true"], losses["bf16-mixed"]
    assert fp32[-1] < 0.8 * fp32[0] and bf16[-1] < 0.8 * bf16[0]  # both learn
    assert abs(bf16[-1] - fp32[-1]) < 0.25 * fp32[-1]  # and about as well


def test_compiled_task_state_dict_keys_are_the_eager_ones(w300_root, tmp_path):
    from kdmark.config import to_dict
    from kdmark.models.landmark_net import build_model

    cfg = tiny_cfg(w300_root, tmp_path / "c")
    model = build_model(to_dict(cfg.model), num_points=68, input_size=64, scheme="300w")
    task = build_task(cfg, model)
    compiled = torch.compile(task)  # lazy: nothing is compiled until it is called
    assert _unwrap(compiled) is task
    assert list(_unwrap(compiled).state_dict()) == list(task.state_dict())


def test_compile_is_a_setting(w300_root, tmp_path):
    assert tiny_cfg(w300_root, tmp_path, "compile=true").compile is True
    with pytest.raises(Exception, match="compile"):
        tiny_cfg(w300_root, tmp_path, "compile=maybe")
