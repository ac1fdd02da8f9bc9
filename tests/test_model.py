"""Issue "Architecture" item 1: one model object under every verb. ``kdmark.load_model`` resolves a zoo name, a
``.ckpt``, an ``.onnx`` file or a LandmarkNet to one ``Model`` whose frozen ``ModelCard`` is checked once, and whose
``predict`` gives the same answer on PyTorch and onnxruntime."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import kdmark
from kdmark import zoo
from kdmark.errors import CheckpointError, ConfigError
from kdmark.model import Model, ModelCard, load_model, model_kind


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).uniform(0, 1, (3, 3, 120, 120)).astype(np.float32)


def test_a_zoo_name_runs_its_shipped_onnx_file_and_its_checkpoint_on_torch(crops):
    onnx = load_model("kdmark-68-s", precision="fp32")
    torch_ = load_model("kdmark-68-s", backend="torch")
    entry = zoo.get("kdmark-68-s")
    assert (onnx.backend, onnx.path, onnx.net) == ("onnx", entry.onnx, None)
    assert torch_.backend == "torch" and torch_.path == entry.checkpoint and torch_.net is not None
    assert onnx.card == torch_.card or onnx.card.to_dict()["model"] == torch_.card.to_dict()["model"]
    for m in (onnx, torch_):
        assert (m.card.scheme, m.card.num_points, m.card.input_size, m.num_points) == ("300w", 68, 120, 68)
        assert m.card.head == "offset" and m.card.codec == "offset" and m.card.stride == 8
    pts_o, sc_o = onnx.predict(crops)
    pts_t, sc_t = torch_.predict(crops)
    assert isinstance(pts_o, np.ndarray) and pts_o.shape == (3, 68, 2) and sc_o.shape == (3, 68)
    assert np.abs(pts_o - pts_t).max() < 1e-3 and np.abs(sc_o - sc_t).max() < 1e-4  # ONNX equals PyTorch
    import torch

    pts_tt, _ = torch_.predict(torch.from_numpy(crops))  # a tensor in gives a tensor out, on either backend
    pts_ot, _ = onnx.predict(torch.from_numpy(crops))
    assert isinstance(pts_tt, torch.Tensor) and isinstance(pts_ot, torch.Tensor)
    assert np.abs(pts_tt.numpy() - pts_ot.numpy()).max() < 1e-3


def test_files_and_nets_load_to_the_same_model(tmp_path, crops):
    entry = zoo.get("kdmark-68-s")
    ckpt, onnx = load_model(entry.checkpoint), load_model(entry.onnx)
    assert ckpt.backend == "torch" and ckpt.payload["card"] == ckpt.card.to_dict()
    assert onnx.backend == "onnx" and onnx.payload == {}
    net = load_model(ckpt.net)
    assert net.backend == "torch" and net.path is None and load_model(net) is net
    exported = load_model(entry.checkpoint, backend="onnx")  # a checkpoint on onnxruntime: exported on the way
    assert exported.backend == "onnx" and exported.path == entry.checkpoint
    assert np.abs(exported.predict(crops)[0] - ckpt.predict(crops)[0]).max() < 1e-3
    shouty = tmp_path / "MODEL.ONNX"  # the suffix in any case
    shouty.write_bytes(entry.onnx.read_bytes())
    assert model_kind(shouty) == "onnx" and load_model(shouty).backend == "onnx"
    assert [model_kind(x) for x in ("kdmark-68-s", "run/best.ckpt", "m.onnx", ckpt)] == [
        "zoo", "checkpoint", "onnx", "net"]


def test_the_card_is_frozen_and_reads_like_the_stored_card():
    card = load_model("kdmark-68-s").card
    assert isinstance(card, ModelCard) and kdmark.ModelCard is ModelCard and kdmark.load_model is load_model
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.input_size = 128
    stored = card.to_dict()
    assert card["input_size"] == card.input_size == stored["input_size"] and set(card) == set(stored)
    card["model"]["backbone"] = "changed"  # reads are copies: the card stays as loaded
    assert card["model"]["backbone"] != "changed" and card.backbone == stored["model"]["backbone"]
    assert card.margin == stored["crop"]["margin"] and card.use_box is False
    assert card.mean == tuple(stored["mean"])
    assert card.provenance["zoo"] == "kdmark-68-s"
    assert card.provenance["recipe"] == zoo.get("kdmark-68-s").info["recipe"]
    own = ModelCard.from_dict(dict(stored, init={"source": "torchvision ImageNet weights"}), "card")
    assert own.provenance == {"init": {"source": "torchvision ImageNet weights"}}  # a card's own: its start
    json.dumps(card.to_dict())  # the stored form is plain JSON


def test_load_model_refuses_with_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        load_model(tmp_path / "missing.onnx")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_model(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="backend torch needs a .ckpt"):
        load_model(zoo.get("kdmark-68-s").onnx, backend="torch")
    with pytest.raises(CheckpointError, match="precision='int8' chooses a zoo model"):
        load_model(zoo.get("kdmark-68-s").checkpoint, precision="int8")
    with pytest.raises(ConfigError, match="backend must be one of"):
        load_model("kdmark-68-s", backend="tensorflow")
    with pytest.raises(ConfigError, match="precision must be one of"):
        load_model("kdmark-68-s", precision="fp16")
    bad = dict(load_model("kdmark-68-s").card.to_dict(), input_size=100000)
    with pytest.raises(CheckpointError, match="damaged model card: input_size"):
        ModelCard.from_dict(bad, "card.json")


def test_predictor_evaluate_and_bench_run_the_loaded_model():
    """The verbs hold the one object: Predictor keeps it, and its card is the ModelCard."""
    p = kdmark.Predictor("kdmark-68-s", precision="fp32")
    assert isinstance(p.model, Model) and p.card is p.model.card and p.size == 120
    assert p.margin == p.card.margin
