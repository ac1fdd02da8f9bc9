"""Scale out and survive faults: 2-process DDP (gloo) equals 1 process, kill -9 then resume, non-finite loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdmark.checkpoint import read_checkpoint
from kdmark.config import TrainConfig, load_config
from kdmark.engine.tasks import SupervisedTask
from kdmark.errors import TrainingError
from kdmark.jobs.train import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "300w_mbv2_heatmap.yaml")
TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "data.num_workers=0",
        "progress=false", "accelerator=cpu"]


def _kdmark(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "kdmark", *args], cwd=ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _metrics(out: Path) -> dict:
    return read_checkpoint(out / "last.ckpt")["metrics"]["val"]


def test_two_processes_match_one(w300_root, tmp_path):
    """The same tiny recipe with devices=2 (gloo) and devices=1, global batch 8 in both: validation NME within 5%
    (relative; BatchNorm sees per-process batches of 4 on CPU, where SyncBatchNorm does not exist), and the
    2-process run leaves exactly one set of output files."""
    common = ["train", RECIPE, f"data.root={w300_root}", *TINY, "batch_size=8", "data.max_samples=32", "epochs=2",
              "augment.enabled=false", "strategy=ddp"]
    runs = {}
    for devices in (1, 2):
        out = tmp_path / f"d{devices}"
        proc = _kdmark(*common, f"devices={devices}", f"out_dir={out}")
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-2000:]
        assert log.count("best checkpoint:") == 1, log[-1000:]  # rank 1 prints nothing
        runs[devices] = out
    assert sorted(p.name for p in runs[2].iterdir()) == ["best.ckpt", "config.yaml", "last.ckpt", "metrics.csv"]
    one, two = _metrics(runs[1]), _metrics(runs[2])
    assert one["num_images"] == two["num_images"]
    assert abs(two["nme"] - one["nme"]) / one["nme"] < 0.05, (one["nme"], two["nme"])
    rows = (runs[2] / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # one header, one row per epoch: rank 1 wrote nothing


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before the kill point:\n{proc.stdout.read()[-2000:]}")
        if time.time() - t0 > timeout:
            raise AssertionError("kill point not reached in time")
        time.sleep(0.05)


def test_kill_9_mid_epoch_and_mid_save_then_resume(w300_root, tmp_path):
    args = ["train", RECIPE, f"data.root={w300_root}", *TINY, "batch_size=8", "data.max_samples=64", "epochs=4"]
    reference = tmp_path / "reference"
    proc = _kdmark(*args, f"out_dir={reference}")
    assert proc.wait(timeout=300) == 0

    out = tmp_path / "killed"
    # 1) kill -9 in the middle of epoch 2: after epoch 1's checkpoint, before epoch 2's
    proc = _kdmark(*args, f"out_dir={out}")
    _wait_for(lambda: (out / "metrics.csv").is_file(), proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_checkpoint(out / "last.ckpt")["train_state"]["state"]["epoch"] >= 1

    # 2) resume, and kill -9 while a checkpoint is being written (the save is slowed down to widen the window)
    proc = _kdmark(*args, f"out_dir={out}", "resume=true", env={"KDMARK_TEST_SLOW_SAVE": "3"})
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in out.iterdir()), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for ckpt in out.glob("*.ckpt"):
        read_checkpoint(ckpt)  # every checkpoint on disk is whole: the half-written one is only a temporary file

    # 3) resume to the end: same result as the run that was never interrupted
    proc = _kdmark(*args, f"out_dir={out}", "resume=true")
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-2000:]
    assert "resumed from" in log
    a, b = read_checkpoint(reference / "last.ckpt"), read_checkpoint(out / "last.ckpt")
    assert b["train_state"]["state"]["epoch"] == 4
    assert b["metrics"]["val"]["nme"] == pytest.approx(a["metrics"]["val"]["nme"], rel=1e-4)
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-4, atol=1e-5)


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(w300_root, tmp_path, monkeypatch):
    cfg = load_config(TrainConfig, None, [f"data.root={w300_root}", f"out_dir={tmp_path}", *TINY, "batch_size=8",
                                          "data.max_samples=24", "epochs=3"])
    calls = {"n": 0}
    original = SupervisedTask.supervised

    def poisoned(self, output, batch):
        calls["n"] += 1
        result = original(self, output, batch)
        if calls["n"] > 4:  # after epoch 1 (3 steps) and one more step
            result["loss"] = result["loss"] * float("nan")
        return result

    monkeypatch.setattr(SupervisedTask, "supervised", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss \(nan\) at epoch 2, step 4; the last good checkpoint"):
        train(cfg)
    state = read_checkpoint(tmp_path / "last.ckpt")["train_state"]["state"]
    assert state["epoch"] == 1 and state["step"] == 3
