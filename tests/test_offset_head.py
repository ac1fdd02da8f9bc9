"""The offset head (issue 26 item 5): a coarse heatmap plus per-cell offsets (PIPNet), grown from a heatmap model,
trained, pruned, exported and loaded like every other head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdmark.checkpoint import load_checkpoint
from kdmark.config import ConfigError, TrainConfig, load_config, to_dict
from kdmark.deploy.export import export_onnx
from kdmark.engine.setup import build_data, build_student
from kdmark.engine.tasks import build_task, offset_l1
from kdmark.jobs.train import train
from kdmark.model import load_model
from kdmark.models.landmark_net import codec_for
from kdmark.pruning import prunable_layers, prune_layer, score_layer

TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "batch_size=8", "data.num_workers=0",
        "progress=false", "data.max_samples=24", "data.cache=false"]
OFFSET = ["model.head=offset", "model.heatmap_stride=8", "model.sigma=1.0"]


def _cfg(root, *overrides):
    return load_config(TrainConfig, None, [f"data.root={root}", *TINY, *overrides])


def _student(cfg):
    return build_student(cfg, build_data(cfg, codec_for(to_dict(cfg.model), cfg.data.input_size)))


def test_inputs_need_a_multiple_of_8_and_of_the_heatmap_stride(w300_root):
    assert _cfg(w300_root, *OFFSET, "data.input_size=72").data.input_size == 72
    with pytest.raises(ConfigError, match="multiple of 8"):
        _cfg(w300_root, "data.input_size=100")
    with pytest.raises(ConfigError, match="multiple of model.heatmap_stride"):
        _cfg(w300_root, *OFFSET, "model.heatmap_stride=16", "data.input_size=72")
    with pytest.raises(ConfigError, match="deconv head needs a multiple of 32"):
        _cfg(w300_root, "model.head=deconv", "data.input_size=72")


def test_heatmap_and_offset_heads_run_at_inputs_that_are_not_multiples_of_32(w300_root):
    """At 72 px the backbone's stride-32 map is 3 x 3 (rounded up) and its stride-16 map 5 x 5: the head crops its
    upsampled map to each lateral's size, so the heatmaps have the codec's 9 x 9 (stride 8) or 18 x 18 (stride 4)."""
    for head in (OFFSET, ["model.head=heatmap"]):
        model = _student(_cfg(w300_root, *head, "data.input_size=72")).eval()
        out = model(torch.rand(2, 3, 72, 72))
        assert out["heatmaps"].shape[-1] == model.codec.size
        if "offsets" in out:
            assert out["offsets"].shape == (2, 136, 9, 9)


def test_offset_loss_is_zero_at_its_targets_and_weighted_by_w_offsets(w300_root):
    cfg = _cfg(w300_root, *OFFSET, "data.input_size=64")
    model = _student(cfg)
    data = build_data(cfg, model.codec)
    batch = torch.utils.data.default_collate([data.train[i] for i in range(4)])
    assert offset_l1(batch["offsets"], batch["offsets"], batch["offset_weights"]) == 0
    task = build_task(cfg, model).eval()
    with torch.no_grad():
        out = task(batch)
        assert out["loss_offsets"] > 0
        assert float(out["loss"]) == pytest.approx(float(out["loss_heatmaps"] + out["loss_offsets"]), rel=1e-5)
        task.w_offsets = 0.0
        assert float(task(batch)["loss"]) == pytest.approx(float(out["loss_heatmaps"]), rel=1e-5)


def test_a_pruned_heatmap_model_starts_a_coarser_offset_model(slim_tiny_checkpoint, w300_root, capsys):
    """init_from a pruned stride-4 heatmap model into a stride-8 offset model: the new model takes the old widths
    (also of layers the old spec named through a head stage that the coarser head lacks), every tensor of the
    same name is loaded, and only the offset maps start fresh."""
    model, _ = load_checkpoint(slim_tiny_checkpoint)
    student = _student(_cfg(w300_root, *OFFSET, "data.input_size=64", f"init_from={slim_tiny_checkpoint}"))
    own, theirs = student.state_dict(), model.state_dict()
    shared = [k for k in own if k in theirs]
    assert all(torch.equal(own[k], theirs[k]) for k in shared)
    assert sorted(set(own) - set(theirs)) == ["head.offsets.bias", "head.offsets.weight"]
    assert "left 2 at their initial values" in capsys.readouterr().out
    assert student.head.offsets.in_channels == model.head.out.in_channels  # the pruned head width


def test_an_offset_model_trains_prunes_exports_and_loads(w300_root, tmp_path):
    cfg = _cfg(w300_root, *OFFSET, "data.input_size=72", "epochs=1", "max_steps=2", f"out_dir={tmp_path / 'run'}")
    ckpt = train(cfg).best_checkpoint
    model = load_model(ckpt)
    assert model.card.codec == "offset" and model.card.stride == 8
    crops = np.random.default_rng(0).random((2, 3, 72, 72), dtype=np.float32)
    pts, scores = model.predict(crops)
    assert pts.shape == (2, 68, 2) and np.isfinite(pts).all()
    # ONNX equals PyTorch, decoding included
    result = export_onnx(ckpt, tmp_path / "offset.onnx")
    assert result.max_abs_error < 1e-3
    onnx_pts, _ = load_model(tmp_path / "offset.onnx").predict(crops)
    np.testing.assert_allclose(onnx_pts, pts, atol=1e-3)
    # pruning reaches the offset maps' input (they read the head's features): the pruned net still runs
    net, _ = load_checkpoint(ckpt)
    graph, layers = prunable_layers(net, 72, residual=True)
    for layer in layers:
        prune_layer(graph, layer, 0.5, score_layer(net, graph, layer, "l2", torch.rand(2, 3, 72, 72)))
    assert net.head.offsets.in_channels == net.head.out.in_channels < 16
    assert net(torch.rand(1, 3, 72, 72))["offsets"].shape == (1, 136, 9, 9)


def test_a_card_with_a_bad_offset_radius_is_refused(w300_root, tmp_path):
    from kdmark.card import check_card
    from kdmark.errors import CheckpointError

    card = _student(_cfg(w300_root, *OFFSET, "data.input_size=64")).card
    assert check_card(card, "m.ckpt") is card
    bad = {**card, "codec": {**card["codec"], "radius": 99}}
    with pytest.raises(CheckpointError, match="m.ckpt: damaged model card: codec.radius"):
        check_card(bad, "m.ckpt")
