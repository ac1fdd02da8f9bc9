"""`kdmark distill` with every distillation term, and `kdmark run` pipelines: finish, skip, resume, refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kdmark.cli import main
from kdmark.config import ConfigError
from kdmark.jobs.pipeline import load_pipeline, run_pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))
TINY = ["model.backbone=mobilenetv2_050", "model.head_channels=16", "model.hidden=[16]", "data.input_size=64",
        "batch_size=8", "data.max_samples=24", "data.num_workers=0", "progress=false", "epochs=1"]


@pytest.mark.parametrize("pipeline", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_shipped_pipelines_are_valid(pipeline):
    cfg, base = load_pipeline(pipeline)
    verbs = [s.verb for s in cfg.stages]
    assert "distill" in verbs and "train" in verbs and "eval" in verbs and "export" in verbs
    for stage in cfg.stages:
        if stage.recipe:
            assert (base / stage.recipe).is_file(), stage.recipe
    # a no-distillation baseline with the same recipe as the distilled student
    kd = next(s for s in cfg.stages if s.verb == "distill")
    teacher_backbones = ("resnet50", "efficientnet_b0")
    assert any(s.verb == "train" and s.recipe == kd.recipe and s.set.get("model.backbone") not in teacher_backbones
               for s in cfg.stages)


@pytest.mark.parametrize(
    "terms, head",
    [
        (["kd.w_heatmap=100"], "heatmap"),
        (["kd.w_feature_aligned=0.01", "kd.w_feature_similarity=0.01"], "deconv"),
        (["kd.w_pooled_feature=1"], "joint"),
    ],
    ids=["hong-lin-heatmap", "mobilefan-fa-fs", "applsci-pooled"],
)
def test_distill_each_method(w300_root, tmp_path, terms, head, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", str(ROOT / "recipes/300w_mbv2_heatmap.yaml"), f"data.root={w300_root}",
                 f"out_dir={teacher}", f"model.head={head}", *TINY]) == 0
    student = tmp_path / "student"
    assert main(["distill", str(ROOT / "recipes/300w_mbv2_heatmap.yaml"), f"data.root={w300_root}",
                 f"out_dir={student}", f"model.head={head}", f"teachers=[{teacher / 'best.ckpt'}]", *terms,
                 *TINY]) == 0
    header = (student / "metrics.csv").read_text().splitlines()[0]
    for term in terms:
        assert f"train_loss_kd_{term.split('.')[1].split('=')[0].removeprefix('w_')}" in header  # the term's name
    saved = yaml.safe_load((student / "config.yaml").read_text())
    assert saved["teachers"] == [str(teacher / "best.ckpt")]


def test_kd_loss_with_tough_and_tolerant_teachers(w300_root, tmp_path):
    common = [f"data.root={w300_root}", "model.head=regression", *TINY]
    recipe = str(ROOT / "recipes/300w_mbv2_regression.yaml")
    assert main(["train", recipe, f"out_dir={tmp_path / 'tough'}", *common]) == 0
    assert main(["train", recipe, f"out_dir={tmp_path / 'tolerant'}", "asm_variance=0.9", *common]) == 0
    assert main(["distill", recipe, f"out_dir={tmp_path / 'kd'}", "kd.w_kd_loss=1", "kd.w_sup=0",
                 f"teachers=[{tmp_path / 'tough' / 'best.ckpt'}, {tmp_path / 'tolerant' / 'best.ckpt'}]",
                 *common]) == 0
    assert "train_loss_kd_kd_loss" in (tmp_path / "kd" / "metrics.csv").read_text()


def test_distill_refuses_a_heatmap_student_for_kd_loss(w300_root, tiny_checkpoint, tmp_path, capsys):
    assert main(["distill", str(ROOT / "recipes/300w_mbv2_heatmap.yaml"), f"data.root={w300_root}",
                 f"out_dir={tmp_path}", f"teachers=[{tiny_checkpoint}, {tiny_checkpoint}]", "kd.w_kd_loss=1",
                 *TINY]) == 2
    assert "regression or joint head" in capsys.readouterr().err


def _unlabelled_setup(w300_root, tiny_checkpoint, tmp_path, extra=()):
    from kdmark.config import DistillConfig, load_config
    from kdmark.data.synth import write_synthetic

    faces = write_synthetic(tmp_path / "faces", n=6, test_fraction=0.0)
    cfg = load_config(DistillConfig, str(ROOT / "recipes/300w_mbv2_heatmap.yaml"), [
        f"data.root={w300_root}", f"teachers=[{tiny_checkpoint}]", "kd.w_heatmap=1", "kd.heatmap_kind=awing",
        f"unlabelled={faces}", "unlabelled_split=train", "augment.enabled=false", *TINY, *extra])
    return cfg, faces


def test_unlabelled_faces_join_training_and_only_the_distillation_terms_see_them(w300_root, tiny_checkpoint,
                                                                                 tmp_path):
    import torch
    from torch.utils.data import default_collate

    from kdmark.checkpoint import load_checkpoint
    from kdmark.config import to_dict
    from kdmark.engine.setup import build_data
    from kdmark.engine.tasks import DistillTask, Teacher, supervised_losses
    from kdmark.jobs.train import add_unlabelled
    from kdmark.kd_losses import HeatmapKD
    from kdmark.models.landmark_net import codec_for

    cfg, _ = _unlabelled_setup(w300_root, tiny_checkpoint, tmp_path)
    data = build_data(cfg, codec_for(to_dict(cfg.model), cfg.data.input_size))
    n, n_val, first = len(data.train), len(data.val), data.train[0]
    merged = add_unlabelled(cfg, data)
    assert len(merged.train) == n + 6 and len(merged.val) == n_val
    labelled, blind = merged.train[0], merged.train[n]
    assert torch.equal(labelled["heatmaps"], first["heatmaps"]) and labelled["weights"].sum() == 68
    assert blind["weights"].sum() == 0 and blind["heatmaps"].abs().sum() == 0  # no label reaches a loss
    assert blind["image"].std() > 0.05  # but the face itself is there, cropped

    student = load_checkpoint(tiny_checkpoint)[0]
    task = DistillTask(student, [Teacher(str(tiny_checkpoint), 64, 16)], [("heatmap", 1.0, HeatmapKD("awing"))],
                       **supervised_losses(cfg))
    with torch.no_grad():
        both = task(default_collate([merged.train[i] for i in (0, 1, n, n + 1)]))
        only = task(default_collate([merged.train[i] for i in (0, 1)]))
        faces = task(default_collate([merged.train[i] for i in (n, n + 1)]))
    # the supervised loss is a mean over the batch's faces, the unlabelled ones counting as zero: 2 labelled faces
    # of 4 weigh half of what they weigh alone (averaged over the labelled faces only, the few labels of a mostly
    # unlabelled batch swamp the teacher's signal); a batch of unlabelled faces has none
    assert torch.allclose(both["loss_supervised"], only["loss_supervised"] / 2) and faces["loss_supervised"] == 0
    assert torch.allclose(both["loss"], both["loss_supervised"] + both["loss_kd_heatmap"])
    # the distillation term averages over all four
    expected = (only["loss_kd_heatmap"] + faces["loss_kd_heatmap"]) / 2
    assert torch.allclose(both["loss_kd_heatmap"], expected, rtol=1e-4)


def test_distill_on_unlabelled_faces_end_to_end_and_its_refusals(w300_root, tiny_checkpoint, tmp_path):
    from kdmark.engine.setup import build_data
    from kdmark.errors import DatasetError, TrainingError
    from kdmark.jobs.train import add_unlabelled

    cfg, faces = _unlabelled_setup(w300_root, tiny_checkpoint, tmp_path)
    out = tmp_path / "kd"
    assert main(["distill", str(ROOT / "recipes/300w_mbv2_heatmap.yaml"), f"data.root={w300_root}",
                 f"out_dir={out}", f"teachers=[{tiny_checkpoint}]", "kd.w_heatmap=1", "kd.heatmap_kind=awing",
                 f"unlabelled={faces}", "unlabelled_split=train", *TINY]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["unlabelled"] == str(faces) and saved["unlabelled_split"] == "train"
    data = build_data(cfg, None)
    kd_loss, _ = _unlabelled_setup(w300_root, tiny_checkpoint, tmp_path / "b", ["kd.w_kd_loss=1"])
    with pytest.raises(TrainingError, match="KD-Loss"):
        add_unlabelled(kd_loss, data)
    (tmp_path / "empty").mkdir()
    empty, _ = _unlabelled_setup(w300_root, tiny_checkpoint, tmp_path / "c", [f"unlabelled={tmp_path / 'empty'}",
                                                                             "unlabelled_split=null"])
    with pytest.raises(DatasetError, match="empty"):
        add_unlabelled(empty, data)


def _tiny_pipeline(tmp_path: Path, w300_root: Path) -> Path:
    spec = {
        "name": "tiny", "out_dir": str(tmp_path / "run"),
        "set": {"data.root": str(w300_root), **{k: yaml.safe_load(v) for k, v in (t.split("=") for t in TINY)}},
        "stages": [
            {"name": "teacher", "verb": "train", "recipe": str(ROOT / "recipes/300w_mbv2_heatmap.yaml")},
            {"name": "student_kd", "verb": "distill", "recipe": str(ROOT / "recipes/300w_mbv2_heatmap.yaml"),
             "set": {"teachers": ["@teacher"], "kd.w_heatmap": 100.0}},
            {"name": "eval", "verb": "eval", "models": ["@teacher", "@student_kd"]},
            {"name": "export", "verb": "export", "model": "@student_kd"},
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_run_pipeline_finishes_skips_and_resumes(w300_root, tmp_path, capsys):
    path = _tiny_pipeline(tmp_path, w300_root)
    outputs = run_pipeline(path)
    run = tmp_path / "run"
    assert outputs["export"] == run / "export" / "model.onnx" and outputs["export"].is_file()
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert [r["model"] for r in summary] == ["teacher", "student_kd"]
    assert (run / "eval" / "student_kd" / "ced.png").is_file()
    capsys.readouterr()
    run_pipeline(path)
    assert capsys.readouterr().out.count("finished earlier, skipped") == 4
    (run / "student_kd" / "stage.json").unlink()  # as if killed after its last checkpoint
    run_pipeline(path)
    out = capsys.readouterr().out
    assert "student_kd (distill): resuming" in out and "resumed from" in out
    assert out.count("finished earlier, skipped") == 3


def test_run_refuses_changed_settings_and_bad_references(w300_root, tmp_path):
    path = _tiny_pipeline(tmp_path, w300_root)
    run_pipeline(path)
    with pytest.raises(ConfigError, match="finished earlier with other settings"):
        run_pipeline(path, ["optim.lr=0.5"])
    spec = yaml.safe_load(path.read_text())
    spec["stages"][1]["set"]["teachers"] = ["@nobody"]
    spec["out_dir"] = str(tmp_path / "other")
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="'@nobody' refers to no earlier stage"):
        run_pipeline(path)


def test_stages_trained_on_other_synthetic_faces_are_not_taken_for_finished(w300_root, tmp_path, capsys):
    """`kdmark run` remakes its faces when the generator changes; a re-run must then not skip the stages trained
    on the old faces (and report them as if trained on the new ones)."""
    from kdmark.data.synth import write_synthetic

    faces = write_synthetic(tmp_path / "faces", n=10, test_fraction=0.2)
    path = _tiny_pipeline(tmp_path, faces)
    spec = yaml.safe_load(path.read_text())
    spec["set"] |= {"data.train_split": "train", "data.val_split": "test"}
    spec["stages"] = spec["stages"][:1] + [{"name": "eval", "verb": "eval", "models": ["@teacher"]}]
    path.write_text(yaml.safe_dump(spec))
    run_pipeline(path)
    capsys.readouterr()
    run_pipeline(path)
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    settings = json.loads((faces / "synth.json").read_text())
    (faces / "synth.json").write_text(json.dumps({**settings, "generator": settings["generator"] - 1}))
    with pytest.raises(ConfigError, match="teacher.*finished earlier with other settings"):
        run_pipeline(path)


def test_run_pipeline_with_a_prune_stage(w300_root, tmp_path):
    path = _tiny_pipeline(tmp_path, w300_root)
    spec = yaml.safe_load(path.read_text())
    spec["stages"].insert(2, {"name": "pruned", "verb": "prune", "model": "@student_kd",
                              "set": {"ratio": 0.5, "epochs_per_layer": 0, "finetune_epochs": 1}})
    spec["stages"][3]["models"].append("@pruned")
    spec["stages"][4]["model"] = "@pruned"
    path.write_text(yaml.safe_dump(spec))
    outputs = run_pipeline(path)
    assert outputs["pruned"].name == "pruned.ckpt"
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    assert [r["model"] for r in summary] == ["teacher", "student_kd", "pruned"]


def test_pruned_teacher_fine_tuned_with_and_without_distillation_and_the_report_compares_them(w300_root, tmp_path,
                                                                                           capsys):
    """The default job's shape: the teacher pruned without retraining, then fine-tuned from that one start with and
    without distillation; the report opens with what each ingredient changed, computed from the eval table."""
    path = _tiny_pipeline(tmp_path, w300_root)
    spec = yaml.safe_load(path.read_text())
    recipe = str(ROOT / "recipes/300w_mbv2_heatmap.yaml")
    spec["stages"] = [
        spec["stages"][0],
        {"name": "teacher_pruned", "verb": "prune", "model": "@teacher",
         "set": {"ratio": 0.4, "scope": "all", "schedule": "global", "finetune_epochs": 0}},
        {"name": "pruned", "verb": "train", "recipe": recipe, "set": {"init_from": "@teacher_pruned"}},
        {"name": "pruned_kd", "verb": "distill", "recipe": recipe,
         "set": {"init_from": "@teacher_pruned", "teachers": ["@teacher"], "kd.w_heatmap": 1.0}},
        {"name": "eval", "verb": "eval", "models": ["@teacher", "@teacher_pruned", "@pruned", "@pruned_kd"]},
    ]
    spec["compare"] = [{"what": "distillation", "baseline": "pruned", "variant": "pruned_kd"},
                       {"what": "pruning", "baseline": "teacher", "variant": "teacher_pruned"}]
    path.write_text(yaml.safe_dump(spec))
    run_pipeline(path)
    run = tmp_path / "run"
    from kdmark.checkpoint import load_checkpoint

    pruned, _ = load_checkpoint(run / "teacher_pruned" / "pruned.ckpt")
    for name in ("pruned", "pruned_kd"):  # both fine-tunes started from the pruned teacher and kept its channels
        model, _ = load_checkpoint(run / name / "best.ckpt")
        assert model.channel_spec == pruned.channel_spec
    assert not (run / "teacher_pruned" / "finetune").exists()  # finetune_epochs=0: pruned, not retrained
    by = {r["model"]: r for r in json.loads((run / "eval" / "summary.json").read_text())}
    rel = (by["pruned_kd"]["nme"] - by["pruned"]["nme"]) / by["pruned"]["nme"] * 100
    md = (run / "report.md").read_text()
    assert md.index("## What each ingredient buys") < md.index("## Every model")
    row = next(line for line in md.splitlines() if line.startswith("| distillation |"))
    assert row.split(" | ")[1:6] == ["pruned", f"{by['pruned']['nme'] * 100:.3f}", "pruned_kd",
                                     f"{by['pruned_kd']['nme'] * 100:.3f}", f"{rel:+.1f}%"]
    ratio = by["teacher_pruned"]["params"] / by["teacher"]["params"]
    assert "| pruning | teacher |" in md and f"{ratio:.2f}x" in md and ratio < 0.6
    out = capsys.readouterr().out
    assert f"[kdmark run] distillation: pruned_kd {by['pruned_kd']['nme'] * 100:.3f}% vs pruned" in out
    assert "What each ingredient buys" in (run / "report.html").read_text()


def test_compare_must_name_stages_the_last_eval_scores(w300_root, tmp_path):
    path = _tiny_pipeline(tmp_path, w300_root)
    spec = yaml.safe_load(path.read_text())
    spec["compare"] = [{"what": "distillation", "baseline": "student", "variant": "student_kd"}]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="compare 'distillation': 'student' is not a stage the last eval stage "
                                          "scores .it scores: student_kd, teacher."):
        load_pipeline(path)
    spec["compare"] = [{"what": "x", "baseline": "teacher", "variant": "student_kd", "with": "y"}]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError, match="unknown key 'compare.*with'"):
        load_pipeline(path)
    assert not (tmp_path / "run").exists()  # refused before anything ran


def _stage(cfg, name):
    return next(s for s in cfg.stages if s.name == name)


@pytest.mark.parametrize("name", ["default", "quickstart"])
def test_main_pipelines_isolate_each_ingredient(name):
    """issue 30: the main jobs compare the student alone, with distillation, and the teacher pruned to its size
    fine-tuned without and with distillation; each distillation pair differs by the distillation alone (same
    recipe, start and settings; one trains, the other distils)."""
    cfg, _ = load_pipeline(ROOT / "pipelines" / f"{name}.yaml")
    pairs = {c.baseline: c.variant for c in cfg.compare}
    assert pairs.get("student") in ("student_kd", "pruned", "pruned_kd") and cfg.compare
    for c in cfg.compare:
        if not c.what.startswith("distillation"):
            continue
        base, variant = _stage(cfg, c.baseline), _stage(cfg, c.variant)
        assert (base.verb, variant.verb) == ("train", "distill") and base.recipe == variant.recipe
        kd_only = {k: v for k, v in variant.set.items() if k != "teachers" and not k.startswith("kd.")}
        assert kd_only == base.set, c.what
    prune = _stage(cfg, "teacher_pruned")
    assert prune.set["finetune_epochs"] == 0 and prune.set["scope"] == "all"
    assert _stage(cfg, "pruned").set["init_from"] == "@teacher_pruned"
    assert sum(c.what.startswith("distillation") for c in cfg.compare) == 2


def test_default_faces_are_generated_once_and_again_when_the_settings_change(tmp_path, monkeypatch):
    import json

    import kdmark.jobs.pipeline as run
    from kdmark.data.synth import GENERATOR, write_synthetic

    monkeypatch.setattr(run, "SYNTHETIC_DEFAULT", {**run.SYNTHETIC_DEFAULT, "n": 5})
    overrides = run._synthetic_default([f"out_dir={tmp_path}"])
    root = tmp_path / "data"
    assert f"data.root={root}" in overrides and len(list(root.rglob("*.pts"))) == 5
    stamp = (root / "train" / "synth_00000.pts").stat().st_mtime_ns
    run._synthetic_default([f"out_dir={tmp_path}"])  # same settings: left alone
    assert (root / "train" / "synth_00000.pts").stat().st_mtime_ns == stamp
    monkeypatch.setattr(run, "SYNTHETIC_DEFAULT", {**run.SYNTHETIC_DEFAULT, "n": 6})
    run._synthetic_default([f"out_dir={tmp_path}"])  # other settings: made again
    assert len(list(root.rglob("*.pts"))) == 6 and json.loads((root / "synth.json").read_text())["n"] == 6
    (root / "synth.json").unlink()  # an interrupted generation (synth.json is written last): made again
    run._synthetic_default([f"out_dir={tmp_path}"])
    assert (root / "synth.json").is_file()
    old = {**json.loads((root / "synth.json").read_text()), "generator": 1}  # faces of an older generator
    (root / "synth.json").write_text(json.dumps(old))
    run._synthetic_default([f"out_dir={tmp_path}"])
    assert json.loads((root / "synth.json").read_text())["generator"] == GENERATOR
    # a folder the user names is theirs: used as it is, even when made with other settings
    theirs = tmp_path / "theirs"
    write_synthetic(theirs, n=3, seed=1, label_noise=0.02)
    before = {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()}
    assert f"data.root={theirs}" in run._synthetic_default([f"data.root={theirs}"])
    assert {p: p.read_bytes() for p in theirs.rglob("*") if p.is_file()} == before
