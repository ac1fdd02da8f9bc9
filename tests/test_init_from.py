"""``init_from`` means the same in every job that trains: the student starts from the checkpoint's weights (train
and distill alike), takes a pruned checkpoint's slimmer channels, and a model of another scheme gives it every
tensor that fits (fine-tuning a 68-point model to 98 or 5 points)."""

from __future__ import annotations

import torch

from kdmark.checkpoint import load_checkpoint
from kdmark.cli import main
from kdmark.config import DistillConfig, TrainConfig, load_config, to_dict
from kdmark.engine.setup import build_data, build_student
from kdmark.models.landmark_net import codec_for

TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "batch_size=8",
        "data.num_workers=0", "progress=false", "data.max_samples=24", "data.cache=false"]


def _student(kind, root, overrides):
    cfg = load_config(kind, None, [f"data.root={root}", *TINY, *overrides])
    return build_student(cfg, build_data(cfg, codec_for(to_dict(cfg.model), cfg.data.input_size)))


def _weights(model):
    return {k: v for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}


def test_distill_starts_from_init_from(tiny_checkpoint, w300_root, tmp_path):
    """With a zero learning rate the distilled student's weights stay exactly the checkpoint's."""
    init, _ = load_checkpoint(tiny_checkpoint)
    assert main(["distill", f"data.root={w300_root}", *TINY, f"init_from={tiny_checkpoint}",
                 f"teachers=[{tiny_checkpoint}]", "kd.w_heatmap=1.0", "epochs=1", "max_steps=1", "optim.lr=0",
                 "optim.weight_decay=0", f"out_dir={tmp_path}"]) == 0
    student, _ = load_checkpoint(tmp_path / "last.ckpt")
    a, b = _weights(init), _weights(student)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_and_distill_build_the_same_student(tiny_checkpoint, w300_root):
    a = _student(TrainConfig, w300_root, [f"init_from={tiny_checkpoint}"])
    b = _student(DistillConfig, w300_root, [f"init_from={tiny_checkpoint}"])
    init, _ = load_checkpoint(tiny_checkpoint)
    for model in (a, b):
        assert all(torch.equal(v, init.state_dict()[k]) for k, v in model.state_dict().items())


def test_init_from_a_pruned_checkpoint_takes_its_channels(slim_tiny_checkpoint, w300_root):
    model, _ = load_checkpoint(slim_tiny_checkpoint)
    model.eval()
    x = torch.rand(2, 3, 64, 64)
    student = _student(TrainConfig, w300_root, [f"init_from={slim_tiny_checkpoint}"]).eval()
    assert student.channel_spec == model.channel_spec
    assert torch.equal(student(x)["heatmaps"], model(x)["heatmaps"])


def test_init_from_another_scheme_loads_every_tensor_that_fits(tiny_checkpoint, fixtures_root, capsys):
    """A 68-point model starts a 98-point (WFLW) one: everything but the heatmap output layer is loaded."""
    wflw = fixtures_root / "mmpose" / "wflw"
    student = _student(TrainConfig, wflw, [f"init_from={tiny_checkpoint}", "data.train_split=null",
                                           f"data.val_root={wflw}"])
    init, _ = load_checkpoint(tiny_checkpoint)
    own = student.state_dict()
    left = [k for k, v in init.state_dict().items() if not torch.equal(own[k], v) if own[k].shape == v.shape]
    assert not left
    assert own["head.out.weight"].shape[0] == 98
    assert "left 2 at their initial values for wflw" in capsys.readouterr().out


def test_init_from_another_architecture_is_refused(tiny_checkpoint, w300_root, tmp_path, capsys):
    assert main(["train", f"data.root={w300_root}", *TINY, "model.head=regression", f"init_from={tiny_checkpoint}",
                 f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "cannot start a mobilenetv2_050 regression one" in err
