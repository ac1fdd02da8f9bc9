"""``kdmark.prune(cfg)`` (``prune_checkpoint``): score, prune and retrain a checkpoint, and report what it bought.

Retraining is the distillation loop of ``kdmark distill`` with LOSS + w * loss3 (pooled-feature distillation),
the teacher being the unpruned checkpoint itself (default) or any other checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from kdmark.checkpoint import load_checkpoint, save_checkpoint
from kdmark.config import DistillConfig, PruneConfig, dump_config, load_config, migrate, to_dict
from kdmark.data.dataset import LandmarkDataset
from kdmark.deploy.bench import model_cost
from kdmark.engine.loop import fit, validate
from kdmark.engine.setup import cache_faces, claim_folder, claim_run, prepare
from kdmark.engine.tasks import DistillTask, SupervisedTask, Teacher, supervised_losses
from kdmark.io import atomic_write_json
from kdmark.kd_losses import PooledFeatureKD
from kdmark.pruning import channel_spec, prunable_layers, prune_layer, score_layer
from kdmark.zoo import resolve

__all__ = ["prune_checkpoint", "PruneResult", "measure", "format_report"]

_TRAIN_KEYS = {f.name for f in dataclasses.fields(DistillConfig)}


@dataclass
class PruneResult:
    checkpoint: Path
    before: dict
    after: dict
    removed: dict[str, int]


def _retrain_config(cfg: PruneConfig, saved: dict) -> DistillConfig:
    """The checkpoint's own training config, with the prune settings' overrides, as a distillation config. Extra
    training folders the checkpoint was trained with that are not on this machine (a zoo model's labelled photos)
    are left out, each with a note, unless ``train.data.extra`` says which to use."""
    base = {k: v for k, v in saved.items() if k in _TRAIN_KEYS and k not in ("teachers", "kd")}
    if "extra" not in (cfg.train.get("data") or {}) and base.get("data", {}).get("extra"):
        here = []
        for extra in base["data"]["extra"]:
            root = extra.get("root") if isinstance(extra, dict) else extra
            if root and Path(root).exists():
                here.append(extra)
            else:
                print(f"kdmark: {cfg.checkpoint} was also trained on {root}, which is not here: retraining without "
                      "it (set train.data.extra=[...] to use other extra data)")
        base = {**base, "data": {**base["data"], "extra": here}}
    own = {"optim.lr": cfg.lr, "optim.warmup_epochs": 0, "resume": False, "init_from": None, "ema": None,
           "out_dir": cfg.out_dir, "kd.w_pooled_feature": cfg.w_pooled_feature}
    return load_config(DistillConfig, settings=(base, cfg.train, own))


def measure(model: torch.nn.Module, data, size: int, path: Path | None = None) -> dict:
    """Parameters, MACs, checkpoint size, CPU latency (batch 1; one thread and all threads) and validation NME."""

    cost = model_cost(model, size, tuple(sorted({1, os.cpu_count() or 1})))
    val, _, _ = validate(model.eval(), data)
    return {**cost, "size_bytes": path.stat().st_size if path else None, "val_nme": val.nme, "val_fr": val.fr,
            "val_auc": val.auc}


def prune_checkpoint(cfg: PruneConfig) -> PruneResult:
    """Prune ``cfg.checkpoint`` and retrain it; writes ``pruned.ckpt`` and ``prune_report.json`` in ``out_dir``."""

    source = Path(resolve(cfg.checkpoint))  # a zoo name prunes the shipped checkpoint
    model, payload = load_checkpoint(source)
    dcfg = _retrain_config(cfg, migrate(payload.get("config", {})))
    out = Path(cfg.out_dir)
    run = prepare(dcfg, model)  # the one set-up train and distill use, around the loaded checkpoint
    fabric, dcfg, data = run.fabric, run.cfg, run.data
    cache_faces(dcfg, data, fabric)
    with claim_folder(out, dump_config(cfg), ("pruned.ckpt", "prune_report.json"), "pruning", "prune",
                      replace=cfg.overwrite, owner=fabric.is_global_zero):  # only now: a prune that fails on its
        return _prune(cfg, source, model, dcfg, run, out)  # inputs leaves an earlier one be


def _prune(cfg: PruneConfig, source: Path, model, dcfg: DistillConfig, run, out: Path) -> PruneResult:
    fabric, data = run.fabric, run.data
    size = model.info.input_size
    before = measure(model, data, size, source)
    graph, layers = prunable_layers(model, size, residual=cfg.scope == "all")
    plain = LandmarkDataset(data.train.samples[: cfg.samples], data.scheme, model.codec, size, None,
                            dcfg.data.margin, dcfg.data.use_box, cache=False)  # L training faces, not augmented
    images = torch.stack([plain[i]["image"] for i in range(len(plain))])
    teacher_path = source if cfg.teacher == "student" else cfg.teacher
    teacher = Teacher(teacher_path, size, size // dcfg.model.heatmap_stride)
    removed: dict[str, int] = {}
    earlier = list(getattr(model, "channel_spec", None) or {})  # a checkpoint pruned before keeps those layers slim

    def spec() -> dict[str, int]:
        modules = dict(model.named_modules())
        return {**{name: int(modules[name].out_channels) for name in earlier}, **channel_spec(model, layers)}

    def retrain(epochs: int, folder: str) -> None:
        if epochs <= 0:
            return
        kd = [("pooled_feature", cfg.w_pooled_feature, PooledFeatureKD(_last_channels(model, size),
                                                                _last_channels(teacher.model, teacher.size)))]
        task = DistillTask(model, [teacher], kd, **supervised_losses(dcfg))
        task.to_teachers(fabric.device)
        run_cfg = dataclasses.replace(dcfg, epochs=epochs, out_dir=str(out / folder), overwrite=cfg.overwrite)
        with claim_run(run_cfg, fabric, data) as folder:  # locked, checked, config saved, like any training run
            fit(run_cfg, fabric, task, model, data, folder)

    order = list(reversed(layers))  # the top layer first
    if cfg.schedule == "global":  # every layer scored on the unpruned network, then all pruned together
        all_scores = {layer.name: score_layer(model, graph, layer, cfg.importance, images,
                                              _taylor_loss(data)) for layer in order}
    for k, layer in enumerate(order):
        scores = all_scores[layer.name] if cfg.schedule == "global" else score_layer(
            model, graph, layer, cfg.importance, images, _taylor_loss(data))
        removed[layer.name] = prune_layer(graph, layer, cfg.ratio, scores)
        model.channel_spec = spec()
        if cfg.schedule == "layerwise" and removed[layer.name]:
            retrain(cfg.epochs_per_layer, f"layer{k:02d}")
    retrain(cfg.finetune_epochs, "finetune")
    model.channel_spec = spec()
    config = {**to_dict(dcfg), "prune": to_dict(cfg)}
    path = save_checkpoint(out / "pruned.ckpt", model.eval(), config, {"source": str(cfg.checkpoint)})
    after = measure(model, data, size, path)
    report = {"before": before, "after": after, "removed_filters": removed, "config": to_dict(cfg)}
    atomic_write_json(out / "prune_report.json", report)
    return PruneResult(path, before, after, removed)


@torch.no_grad()
def _last_channels(model, size: int) -> int:
    """The channels of a model's last feature map as it is now (``backbone.channels`` is timm's count before any
    pruning: a checkpoint pruned earlier, such as a zoo student, has fewer)."""
    was = model.training
    model.eval()
    try:
        return int(model.backbone(torch.zeros(1, 3, size, size))[-1].shape[1])
    finally:
        model.train(was)


def _taylor_loss(data):
    """A loss on a few training faces, for Taylor importance (which needs gradients)."""
    def loss(m):

        batch = torch.utils.data.default_collate([data.train[i] for i in range(min(16, len(data.train)))])
        return SupervisedTask(m)(batch)["loss"]

    return loss


def format_report(result: PruneResult) -> list[str]:
    rows = [("", "before", "after", "ratio")]
    latency = sorted((k for k in result.before if k.startswith("latency_ms_")),  # one per thread count measured
                     key=lambda k: int(k.removeprefix("latency_ms_").removesuffix("t")))
    for key, fmt in (("params", "{:,}"), ("macs", "{:,}"), ("size_bytes", "{:,}"),
                     *((k, "{:.2f}") for k in latency), ("val_nme", "{:.4%}")):
        if key not in result.before:
            continue
        b, a = result.before[key], result.after[key]
        rows.append((key, fmt.format(b), fmt.format(a), f"{a / b:.3f}" if b else "-"))
    return [f"{r[0]:<16}{r[1]:>16}{r[2]:>16}{r[3]:>8}" for r in rows]

