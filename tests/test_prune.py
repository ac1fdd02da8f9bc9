"""Pruning: ratio 0 is a no-op, ratio r removes floor(C r) filters per layer, the reconstruction score equals a
brute-force removal, and a pruned checkpoint reloads (and exports) to identical outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from kdmark.checkpoint import load_checkpoint, save_checkpoint
from kdmark.cli import main
from kdmark.config import ModelConfig, to_dict
from kdmark.deploy.export import export_onnx, onnx_session
from kdmark.models.landmark_net import build_model
from kdmark.pruning import (
    channel_spec,
    count_params,
    prunable_layers,
    prune_layer,
    reconstruction_scores,
    score_layer,
)


def _model(head="heatmap"):
    torch.manual_seed(0)
    return build_model(to_dict(ModelConfig(backbone="mobilenetv2_050", head=head, head_channels=16, hidden=(16,))),
                       5, 64, "celeba").eval()


def _prune_all(model, ratio, importance="l2"):
    graph, layers = prunable_layers(model, 64)
    x = torch.rand(4, 3, 64, 64)
    for layer in reversed(layers):
        prune_layer(graph, layer, ratio, score_layer(model, graph, layer, importance, x))
    model.channel_spec = channel_spec(model, layers)
    return layers


def test_ratio_zero_changes_nothing():
    model, x = _model(), torch.rand(2, 3, 64, 64)
    ref, params = model(x)["heatmaps"], count_params(model)
    _prune_all(model, 0.0)
    assert count_params(model) == params and torch.equal(model(x)["heatmaps"], ref)


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.75])
def test_ratio_removes_the_expected_filters(ratio):
    model = _model()
    _, layers = prunable_layers(model, 64)
    before = {layer.name: layer.channels for layer in layers}
    params = count_params(model)
    _prune_all(model, ratio)
    modules = dict(model.named_modules())
    for name, c in before.items():
        assert modules[name].out_channels == c - min(math.floor(c * ratio), c - 1), name
    assert count_params(model) < params * (1 - ratio / 3)
    out = model(torch.rand(2, 3, 64, 64))
    assert out["heatmaps"].shape == (2, 5, 16, 16)


def test_inverted_residual_prunes_hidden_channels_only():
    model = _model()
    _, layers = prunable_layers(model, 64)
    names = [layer.name for layer in layers]
    assert all("conv_pwl" not in n for n in names)  # residual-tied block outputs are never pruned
    assert sum("conv_dw" in n for n in names) >= 15


def test_reconstruction_score_equals_brute_force():
    """Toy conv1 -> ReLU -> conv2: the score of conv1's filter i is the mean squared change of conv2's output when
    that filter is physically removed (conv1 loses output channel i, conv2 input channel i)."""
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 4, 3, padding=1)
    x = torch.rand(5, 3, 8, 8)
    with torch.no_grad():
        hidden = torch.relu(conv1(x))
        full = conv2(hidden)
        brute = []
        for i in range(6):
            keep = [j for j in range(6) if j != i]
            c1, c2 = nn.Conv2d(3, 5, 3, padding=1), nn.Conv2d(5, 4, 3, padding=1)
            c1.weight.copy_(conv1.weight[keep])
            c1.bias.copy_(conv1.bias[keep])
            c2.weight.copy_(conv2.weight[:, keep])
            c2.bias.copy_(conv2.bias)
            brute.append((c2(torch.relu(c1(x))) - full).pow(2).mean().item())
    scores = reconstruction_scores(conv2, hidden)
    np.testing.assert_allclose(scores.numpy(), brute, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("importance", ["reconstruction", "l1", "taylor"])
def test_every_importance_scores_every_filter(importance):
    model = _model()
    graph, layers = prunable_layers(model, 64)
    layer = layers[-1]
    loss = (lambda m: m.train()(torch.rand(4, 3, 64, 64))["heatmaps"].mean()) if importance == "taylor" else None
    scores = score_layer(model, graph, layer, importance, torch.rand(4, 3, 64, 64), loss)
    assert scores.shape == (layer.channels,) and torch.isfinite(scores).all()


def test_pruned_checkpoint_reloads_identically_and_exports(tmp_path):
    model = _model("joint")
    _prune_all(model, 0.5, "reconstruction")
    path = save_checkpoint(tmp_path / "pruned.ckpt", model)
    again, payload = load_checkpoint(path)
    assert payload["channel_spec"] == model.channel_spec
    x = torch.rand(3, 3, 64, 64)
    a, b = model(x), again(x)
    assert torch.equal(a["heatmaps"], b["heatmaps"]) and torch.equal(a["coords"], b["coords"])
    onnx_path = export_onnx(path, tmp_path / "pruned.onnx").path
    pts, _ = onnx_session(onnx_path).run(["points", "scores"], {"image": x.numpy()})
    np.testing.assert_allclose(pts, again.predict(x)[0].numpy(), atol=0.02)


def test_prune_cli_with_distillation_retraining(tiny_checkpoint, w300_root, tmp_path, capsys):
    assert main(["prune", str(tiny_checkpoint), "ratio=0.5", "epochs_per_layer=0", "finetune_epochs=1",
                 f"out_dir={tmp_path}", f"train.data.root={w300_root}", "train.data.max_samples=24",
                 "train.progress=false"]) == 0
    report = json.loads((tmp_path / "prune_report.json").read_text())
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["size_bytes"] < report["before"]["size_bytes"]
    for key in ("macs", "latency_ms_1t", "val_nme"):
        assert key in report["after"]
    assert "train_loss_kd_pooled_feature" in (tmp_path / "finetune" / "metrics.csv").read_text()
    model, _ = load_checkpoint(tmp_path / "pruned.ckpt")
    assert "val_nme" in capsys.readouterr().out


def test_scope_all_slims_residual_and_head_channels_and_reloads_identically(tmp_path):
    """scope=all: the channels tied by residual additions and the head's inner channels are pruned too (a narrower
    network keeping its trained weights); only the layers emitting heatmaps keep their width."""
    model = _model()
    hidden = {layer.name for layer in prunable_layers(model, 64)[1]}
    graph, layers = prunable_layers(model, 64, residual=True)
    names = {layer.name for layer in layers}
    assert hidden < names and any(n.startswith("head.") for n in names) and "head.out" not in names
    params = count_params(model)
    x = torch.rand(4, 3, 64, 64)
    for layer in layers:
        prune_layer(graph, layer, 0.5, score_layer(model, graph, layer, "l2", x))
    model.channel_spec = channel_spec(model, layers)
    assert count_params(model) < params * 0.4  # about (1 - 0.5)^2 of every pruned conv
    assert model.head.out.out_channels == 5 and model(x)["heatmaps"].shape == (4, 5, 16, 16)
    again, _ = load_checkpoint(save_checkpoint(tmp_path / "slim.ckpt", model))
    assert torch.equal(again(x)["heatmaps"], model(x)["heatmaps"])


# issue 28 item 3: prune's folders are claimed as a training run's are


def test_prune_claims_its_folders_like_a_training_run(small_300w, tmp_path, capsys):
    """A prune locks its folder, refuses to replace an earlier prune (overwrite=true does), and saves its config
    beside itself and beside each retraining run (which claim_run claims like any training run); a zoo
    student pruned again retrains (its adapter is sized from its real, already pruned, features)."""
    out = tmp_path / "p"
    args = ["prune", "kdmark-68-s", "ratio=0.25", "importance=l2", "schedule=global", "finetune_epochs=1",
            "samples=4", f"out_dir={out}", f"train.data.root={small_300w}", "train.data.extra=[]",
            "train.progress=false", "train.max_steps=1"]
    assert main(args) == 0, capsys.readouterr().err
    assert (out / "config.yaml").is_file() and (out / "finetune" / "config.yaml").is_file()  # each run's settings
    first = (out / "pruned.ckpt").read_bytes()
    capsys.readouterr()
    assert main(args) == 2  # a second prune into the same folder is refused, the first one kept
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds an earlier prune" in err[0] and "overwrite=true" in err[0]
    assert (out / "pruned.ckpt").read_bytes() == first
    assert main([*args, "overwrite=true", "finetune_epochs=0"]) == 0


def test_the_report_shows_every_thread_count_measured():
    """Issue "Architecture": prune's report named a 2-thread column, which vanished on a 4- or 16-core machine."""
    from kdmark.jobs.prune import PruneResult, format_report

    before = {"params": 10, "macs": 20, "size_bytes": 30, "latency_ms_1t": 2.0, "latency_ms_16t": 0.5,
              "val_nme": 0.05}
    lines = format_report(PruneResult(None, before, {k: v / 2 for k, v in before.items()}, {}))
    assert [ln.split()[0] for ln in lines[1:]] == ["params", "macs", "size_bytes", "latency_ms_1t", "latency_ms_16t",
                                                  "val_nme"]
