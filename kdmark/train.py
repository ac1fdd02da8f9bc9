"""``kdmark.train(cfg)``: supervised training on Lightning Fabric with the loop in plain sight.

Fabric supplies devices, DDP, multi-node launch and mixed precision; everything else is below: data, model,
optimiser and schedule are built from the config, then ``fit`` runs forward, backward, clip, step and logs, with
validation NME and atomic checkpoints every epoch. Distillation reuses all of it with another task.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from kdmark.checkpoint import atomic_write_bytes, load_checkpoint, read_checkpoint, save_checkpoint
from kdmark.config import TrainConfig, dump_config, to_dict
from kdmark.data.pipeline import Augment, LandmarkDataset, split_by_photo
from kdmark.data.records import DatasetError
from kdmark.errors import TrainingError
from kdmark.evaluate import predict_dataset, score_samples
from kdmark.io import remove_stale_temporaries
from kdmark.losses import CoordLoss, HeatmapLoss
from kdmark.metrics import Metrics
from kdmark.models.landmark_net import LandmarkNet, build_model, codec_for
from kdmark.schemes import LandmarkScheme
from kdmark.tasks import SupervisedTask

__all__ = ["train", "RunResult", "TrainingError", "build_data", "build_task", "fit"]



@dataclass
class RunResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    metrics: dict
    rank: int = 0  # the process that returned it (only rank 0 writes files or prints summaries)


@dataclass
class Data:
    train: LandmarkDataset
    val: LandmarkDataset
    scheme: LandmarkScheme
    normaliser: str | None


class EpochShuffle(Sampler[int]):
    """A permutation that depends only on (seed, epoch), sharded across ``world`` processes: a resumed run sees the
    same order as an unbroken one, and each rank a disjoint slice (padded by wrapping so all ranks step together).

    The method is ``use_epoch``, not ``set_epoch``, on purpose: Fabric calls ``set_epoch`` with its own count of
    loader iterations, which restarts at 0 after a resume.
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0
        self.per_rank = math.ceil(n / world)

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        order = np.resize(order, self.per_rank * self.world)
        return iter(order[self.rank :: self.world].tolist())

    def __len__(self) -> int:
        return self.per_rank


# --- building ----------------------------------------------------------------------------------------------------


def readable_samples(samples: list, skip_bad: bool) -> list:
    """Drop (skip_bad; one "kdmark: skipped" line each) or raise on faces whose image cannot be decoded, before any
    worker sees them."""
    from kdmark.data.images import image_size

    good = []
    for s in samples:
        try:
            image_size(s.image)
            good.append(s)
        except DatasetError as err:
            if not skip_bad:
                raise
            print(f"kdmark: skipped {err}")
    return good


def _report_skipped(ds):
    """One "kdmark: skipped" line per face ``data.skip_bad`` left out of ``ds`` (the README promises them)."""
    for problem in ds.problems:
        print(f"kdmark: skipped {problem}")
    return ds


def build_data(cfg: TrainConfig, codec) -> Data:
    """Train and validation datasets from ``cfg.data`` (see ``DataConfig`` for the split rules)."""
    from kdmark.data import read_dataset

    d = cfg.data
    if not d.root:
        raise DatasetError("data.root", "no dataset given: set data.root=PATH (any format kdmark reads)")
    ds = _report_skipped(read_dataset(d.root, format=d.format, split=d.train_split, scheme=d.scheme,
                                      skip_bad=d.skip_bad))
    if d.val_root:
        train_samples = ds.samples
        val_samples = _report_skipped(read_dataset(d.val_root, split=d.val_split, scheme=ds.scheme,
                                                   skip_bad=d.skip_bad)).samples
    elif d.val_split:
        train_samples = ds.samples
        val_samples = read_dataset(d.root, format=d.format, split=d.val_split, scheme=ds.scheme).samples
    else:
        train_samples, val_samples = split_by_photo(ds, d.val_fraction)
    if d.max_samples:
        train_samples, val_samples = train_samples[: d.max_samples], val_samples[: max(1, d.max_samples // 4)]
    train_samples = readable_samples(train_samples + extra_samples(d, ds.scheme), d.skip_bad)
    val_samples = readable_samples(val_samples, d.skip_bad)
    if cfg.asm_variance:
        train_samples = soften_with_asm(train_samples, cfg.asm_variance)
    if not train_samples or not val_samples:
        hint = ""
        if not val_samples and d.val_split is None and d.val_root is None:
            hint = (f"; the fixed split holds out data.val_fraction={d.val_fraction:g} of the photos by a hash of "
                    "their names, and none fell on the validation side: raise data.val_fraction (e.g. 0.3), or "
                    "give data.val_split or data.val_root")
        raise DatasetError(d.root, f"{len(train_samples)} training and {len(val_samples)} validation faces: "
                           f"both must be non-empty{hint}")
    aug = Augment.from_config(cfg.augment)
    common = dict(scheme=ds.scheme, codec=codec, input_size=d.input_size, margin=d.margin, use_box=d.use_box,
                  cache=d.cache)
    return Data(LandmarkDataset(train_samples, augment=aug, seed=cfg.seed, **common),
                LandmarkDataset(val_samples, augment=None, **common), ds.scheme, ds.normaliser)


def extra_samples(d, scheme) -> list:
    """The faces of ``data.extra``: each folder's points weighted by its ``weight`` times their confidence."""
    import dataclasses

    from kdmark.data import read_dataset
    from kdmark.teachers.label import read_confidences

    out = []
    for extra in d.extra:
        ds = read_dataset(extra.root, split=extra.split, scheme=scheme, skip_bad=d.skip_bad)
        samples = ds.samples
        if extra.limit and extra.limit < len(samples):  # evenly spread: every sub-folder keeps its share
            samples = [samples[int(i * len(samples) / extra.limit)] for i in range(extra.limit)]
        if not samples:
            raise DatasetError(extra.root, "no faces in this data.extra folder")
        conf = read_confidences(extra.root)
        root = Path(extra.root)
        for s in samples:
            c = conf.get(Path(s.source).relative_to(root).as_posix()) if s.source.startswith(str(root)) else None
            w = extra.weight * (c if c is not None and len(c) == s.num_points else np.ones(s.num_points))
            out.append(dataclasses.replace(s, weights=w, subsets=s.subsets + ("extra",)))
    return out


def soften_with_asm(samples: list, variance: float) -> list:
    """Training faces with their points replaced by ASM soft landmarks (the Tolerant teacher's targets)."""
    import dataclasses

    from kdmark.asm import ActiveShapeModel

    shapes = np.stack([s.points for s in samples])
    soft = ActiveShapeModel(variance).fit(shapes).project(shapes)
    return [dataclasses.replace(s, points=p) for s, p in zip(samples, soft)]


def supervised_losses(cfg: TrainConfig) -> dict:
    """The supervised terms of a config, as keyword arguments of SupervisedTask (and so of DistillTask)."""
    loss = cfg.loss
    kwargs = {"w": loss.wing_w, "epsilon": loss.wing_epsilon} if loss.coords == "wing" else {}
    return {"coord_loss": CoordLoss(loss.coords, scale=cfg.data.input_size, **kwargs),
            "heatmap_loss": HeatmapLoss(loss.heatmap), "w_reg": cfg.model.w_reg, "w_hm": cfg.model.w_hm}


def build_task(cfg: TrainConfig, model: LandmarkNet) -> SupervisedTask:
    return SupervisedTask(model, **supervised_losses(cfg))


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=True)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """Learning-rate multiplier per optimiser step: linear warm-up, then cosine (to 1%), step or constant."""
    o = cfg.optim
    warmup = int(o.warmup_epochs * steps_per_epoch)
    total = max(cfg.epochs * steps_per_epoch, warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if o.schedule == "cosine":
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        if o.schedule == "step":
            return o.gamma ** sum(step // steps_per_epoch >= m for m in o.milestones)
        return 1.0

    return factor


# --- state ---------------------------------------------------------------------------------------------------------


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))


class CsvLog:
    """Append one row per epoch to ``metrics.csv`` (rewritten atomically so a crash never truncates it)."""

    def __init__(self, path: Path, keep: list[dict] | None = None):
        self.path, self.rows = path, list(keep or [])

    def add(self, row: dict) -> None:
        self.rows.append(row)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        lines = [",".join(keys)] + [",".join(_fmt(r.get(k, "")) for k in keys) for r in self.rows]
        atomic_write_bytes(self.path, lambda f: f.write(("\n".join(lines) + "\n").encode()))


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


# --- the loop --------------------------------------------------------------------------------------------------------


WARMUP_STEPS = 5  # steps left out of steady_images_per_s (allocator warm-up, torch.compile)


def fit(cfg: TrainConfig, fabric, task: torch.nn.Module, model: LandmarkNet, data: Data, out: Path,
        extra_config: dict | None = None) -> RunResult:
    """The training loop. ``task(batch)`` returns a dict with ``"loss"``; everything else is bookkeeping: restore a
    stopped run (:meth:`_Loop.restore`), train an epoch (:meth:`_Loop.epoch`), then validate, checkpoint and log
    it (:meth:`_Loop.end_epoch`)."""
    loop = _Loop(cfg, fabric, task, model, data, out, {**to_dict(cfg), **(extra_config or {})})
    loop.restore()
    loop.setup()
    for epoch in range(loop.state["epoch"], cfg.epochs):
        row = loop.epoch(epoch)
        if loop.end_epoch(epoch, row):
            break
    release_run(out)
    state = loop.state
    return RunResult(out, loop.best, loop.last, {**loop.metrics, "best_val_nme": state["best"],
                                                 "best_epoch": state["best_epoch"]}, fabric.global_rank)


class _Loop:
    """The state of one training run, and the three phases of :func:`fit`."""

    def __init__(self, cfg: TrainConfig, fabric, task: torch.nn.Module, model: LandmarkNet, data: Data, out: Path,
                 config: dict):
        from timm.utils import ModelEmaV3

        self.cfg, self.fabric, self.model, self.data, self.config = cfg, fabric, model, data, config
        self.sampler = EpochShuffle(len(data.train), cfg.seed, fabric.global_rank, fabric.world_size)
        if cfg.batch_size % fabric.world_size:
            raise TrainingError(f"batch_size {cfg.batch_size} is the global batch: it must divide evenly over "
                                f"{fabric.world_size} processes")
        per_device = cfg.batch_size // fabric.world_size
        self.loader = DataLoader(data.train, batch_size=per_device, sampler=self.sampler,
                                 drop_last=len(self.sampler) > per_device, num_workers=cfg.data.num_workers,
                                 persistent_workers=cfg.data.num_workers > 0)
        if fabric.world_size > 1 and fabric.device.type == "cuda":  # SyncBatchNorm has no CPU implementation
            task = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task)
        self.task = task
        self.optimizer = build_optimizer(cfg, [p for p in task.parameters() if p.requires_grad])
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(cfg, max(1, len(self.loader))))
        self.ema = ModelEmaV3(model, decay=cfg.ema) if cfg.ema else None
        self.state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": -1}
        self.log = CsvLog(out / "metrics.csv")
        self.out, self.last, self.best = out, out / "last.ckpt", out / "best.ckpt"
        self.metrics: dict = {}
        self.channels_last = cfg.memory_format == "channels_last"

    def restore(self) -> None:
        """Continue from ``last.ckpt`` when ``resume`` is set and it exists."""
        if not (self.cfg.resume and self.last.is_file()):
            return
        ts = read_checkpoint(self.last)["train_state"]
        self.task.load_state_dict(ts["task"])  # the model and any trainable distillation adapters
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        if self.ema is not None and ts.get("ema") is not None:
            self.ema.module.load_state_dict(ts["ema"])
        self.state = dict(ts["state"])
        self.log = CsvLog(self.out / "metrics.csv", ts.get("log", []))
        _set_rng_state(ts["rng"])
        self.fabric.print(f"resumed from {self.last} at epoch {self.state['epoch']}, step {self.state['step']}")

    def setup(self) -> None:
        """Memory format, compilation and Fabric's wrappers (after restoring: state dict keys stay plain)."""
        task = to_channels_last(self.task) if self.channels_last else self.task
        if self.cfg.compile:
            task = torch.compile(task)
        self.task, self.optimizer = self.fabric.setup(task, self.optimizer)
        # EpochShuffle shards by itself
        self.loader = self.fabric.setup_dataloaders(self.loader, use_distributed_sampler=False)
        self.set_task_epoch = getattr(_unwrap(self.task), "set_epoch", None)  # e.g. a distillation weight ramp

    def epoch(self, epoch: int) -> dict:
        """Train one epoch; returns its log row (step, lr, time, images/s, mean losses)."""
        from tqdm.auto import tqdm

        cfg, state, task, optimizer = self.cfg, self.state, self.task, self.optimizer
        self.sampler.use_epoch(epoch)
        self.data.train.set_epoch(epoch)
        task.train()
        t0, sums, seen, t_warm = time.time(), {}, 0, None
        show = cfg.progress and self.fabric.is_global_zero
        # disable=None: a bar on a terminal, none in a log file (the epoch summary line is printed either way)
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", disable=None if show else True,
                   leave=False)
        for i, batch in enumerate(bar):
            if self.set_task_epoch is not None:
                self.set_task_epoch(epoch + i / max(len(self.loader), 1))
            if self.channels_last:
                batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
            out_step = task(batch)  # forward: the task returns {"loss": ..., "loss_<part>": ...}
            loss = out_step["loss"]
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, step {state['step']}; "
                                    "the last good checkpoint is "
                                    f"{self.last if self.last.exists() else 'not written yet'}")
            self.fabric.backward(loss)
            if cfg.optim.grad_clip:
                self.fabric.clip_gradients(task, optimizer, max_norm=cfg.optim.grad_clip, error_if_nonfinite=False)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            state["step"] += 1
            if self.ema is not None:
                self.ema.update(self.model, step=state["step"])
            for k, v in out_step.items():
                if k.startswith("loss"):
                    sums[k] = sums.get(k, 0.0) + float(v.detach())  # a host sync per step; cheap next to the step
            seen += 1
            if seen == WARMUP_STEPS:
                t_warm = time.time()
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            if cfg.max_steps and state["step"] >= cfg.max_steps:
                break
        state["epoch"] = epoch + 1
        elapsed = time.time() - t0
        row = {"epoch": epoch + 1, "step": state["step"], "lr": self.scheduler.get_last_lr()[0],
               "train_time_s": round(elapsed, 2), "images_per_s": round(seen * cfg.batch_size / max(elapsed, 1e-9), 2)}
        if t_warm is not None and seen > WARMUP_STEPS:  # the loop's steady state: no warm-up, no compilation
            steady = (seen - WARMUP_STEPS) * cfg.batch_size / max(time.time() - t_warm, 1e-9)
            row["steady_images_per_s"] = round(steady, 2)
        return row | {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}

    def end_epoch(self, epoch: int, row: dict) -> bool:
        """Validate (every ``val_every`` epochs and at the end), save best/last checkpoints, log; True when the
        run is over."""
        cfg, state, fabric = self.cfg, self.state, self.fabric
        eval_model = self.ema.module if self.ema is not None else self.model
        final = epoch + 1 == cfg.epochs or bool(cfg.max_steps and state["step"] >= cfg.max_steps)
        if (epoch + 1) % cfg.val_every == 0 or final:
            val, _, _ = validate(eval_model, self.data, fabric)
            row |= {"val_nme": val.nme, "val_fr": val.fr, "val_auc": val.auc}
            self.metrics = {"val": val.to_dict(), "epoch": epoch + 1}
            if val.nme < state["best"]:
                state["best"], state["best_epoch"] = val.nme, epoch + 1
                if fabric.is_global_zero:
                    save_checkpoint(self.best, eval_model, self.config, self.metrics)
        if fabric.is_global_zero:
            self.log.add(row)
            train_state = {"model": self.model.state_dict(), "task": _unwrap(self.task).state_dict(),
                           "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                           "ema": self.ema.module.state_dict() if self.ema else None,
                           "state": dict(state), "rng": _rng_state(), "log": self.log.rows}
            save_checkpoint(self.last, eval_model, self.config, self.metrics, train_state)
            fabric.print(_summary(row, state))
        fabric.barrier()
        return final


def to_channels_last(task: torch.nn.Module) -> torch.nn.Module:
    """The task's weights, and its frozen teachers' (which are not submodules), in channels-last (NHWC) layout, so
    no convolution mixes layouts (measured on a quiet machine it makes a teacher's forward pass only 2% faster)."""
    task = task.to(memory_format=torch.channels_last)
    for teacher in getattr(task, "teachers", ()):
        if isinstance(teacher, torch.nn.Module):  # black-box teachers (dlib, MediaPipe) have no weights here
            teacher.to(memory_format=torch.channels_last)
    return task


def _unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The task under Fabric's (and DDP's) wrappers, so its state_dict keys do not depend on the strategy."""
    while not isinstance(module, SupervisedTask):
        inner = getattr(module, "_orig_mod", None) or getattr(module, "module", None)  # torch.compile, Fabric, DDP
        if inner is None:
            break
        module = inner
    return module


def _summary(row: dict, state: dict) -> str:
    nme = f"  val NME {row['val_nme'] * 100:.3f}% (best {state['best'] * 100:.3f}%)" if "val_nme" in row else ""
    return (f"epoch {row['epoch']}: loss {row.get('train_loss', float('nan')):.4f}  {row['images_per_s']:.1f} img/s"
            f"  {row['train_time_s']:.1f}s{nme}")


def validate(model: LandmarkNet, data: Data, fabric=None) -> tuple[Metrics, np.ndarray, dict]:
    """Validation NME on the whole validation set. With several processes each predicts its share
    (``rank::world``) and the predictions are gathered, so every rank computes the same metrics."""
    world = fabric.world_size if fabric is not None else 1
    if world == 1:
        pred, _ = predict_dataset(model, data.val, batch_size=64)
        return score_samples(data.val.samples, pred, data.scheme, data.normaliser)
    n, rank = len(data.val), fabric.global_rank
    mine = list(range(rank, n, world))
    shard = torch.utils.data.Subset(data.val, mine)
    pred, _ = predict_dataset(model, shard, batch_size=64) if mine else (np.zeros((0, data.scheme.num_points, 2)),
                                                                           None)
    per_rank = math.ceil(n / world)
    padded = np.zeros((per_rank, data.scheme.num_points, 2))
    padded[: len(pred)] = pred
    gathered = fabric.all_gather(torch.from_numpy(padded)).cpu().numpy()  # (world, per_rank, K, 2)
    full = np.zeros((n, data.scheme.num_points, 2))
    for r in range(world):
        idx = list(range(r, n, world))
        full[idx] = gathered[r][: len(idx)]
    return score_samples(data.val.samples, full, data.scheme, data.normaliser)


def build_student(cfg: TrainConfig, data: Data) -> LandmarkNet:
    """The model a run trains: ``cfg.model`` for ``data``'s scheme, started from ``cfg.init_from`` when given (every
    job that trains calls this, so ``init_from`` means the same for train, distill and prune).

    ``init_from`` may be a pruned checkpoint (the model takes its slimmer channels) or a model of another scheme
    (e.g. a 68-point zoo model fine-tuned to 98 or 5 points): every tensor whose name and shape fit is loaded and
    one line says what was left at its initial values."""
    model = build_model(to_dict(cfg.model), data.scheme.num_points, cfg.data.input_size, data.scheme.name)
    model.card["crop"] = {"margin": cfg.data.margin, "use_box": cfg.data.use_box}  # how to crop at inference
    if not cfg.init_from:
        return model
    init, payload = load_checkpoint(cfg.init_from)
    if (init.card["backbone"], init.card["head"]) != (model.card["backbone"], model.card["head"]):
        raise TrainingError(f"init_from={cfg.init_from}: a {init.card['backbone']} {init.card['head']} model cannot "
                            f"start a {model.card['backbone']} {model.card['head']} one (set model.backbone/head "
                            "to match it)")
    if payload.get("channel_spec"):
        from kdmark.prune import apply_channel_spec

        apply_channel_spec(model, payload["channel_spec"])
    own, theirs = model.state_dict(), init.state_dict()
    fits = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    left = [k for k in own if k not in fits]
    if left and init.card["num_points"] == model.card["num_points"]:
        raise TrainingError(f"init_from={cfg.init_from}: its weights do not fit model {model.card['model']} "
                            f"(first misfit: {left[0]})")
    model.load_state_dict(fits, strict=False)
    if left:
        print(f"kdmark: init_from={cfg.init_from} ({init.card['scheme']}): loaded {len(fits)} tensors, left "
              f"{len(left)} at their initial values for {data.scheme.name} ({', '.join(left[:3])}"
              f"{', ...' if len(left) > 3 else ''})")
    return model


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX): only then is bf16 autocast faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_auto(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with ``precision`` and ``memory_format`` "auto" replaced by this hardware's choice (measured in
    BENCHMARKS.md "Training speed")."""
    changes = {}
    if cfg.precision == "auto":
        gpu = cfg.accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available()
        if gpu:
            changes["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            changes["precision"] = "bf16-mixed" if cpu_has_native_bf16() else "32-true"
    if cfg.memory_format == "auto":
        changes["memory_format"] = "channels_last"
    return dataclasses.replace(cfg, **changes) if changes else cfg


def make_fabric(cfg: TrainConfig):
    """(Fabric, cfg with "auto" settings resolved): every job sets up its run through this, so train, distill and
    prune get the same devices, precision and memory format, and record the same resolved config."""
    from lightning.fabric import Fabric

    cfg = resolve_auto(cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                    num_nodes=cfg.num_nodes, precision=cfg.precision)
    fabric.launch()
    fabric.seed_everything(cfg.seed, verbose=False)
    return fabric, cfg


@dataclass
class Prepared:
    """What :func:`prepare` sets up for a job: Fabric, the config with "auto" settings resolved, the data, the model."""

    fabric: object
    cfg: TrainConfig
    data: Data
    model: LandmarkNet


def prepare(cfg: TrainConfig, model: LandmarkNet | None = None) -> Prepared:
    """The one run set-up of every job (train, distill, prune): devices, precision and memory format
    (:func:`make_fabric`), the data (targets made by the model's codec), and the student (:func:`build_student`:
    ``init_from``, pruned channel specs) unless ``model`` is given (prune's loaded checkpoint). Faces are cached
    later (:func:`cache_faces`), so a job can refuse bad inputs (a teacher that does not fit) before that slow part."""
    fabric, cfg = make_fabric(cfg)
    codec = model.codec if model is not None else codec_for(to_dict(cfg.model), cfg.data.input_size)
    data = build_data(cfg, codec)
    return Prepared(fabric, cfg, data, model if model is not None else build_student(cfg, data))


def cache_faces(cfg: TrainConfig, data: Data, fabric) -> None:
    """Decode and crop every face once (``data.cache``); skipped faces (``data.skip_bad``) are reported."""
    if not cfg.data.cache:
        return
    skipped = data.train.fill_cache(cfg.progress and fabric.is_global_zero, cfg.data.skip_bad)
    skipped += data.val.fill_cache(skip_bad=cfg.data.skip_bad)
    for line in skipped:
        fabric.print(f"kdmark: skipped {line}")


_LOCKS: dict[str, object] = {}  # run folder -> its open, flock-ed lock file (released when the process ends)


def _lock_run(out: Path) -> None:
    """Hold an exclusive lock on ``out/.lock`` so a second process cannot train into the same folder."""
    import fcntl

    key = str(out.resolve())
    if key in _LOCKS:
        return
    f = open(out / ".lock", "a+")  # noqa: SIM115 - held open for the life of the run
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        owner = f.read().strip() or "another process"
        f.close()
        raise TrainingError(f"{out}: another kdmark process ({owner}) is training in this folder; wait for it or "
                            "choose another out_dir") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()}")
    f.flush()
    _LOCKS[key] = f


def release_run(out: Path) -> None:
    """Unlock a run folder this process locked (a killed process releases its lock by exiting; the file stays)."""
    f = _LOCKS.pop(str(Path(out).resolve()), None)
    if f is not None:
        (Path(out) / ".lock").unlink(missing_ok=True)
        f.close()


def prepare_run(cfg: TrainConfig, fabric) -> Path:
    """Create the run folder, lock it, refuse to overwrite an earlier run (unless ``overwrite`` or ``resume``),
    and save the resolved config beside the run (rank 0)."""
    out = Path(cfg.out_dir)
    if fabric.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        _lock_run(out)
        for tmp in remove_stale_temporaries(out):  # a kill during a save leaves one; the lock says we own out/
            fabric.print(f"kdmark: removed {tmp.name}, left by a save that was interrupted")
        last = out / "last.ckpt"
        earlier = [n for n in ("best.ckpt", "last.ckpt") if (out / n).is_file()]
        if cfg.resume and not last.is_file():
            fabric.print(f"kdmark: resume=true but {last} does not exist: starting a new run")
        elif earlier and not cfg.resume and not cfg.overwrite:
            raise TrainingError(f"{out}: holds an earlier run ({', '.join(earlier)}); resume=true continues it, "
                                "overwrite=true replaces it, or choose another out_dir")
        atomic_write_bytes(out / "config.yaml", lambda f: f.write(dump_config(cfg).encode()))
    return out


def train(cfg: TrainConfig) -> RunResult:
    """Train a landmark detector as ``cfg`` says; returns where the checkpoints are and the best metrics.

    Example:
        >>> cfg = load_config(TrainConfig, "recipes/300w_mbv2_heatmap.yaml", ["data.root=../shared/data/300w"])
        >>> result = kdmark.train(cfg)
        >>> result.best_checkpoint
    """
    run = prepare(cfg)
    cache_faces(run.cfg, run.data, run.fabric)
    out = prepare_run(run.cfg, run.fabric)  # only now: a run that fails on its inputs leaves an earlier run untouched
    return fit(run.cfg, run.fabric, build_task(run.cfg, run.model), run.model, run.data, out)
