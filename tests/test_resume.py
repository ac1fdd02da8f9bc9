"""Training that spans restarts and machines: a run continues from a state file anywhere (``resume_from=``) exactly as
an unbroken run, and a resume whose settings changed is refused with one line before the run folder is touched."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_train import TINY
from test_train import tiny_cfg as cfg

from kdmark.checkpoint import read_checkpoint
from kdmark.cli import main
from kdmark.errors import TrainingError
from kdmark.jobs.train import train


@pytest.fixture(scope="module")
def runs(w300_root, tmp_path_factory):
    """An unbroken 3-epoch run, and the same run stopped after 2 epochs."""
    base = tmp_path_factory.mktemp("resume")
    full = train(cfg(w300_root, base / "full", "epochs=3"))
    steps = read_checkpoint(full.last_checkpoint)["train_state"]["state"]["step"] // 3
    train(cfg(w300_root, base / "cut", "epochs=3", f"max_steps={2 * steps}"))
    return base, full


def test_resume_from_a_moved_state_file_continues_exactly(runs, w300_root, tmp_path):
    base, full = runs
    moved = tmp_path / "elsewhere" / "state.ckpt"  # as if committed and checked out on another machine
    moved.parent.mkdir()
    shutil.copy(base / "cut" / "last.ckpt", moved)
    resumed = train(cfg(w300_root, tmp_path / "continued", "epochs=3", f"resume_from={moved}"))
    a = read_checkpoint(full.last_checkpoint)
    b = read_checkpoint(resumed.last_checkpoint)
    assert b["train_state"]["state"]["epoch"] == 3 and b["train_state"]["state"]["step"] == \
        a["train_state"]["state"]["step"]
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "continued" / "best.ckpt").is_file()  # the new folder gets its own best checkpoint
    log = (tmp_path / "continued" / "metrics.csv").read_text().splitlines()
    assert len(log) == 4 and "images_seen" in log[0] and "train_s_total" in log[0]  # the whole curve, 3 epochs


def test_state_file_stores_the_weights_once(runs):
    base, _ = runs
    ts = read_checkpoint(base / "cut" / "last.ckpt")["train_state"]
    assert ts["task_model"] and not any(k.startswith("model.") for k in ts["task"])
    assert ts["faces"][0] > 0 and ts["faces"][1] > 0


@pytest.mark.parametrize("change, named", [("optim.lr=0.5", "optim.lr"), ("data.input_size=96", "data.input_size"),
                                           ("model.backbone=mobilenetv2_100", "model.backbone")])
def test_resume_with_changed_settings_is_refused_before_anything_is_written(runs, w300_root, tmp_path, change,
                                                                            named):
    base, _ = runs
    run = tmp_path / "run"
    shutil.copytree(base / "cut", run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(TrainingError, match=named) as err:
        train(cfg(w300_root, run, "epochs=3", "resume=true", change))
    assert "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == \
        {k: v for k, v in before.items() if k != ".lock"}  # config.yaml still says what the run was


def test_cli_refusal_is_one_line(runs, w300_root, tmp_path, capsys):
    base, _ = runs
    code = main(["train", f"data.root={w300_root}", f"out_dir={tmp_path / 'x'}", *TINY, "epochs=3",
                 f"resume_from={base / 'cut' / 'last.ckpt'}", "optim.lr=0.5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "optim.lr" in err[0] and "last.ckpt" in err[0]


def test_extended_schedule_may_change_epochs(runs, w300_root, tmp_path):
    base, full = runs
    shutil.copy(full.last_checkpoint, tmp_path / "done.ckpt")
    more = train(cfg(w300_root, tmp_path / "more", "epochs=4", f"resume_from={tmp_path / 'done.ckpt'}"))
    ts = read_checkpoint(more.last_checkpoint)["train_state"]
    assert ts["state"]["epoch"] == 4 and len(ts["log"]) == 4


def test_a_checkpoint_without_training_state_is_refused(runs, w300_root, tmp_path):
    base, full = runs
    bare = tmp_path / "weights.ckpt"
    payload = read_checkpoint(full.best_checkpoint)
    assert payload["train_state"] is None
    shutil.copy(full.best_checkpoint, bare)
    with pytest.raises(TrainingError, match="init_from"):
        train(cfg(w300_root, tmp_path / "r", "epochs=3", f"resume_from={bare}"))


def test_resume_on_other_faces_is_refused(runs, w300_root, tmp_path):
    base, _ = runs
    other = tmp_path / "other"  # 60 AFW faces: 2 fall on the validation side, not 6
    other.mkdir()
    for pts in sorted((w300_root / "afw").glob("*.pts"))[:60]:
        for f in (w300_root / "afw").glob(pts.stem + ".*"):
            shutil.copy(f, other)
    with pytest.raises(TrainingError, match="validation faces"):  # paths may change between machines, faces not
        train(cfg(other, tmp_path / "r", "epochs=3", f"resume_from={base / 'cut' / 'last.ckpt'}"))


def test_a_packed_state_file_is_smaller_and_continues_the_run(w300_root, tmp_path):
    from kdmark.engine.loop import pack_state

    # FP32 on every machine: what packing costs is measured alone. precision=auto picks bf16 autocast where the CPU
    # has native bf16 (AMX/AVX-512 bf16), whose own rounding then compounds the moments' for an epoch (0.0025 on 1
    # of 480 weights on a Xeon with AMX, where FP32 machines stay inside the bound below)
    fp32 = ("epochs=3", "ema=0.9", "precision=32-true")
    full = train(cfg(w300_root, tmp_path / "full", *fp32))
    steps = read_checkpoint(full.last_checkpoint)["train_state"]["state"]["step"] // 3
    cut = train(cfg(w300_root, tmp_path / "cut", *fp32, f"max_steps={2 * steps}"))
    packed = pack_state(cut.last_checkpoint, tmp_path / "state.ckpt")
    assert packed.stat().st_size < 0.75 * cut.last_checkpoint.stat().st_size
    resumed = train(cfg(w300_root, tmp_path / "continued", *fp32, f"resume_from={packed}"))
    a, b = read_checkpoint(full.last_checkpoint), read_checkpoint(resumed.last_checkpoint)
    assert b["train_state"]["state"]["step"] == a["train_state"]["state"]["step"]
    for k, v in a["state_dict"].items():  # the moments were rounded to bf16: close, not equal
        if v.is_floating_point():
            torch.testing.assert_close(b["state_dict"][k], v, rtol=0.05, atol=2e-3)
    with pytest.raises(TrainingError, match="packed already"):
        pack_state(packed, tmp_path / "again.ckpt")
