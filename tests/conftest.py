"""Shared fixtures. Real data lives in ../shared/data (never copied into the repo); tests that need it skip
with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def w300_root(shared_data: Path) -> Path:
    return _need(shared_data / "300w")


@pytest.fixture(scope="session")
def small_300w(w300_root, tmp_path_factory):
    """24 real 300-W faces in 300-W's layout (links to the shared files): kdmark's held-out tenth of them is 3
    faces, so an eval here costs a second, not the 119 faces of the full split."""
    root = tmp_path_factory.mktemp("w300") / "300w"
    (root / "afw").mkdir(parents=True)
    for pts in sorted((w300_root / "afw").glob("*.pts"))[:24]:
        for f in (pts, pts.with_suffix(".jpg")):
            (root / "afw" / f.name).symlink_to(f.resolve())
    return root


@pytest.fixture(scope="session")
def fixtures_root(shared_data: Path) -> Path:
    return _need(shared_data / "fixtures")


@pytest.fixture(scope="session")
def tiny_checkpoint(w300_root, tmp_path_factory) -> Path:
    """A tiny heatmap model (MobileNetV2 x0.5, 64 px) trained for a few epochs on 240 real 300-W faces: it has
    learned enough for comparisons between backends to mean something (about 50% NME), and trains in seconds."""
    from kdmark.config import TrainConfig, load_config
    from kdmark.jobs.train import train

    out = tmp_path_factory.mktemp("tiny")
    cfg = load_config(TrainConfig, None, [
        f"data.root={w300_root}", f"out_dir={out}", "model.backbone=mobilenetv2_050", "model.head_channels=16",
        "data.input_size=64", "batch_size=16", "data.max_samples=240", "data.num_workers=0", "progress=false",
        "epochs=10", "optim.lr=0.004", "augment.rotation=10"])
    return train(cfg).best_checkpoint


@pytest.fixture(scope="session")
def slim_tiny_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """``tiny_checkpoint`` pruned by half everywhere (L2 importance, residual-tied channels and the head's inner
    width too) and saved with its channel spec: the pruned checkpoint that ``init_from`` tests start from."""
    import torch

    from kdmark.checkpoint import load_checkpoint, save_checkpoint
    from kdmark.pruning import channel_spec, prunable_layers, prune_layer, score_layer

    model, _ = load_checkpoint(tiny_checkpoint)
    graph, layers = prunable_layers(model, 64, residual=True)
    x = torch.rand(2, 3, 64, 64)
    for layer in layers:
        prune_layer(graph, layer, 0.5, score_layer(model, graph, layer, "l2", x))
    model.channel_spec = channel_spec(model, layers)
    return save_checkpoint(tmp_path_factory.mktemp("slim") / "slim.ckpt", model.eval())
