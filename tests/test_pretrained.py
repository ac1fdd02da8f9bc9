"""``model.pretrained=PATH``: a torchvision or timm state dict on disk becomes the backbone's starting weights, and
the loaded model computes exactly what the library that saved the weights computes (random weights; nothing is
downloaded)."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from kdmark.config import ModelConfig, TrainConfig, load_config, to_dict
from kdmark.models.backbones import BackboneError, create_backbone, load_weights_file
from kdmark.models.landmark_net import build_model


def _random_torchvision_mbv2() -> torchvision.models.MobileNetV2:
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a BN mapped to the wrong layer shows
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory):
    net = _random_torchvision_mbv2()
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-test.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_torchvision_mobilenetv2_in_timm_gives_torchvision_outputs(torchvision_file, capsys):
    net, path = torchvision_file
    timm_net = timm.create_model("mobilenetv2_100", pretrained=False).eval()
    info = load_weights_file(timm_net, path, "mobilenetv2_100")
    assert info["layout"] == "order" and info["left_out"] == [] and len(info["sha256"]) == 64
    assert "loaded" in capsys.readouterr().out
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(timm_net(x), net(x), rtol=1e-4, atol=1e-4)


def test_backbone_features_equal_torchvision_stages(torchvision_file):
    net, path = torchvision_file
    backbone = create_backbone("mobilenetv2_100", pretrained=str(path)).eval()
    assert backbone.weights["left_out"][-1].startswith("classifier")  # the ImageNet head is not part of it
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(x)
        ref, y = [], x
        for i, layer in enumerate(net.features):
            y = layer(y)
            if i in (1, 3, 6, 13, 17):  # the last block of each stride 2, 4, 8, 16, 32
                ref.append(y)
    assert len(feats) == len(ref)
    for f, r in zip(feats, ref):
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-4)


def test_timm_file_loads_by_name_and_card_records_it(tmp_path):
    torch.manual_seed(1)
    src = timm.create_model("mobilenetv2_050", pretrained=False)
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": src.state_dict()}, path)  # wrapped, as training scripts often save
    cfg = to_dict(ModelConfig(backbone="mobilenetv2_050", pretrained=str(path), head_channels=16))
    model = build_model(cfg, 5, 64, "celeba")
    assert model.card["init"]["layout"] == "names" and model.card["init"]["file"] == str(path)
    torch.testing.assert_close(model.backbone.body.conv_stem.weight, src.conv_stem.weight)


def test_a_file_that_does_not_fit_is_refused_with_one_line(torchvision_file, tmp_path):
    _, path = torchvision_file
    fit = r"does not fit mobilenetv2_050: tensor conv_stem.weight is \(16, 3, 3, 3\)"
    with pytest.raises(BackboneError, match=fit):
        create_backbone("mobilenetv2_050", pretrained=str(path))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(BackboneError, match="not a readable weights file"):
        create_backbone("mobilenetv2_050", pretrained=str(bad))
    with pytest.raises(BackboneError, match="no such weights file"):
        create_backbone("mobilenetv2_050", pretrained=str(tmp_path / "missing.pth"))


def test_config_takes_a_flag_or_a_path():
    assert load_config(TrainConfig, None, ["model.pretrained=true"]).model.pretrained is True
    assert load_config(TrainConfig, None, ["model.pretrained=w/mbv2.pth"]).model.pretrained == "w/mbv2.pth"
