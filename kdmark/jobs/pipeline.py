"""``kdmark run PIPELINE.yaml``: a whole method end to end, one stage after another, in one run folder.

A pipeline lists stages (``train``, ``distill``, ``prune``, ``eval``, ``export``); each writes into
``<out_dir>/<stage>/``.
A finished stage leaves ``stage.json`` and is skipped on a re-run (if its resolved config is unchanged; a changed
one is refused rather than silently overwritten); an interrupted training stage resumes from its ``last.ckpt``.
``"@name"`` anywhere in a stage's settings means the best checkpoint of the earlier stage ``name``.
``compare`` lists pairs of evaluated stages that differ by one ingredient (distillation, the teacher's weights...):
the report and the run's last lines show what each ingredient changed, measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kdmark import zoo
from kdmark.checkpoint import load_checkpoint
from kdmark.config import (
    ConfigError,
    DistillConfig,
    PruneConfig,
    TrainConfig,
    from_dict,
    load_config,
    packaged,
    shipped,
    to_dict,
)
from kdmark.data.synth import GENERATOR, write_synthetic
from kdmark.deploy.bench import model_cost
from kdmark.deploy.export import export_onnx
from kdmark.engine.setup import readable_samples, split_samples
from kdmark.io import atomic_write_json, atomic_write_text
from kdmark.jobs.evaluate import evaluate_samples
from kdmark.jobs.prune import prune_checkpoint
from kdmark.jobs.report import write_report
from kdmark.jobs.train import distill, train

__all__ = ["PipelineConfig", "StageConfig", "Comparison", "run_pipeline", "load_pipeline"]


@dataclass(frozen=True)
class StageConfig:
    name: str
    verb: Literal["train", "distill", "prune", "eval", "export"]
    recipe: str | None = None  # train/distill: a recipe file (relative to the pipeline file)
    set: dict = field(default_factory=dict)  # train/distill: overrides on top of the recipe (dotted keys allowed)
    models: tuple[str, ...] = ()  # eval: checkpoints or "@stage" references
    model: str | None = None  # export/prune: one checkpoint or "@stage"


@dataclass(frozen=True)
class Comparison:
    """Two evaluated stages that differ by one ingredient: ``variant`` is ``baseline`` plus ``what``."""

    what: str  # the ingredient, as the report names it (e.g. "distillation, student from scratch")
    baseline: str  # a stage name (no "@")
    variant: str


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "pipeline"
    out_dir: str = "runs/pipeline"
    set: dict = field(default_factory=dict)  # overrides for every train/distill stage (data.root, epochs, ...)
    stages: tuple[StageConfig, ...] = ()
    compare: tuple[Comparison, ...] = ()  # what each ingredient buys (stages of the last eval stage)


def load_pipeline(path: str | Path, overrides: list[str] = ()) -> tuple[PipelineConfig, Path]:
    """Read a pipeline file. ``overrides`` are ``key=value`` settings applied to every train/distill stage, except
    ``out_dir=...`` and ``name=...``, which set the pipeline's own fields."""
    path = shipped(path)  # pipelines/NAME.yaml works from an installed wheel too
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the pipeline ({str(err).splitlines()[0]})") from None
    common = dict(raw.get("set") or {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        parsed = yaml.safe_load(value) if value else ""
        if key in ("out_dir", "name"):
            raw[key] = parsed
        else:
            common[key] = parsed
    raw["set"] = common
    try:
        cfg = from_dict(PipelineConfig, raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: stage names must be unique, got {names}")
    evals = [s for s in cfg.stages if s.verb == "eval"]
    scored = {m[1:] for m in evals[-1].models if m.startswith("@")} if evals else set()
    for c in cfg.compare:  # refused before any stage runs, not after an hour of training
        for name in (c.baseline, c.variant):
            if name not in scored:
                raise ConfigError(f"{path}: compare {c.what!r}: {name!r} is not a stage the last eval stage scores "
                                  f"(it scores: {', '.join(sorted(scored)) or 'none'})")
    return cfg, path.parent


def _resolve_refs(value: Any, done: dict[str, Path]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in done:
            raise ConfigError(f"{value!r} refers to no earlier stage (known: {', '.join(done) or 'none'})")
        return str(done[value[1:]])
    if isinstance(value, list | tuple):
        return [_resolve_refs(v, done) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_refs(v, done) for k, v in value.items()}
    return value


def _stage_config(stage: StageConfig, pipeline: PipelineConfig, base: Path, stage_dir: Path,
                  done: dict[str, Path]):
    cls = DistillConfig if stage.verb == "distill" else TrainConfig
    recipe = None
    if stage.recipe:  # beside the pipeline file, or one kdmark ships (recipes/NAME.yaml)
        recipe = base / stage.recipe if (base / stage.recipe).exists() else shipped(stage.recipe)
    settings = _resolve_refs({**pipeline.set, **stage.set}, done)
    return load_config(cls, recipe, settings=(settings, {"out_dir": str(stage_dir)}))


def _prune_config(stage: StageConfig, pipeline: PipelineConfig, stage_dir: Path, done: dict[str, Path]):
    own = {"checkpoint": _resolve_refs(stage.model, done), "out_dir": str(stage_dir)}
    train = {"train": _resolve_refs(pipeline.set, done)}  # the pipeline's settings, for the retraining
    return load_config(PruneConfig, settings=(own, _resolve_refs(dict(stage.set), done), train))


def _fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _faces_stamp(root: str | None) -> dict | None:
    """The settings synthetic faces were made with (their ``synth.json``), or None for any other dataset: part of
    every stage's fingerprint, so that stages trained on faces made otherwise (an older generator, which
    ``kdmark run`` replaces) are not taken for finished."""
    marker = Path(root) / "synth.json" if root else None
    return json.loads(marker.read_text()) if marker is not None and marker.is_file() else None


def _log(msg: str) -> None:
    print(f"[kdmark run] {msg}", flush=True)


DEFAULT_PIPELINE = packaged("pipelines", "default.yaml")
# the faces `kdmark run` generates (exact labels; `kdmark data synth --label-noise` makes human-like training labels)
SYNTHETIC_DEFAULT = {"n": 2000, "seed": 0, "size": 256, "test_fraction": 0.2, "label_noise": 0.0}


def _synthetic_default(overrides: list[str]) -> list[str]:
    """The default pipeline trains on built-in synthetic faces: generate them on first use.

    A ``data.root`` the user names is only ever created, never replaced. kdmark's own folder (``OUT_DIR/data``) is
    made again when its ``synth.json`` is missing (an interrupted generation: it is written last) or records other
    generator settings."""

    root = next((o.split("=", 1)[1] for o in overrides if o.startswith("data.root=")), None)
    own = root is None
    if own:
        out_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("out_dir=")), "runs/default")
        root = str(Path(out_dir) / "data")
        overrides = [*overrides, f"data.root={root}"]
    marker = Path(root) / "synth.json"
    stale = own and (not marker.is_file() or json.loads(marker.read_text()) != {**SYNTHETIC_DEFAULT,
                                                                              "generator": GENERATOR})
    if not Path(root).exists() or stale:
        _log(f"generating {SYNTHETIC_DEFAULT['n']} synthetic faces into {root} (seed {SYNTHETIC_DEFAULT['seed']})")
        shutil.rmtree(root, ignore_errors=True)
        write_synthetic(root, **SYNTHETIC_DEFAULT, progress=sys.stderr.isatty())
    return overrides


def run_pipeline(path: str | Path | None = None, overrides: list[str] = ()) -> dict[str, Path]:
    """Run every stage of a pipeline file; returns {stage name: its output (best checkpoint or folder)}.
    Without a file: the default pipeline on built-in synthetic faces (generated on first use)."""

    overrides = list(overrides)
    if path is None:
        path, overrides = DEFAULT_PIPELINE, _synthetic_default(overrides)
    pipeline, base = load_pipeline(path, overrides)
    run_dir = Path(pipeline.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "pipeline.yaml", yaml.safe_dump(to_dict(pipeline)))
    done: dict[str, Path] = {}
    for i, stage in enumerate(pipeline.stages, 1):
        stage_dir = run_dir / stage.name
        marker = stage_dir / "stage.json"
        if stage.verb in ("train", "distill"):
            cfg = _stage_config(stage, pipeline, base, stage_dir, done)
            spec = to_dict(cfg)
        elif stage.verb == "prune":
            cfg = _prune_config(stage, pipeline, stage_dir, done)
            spec = to_dict(cfg)
        else:
            spec = {"verb": stage.verb, "models": list(_resolve_refs(stage.models, done)),
                    "model": _resolve_refs(stage.model, done), "set": pipeline.set}
        stamp = _faces_stamp(cfg.data.root if stage.verb in ("train", "distill") else pipeline.set.get("data.root"))
        fingerprint = _fingerprint(spec if stamp is None else {**spec, "synthetic_faces": stamp})
        if marker.is_file():
            info = json.loads(marker.read_text())
            if info.get("fingerprint") != fingerprint:
                raise ConfigError(f"{stage_dir}: stage {stage.name!r} finished earlier with other settings; remove "
                                  "that folder (or choose another out_dir) to run it again")
            _log(f"stage {i}/{len(pipeline.stages)} {stage.name} ({stage.verb}): finished earlier, skipped")
            done[stage.name] = Path(info["output"])
            continue
        t0 = time.time()
        resuming = (stage_dir / "last.ckpt").is_file()
        _log(f"stage {i}/{len(pipeline.stages)} {stage.name} ({stage.verb})" + (": resuming" if resuming else ""))
        if stage.verb == "train":
            output = train(_with_resume(cfg, resuming)).best_checkpoint
        elif stage.verb == "distill":

            output = distill(_with_resume(cfg, resuming)).best_checkpoint
        elif stage.verb == "prune":


            # an unfinished stage (no stage.json) is the pipeline's own folder: its prune is redone, not refused
            output = prune_checkpoint(dataclasses.replace(cfg, overwrite=True)).checkpoint
        elif stage.verb == "eval":
            output = _eval_stage(spec["models"], pipeline, base, stage_dir, done)
        else:

            output = export_onnx(spec["model"], stage_dir / "model.onnx").path
        stage_dir.mkdir(parents=True, exist_ok=True)
        info = {"stage": stage.name, "verb": stage.verb, "output": str(output), "fingerprint": fingerprint,
                "seconds": round(time.time() - t0, 1)}
        atomic_write_json(marker, info)
        done[stage.name] = Path(output)
        _log(f"stage {stage.name} done in {info['seconds']:.0f}s -> {output}")
    eval_stages = [s.name for s in pipeline.stages if s.verb == "eval"]
    if eval_stages:

        html_path, md_path, findings = write_report(run_dir, eval_stages[-1], f"kdmark report: {pipeline.name}",
                                                    pipeline.compare)
        for line in findings:
            _log(line)
        _log(f"report: {html_path} and {md_path}")
    return done


def _cost(ckpt: Path) -> dict:
    """Parameters, MACs, file size and CPU latency (batch 1, one thread, p50) of a checkpoint."""

    model, _ = load_checkpoint(ckpt)
    return {**model_cost(model, model.info.input_size), "size_bytes": ckpt.stat().st_size}


def _with_resume(cfg, resuming: bool):

    return dataclasses.replace(cfg, resume=resuming)


def _eval_stage(models: list[str], pipeline: PipelineConfig, base: Path, stage_dir: Path,
                done: dict[str, Path]) -> Path:
    """Evaluate every model on the run's validation faces (the same fixed split training used) and write a table."""

    first = next((p for p in pipeline.stages if p.verb in ("train", "distill")), None)
    if first is None:
        raise ConfigError("an eval stage needs a train or distill stage before it (for the data settings)")
    cfg = _stage_config(first, pipeline, base, stage_dir, done)
    ds, _, val = split_samples(cfg)  # the validation faces training used
    val = readable_samples(val, cfg.data.skip_bad)
    rows = []

    for ref in models:
        ckpt = Path(zoo.resolve(ref))  # a zoo model by name (e.g. the shipped teacher) is scored like the others
        name = ref if zoo.is_zoo_name(ref) else next((k for k, v in done.items() if Path(v) == ckpt), ckpt.stem)
        res = evaluate_samples(ckpt, val, stage_dir / name, ds.normaliser)
        rows.append({"model": name, "checkpoint": str(ckpt), **res.metrics.to_dict(), **_cost(ckpt),
                     "subsets": {k: v.to_dict() for k, v in res.subsets.items()}})
        _log(f"  {name:<20} {res.metrics}")
    atomic_write_json(stage_dir / "summary.json", rows)
    return stage_dir
