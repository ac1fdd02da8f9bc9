"""A run folder is never silently overwritten or shared (issue 20.2, 20.8): a finished run is refused unless
overwrite=true (resume=true continues it), a folder another process trains in is refused, resume=true without
last.ckpt says so, and impossible settings are one line naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kdmark.cli import main

TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "data.input_size=64", "batch_size=8",
        "data.num_workers=0", "progress=false", "data.max_samples=24", "epochs=1", "max_steps=1"]


def _train(root, out, *extra):
    return main(["train", f"data.root={root}", *TINY, f"out_dir={out}", *extra])


def _errors(capsys):
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("kdmark: error")]


def test_a_finished_run_is_refused_then_replaced_on_request(w300_root, tmp_path, capsys):
    assert _train(w300_root, tmp_path) == 0
    before = (tmp_path / "best.ckpt").read_bytes()
    capsys.readouterr()
    assert _train(w300_root, tmp_path, "seed=1") == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "holds an earlier run" in errors[0] and "overwrite=true" in errors[0]
    assert (tmp_path / "best.ckpt").read_bytes() == before
    assert _train(w300_root, tmp_path, "seed=1", "overwrite=true") == 0
    assert (tmp_path / "best.ckpt").read_bytes() != before


def test_a_folder_locked_by_another_process_is_refused(w300_root, tmp_path, capsys):
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(tmp_path / '.lock')!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX); f.write('pid 4242'); "
        "f.flush(); print('locked', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert _train(w300_root, tmp_path) == 2
        errors = _errors(capsys)
        assert len(errors) == 1 and "another kdmark process (pid 4242)" in errors[0]
        assert not (tmp_path / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()


def test_resume_without_last_checkpoint_says_so(w300_root, tmp_path, capsys):
    assert _train(w300_root, tmp_path, "resume=true") == 0
    assert "resume=true but" in capsys.readouterr().out


@pytest.mark.parametrize("setting, needle", [
    ("epochs=0", "epochs: must be at least 1"), ("epochs=-3", "epochs: must be at least 1"),
    ("batch_size=0", "batch_size: must be at least 1"), ("data.input_size=30", "data.input_size: must be"),
    ("data.input_size=0", "data.input_size: must be"), ("optim.lr=.nan", "optim.lr: expected a finite number"),
])
def test_impossible_settings_are_one_line(w300_root, tmp_path, capsys, setting, needle):
    assert _train(w300_root, tmp_path, setting) == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and needle in errors[0] and errors[0].startswith("kdmark: error: command line:")


def test_numbers_as_python_writes_them(tmp_path):
    from kdmark.config import TrainConfig, load_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("optim:\n  lr: 5e-4\n")
    assert load_config(TrainConfig, recipe, []).optim.lr == 5e-4
    assert load_config(TrainConfig, recipe, ["optim.lr=1e-3"]).optim.lr == 1e-3


def test_no_validation_faces_says_how_to_fix_it(w300_root, tmp_path, capsys):
    assert _train(w300_root, tmp_path, "data.val_fraction=0.0001") == 2
    errors = _errors(capsys)
    assert len(errors) == 1 and "0 validation faces" in errors[0] and "raise data.val_fraction" in errors[0]


def test_resume_removes_a_temporary_file_a_killed_save_left(w300_root, tmp_path, capsys):
    """Issue 20.16: a kill during a save leaves .last.ckpt.PID.tmp; the next run in the folder removes it."""
    assert _train(w300_root, tmp_path) == 0
    stale = tmp_path / ".last.ckpt.999999999.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert _train(w300_root, tmp_path, "resume=true", "epochs=2", "max_steps=2") == 0
    assert not stale.exists() and "removed .last.ckpt.999999999.tmp" in capsys.readouterr().out


class _Rank0:
    is_global_zero = True

    @staticmethod
    def print(*args):
        print(*args)


def _lockable_by_another_process(folder) -> bool:
    probe = ("import fcntl, sys\n"
             f"f = open({str(folder / '.lock')!r}, 'a+')\n"
             "try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def test_a_job_lets_go_of_its_folder_however_it_ends(tmp_path):
    """Issue "Architecture" item 3: the job that claims a run folder releases it (``claim_run``: a with-block),
    also when training fails inside it; before, ``fit`` released a lock it had not taken, and a run that raised kept
    its folder locked for the rest of the process (a pipeline's later stages, a notebook)."""
    from kdmark.config import TrainConfig, load_config
    from kdmark.engine.setup import claim_folder, claim_run
    from kdmark.errors import TrainingError

    cfg = load_config(TrainConfig, None, [f"out_dir={tmp_path / 'run'}"])
    with pytest.raises(RuntimeError, match="training failed"), claim_run(cfg, _Rank0(), None) as out:
        assert (out / "config.yaml").is_file() and not _lockable_by_another_process(out)
        raise RuntimeError("training failed")
    assert _lockable_by_another_process(out)
    (out / "best.ckpt").write_bytes(b"x")  # an earlier run: refused, and the refusal keeps no lock either
    with pytest.raises(TrainingError, match=r"holds an earlier run \(best.ckpt\); resume=true continues it, "
                                            "overwrite=true replaces it"), claim_run(cfg, _Rank0(), None):
        pass
    assert _lockable_by_another_process(out)
    prune = tmp_path / "prune"  # prune claims its folder through the same helper, with its own outputs
    with claim_folder(prune, "ratio: 0.5\n", ("pruned.ckpt",), "pruning", "prune"):
        (prune / "pruned.ckpt").write_bytes(b"x")
    with pytest.raises(TrainingError, match=r"holds an earlier prune \(pruned.ckpt\); overwrite=true replaces it"), \
            claim_folder(prune, "ratio: 0.5\n", ("pruned.ckpt",), "pruning", "prune"):
        pass
    assert _lockable_by_another_process(prune)
