"""Every head/codec passes one contract: shapes, finite outputs, every parameter gets a gradient; and a fixed
batch can be overfitted."""

from __future__ import annotations

import pytest
import torch

from kdmark.config import ModelConfig, to_dict
from kdmark.engine.tasks import SupervisedTask
from kdmark.losses import CoordLoss, HeatmapLoss
from kdmark.models.backbones import BackboneError, create_backbone
from kdmark.models.landmark_net import build_model

HEADS = ["regression", "heatmap", "deconv", "joint"]
TINY = dict(backbone="mobilenetv2_050", head_channels=16, hidden=(32,))


def tiny_model(head: str, num_points: int = 5, size: int = 64, **kw):
    return build_model(to_dict(ModelConfig(head=head, **(TINY | kw))), num_points, size, "celeba")


@pytest.mark.parametrize("head", HEADS)
def test_head_contract(head):
    torch.manual_seed(0)
    model = tiny_model(head)
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    if head in ("regression", "joint"):
        assert out["coords"].shape == (2, 5, 2) and torch.isfinite(out["coords"]).all()
    if head != "regression":
        assert out["heatmaps"].shape == (2, 5, 16, 16) and torch.isfinite(out["heatmaps"]).all()
    loss = sum(v.float().mean() for k, v in out.items() if k in ("coords", "heatmaps"))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad[:5]}"
    pts, scores = model.predict(x)
    assert pts.shape == (2, 5, 2) and scores.shape == (2, 5)
    assert model.card["scheme"] == "celeba" and model.card["codec"]["kind"] == model.codec.kind


@pytest.mark.parametrize("name", ["mobilenetv2_050", "resnet18", "mobilenetv3_small_050", "efficientnet_b0"])
def test_any_timm_backbone(name):
    bb = create_backbone(name)
    feats = bb(torch.rand(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == bb.channels and bb.strides[-1] == 32


def test_unknown_backbone_is_one_line():
    with pytest.raises(BackboneError, match="unknown timm model 'mobilenetv9'"):
        create_backbone("mobilenetv9")


@pytest.mark.parametrize("head", ["regression", "heatmap"])
def test_overfits_a_fixed_batch(head):
    """150 steps on 4 fixed images drive the point error below half a pixel of a 64 px input (train-mode BN)."""
    torch.manual_seed(0)
    model = tiny_model(head, num_points=5, size=64)
    task = SupervisedTask(model, CoordLoss("l1", scale=64), HeatmapLoss("awing"))
    x = torch.rand(4, 3, 64, 64)
    points = torch.rand(4, 5, 2) * 40 + 12
    targets = [model.codec.encode(p.numpy(), torch.ones(5).numpy()) for p in points]
    batch = {"image": x} | {k: torch.stack([torch.from_numpy(t[k]) for t in targets]) for k in targets[0]}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = task(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred, _ = model.codec.decode(model(x))  # still in train mode: the batch statistics it was fitted with
    err = (pred - points).norm(dim=-1).mean().item()
    assert err < 0.5, f"mean point error after overfitting: {err:.2f} px"


def test_pretrained_without_network_is_one_line(w300_root, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # as on a machine without network
    proc = subprocess.run([sys.executable, "-m", "kdmark", "train", "recipes/300w_mbv2_heatmap.yaml",
                           f"data.root={w300_root}", "model.pretrained=true", "model.backbone=mobilenetv2_050",
                           f"out_dir={tmp_path}"], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(__file__)), timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("kdmark: error")]
    assert len(lines) == 1 and "pretrained weights for mobilenetv2_050 could not be loaded" in lines[0]
    assert "model.pretrained=false" in lines[0] and "Traceback" not in proc.stderr
