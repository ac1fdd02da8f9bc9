"""The training loop in plain sight: ``fit`` runs forward, backward, clip, step and logs, with validation NME
and atomic checkpoints every epoch; Fabric supplies devices, DDP, multi-node launch and mixed precision."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from kdmark.card import ModelCard
from kdmark.checkpoint import read_checkpoint, save_checkpoint
from kdmark.config import TrainConfig, to_dict
from kdmark.data.dataset import LandmarkDataset
from kdmark.data.transforms import apply_affine
from kdmark.engine.setup import Data, RunResult, resume_source
from kdmark.engine.tasks import SupervisedTask
from kdmark.errors import TrainingError
from kdmark.io import atomic_write_text
from kdmark.metrics import Metrics, score_samples
from kdmark.models.landmark_net import LandmarkNet

__all__ = ["fit", "validate", "predict_dataset", "build_optimizer", "lr_factor", "EpochShuffle", "CsvLog",
           "to_channels_last", "WARMUP_STEPS", "pack_state"]


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
        atomic_write_text(self.path, ("\n".join(lines) + "\n"))


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


WARMUP_STEPS = 5  # steps left out of steady_images_per_s (allocator warm-up, torch.compile)


def fit(cfg: TrainConfig, fabric, task: torch.nn.Module, model: LandmarkNet, data: Data, out: Path) -> RunResult:
    """The training loop. ``task(batch)`` returns a dict with ``"loss"``; everything else is bookkeeping: restore a
    stopped run (:meth:`_Loop.restore`), train an epoch (:meth:`_Loop.epoch`), then validate, checkpoint and log
    it (:meth:`_Loop.end_epoch`). ``out`` is the run folder the job claimed (``engine.setup.claim_run``)."""
    loop = _Loop(cfg, fabric, task, model, data, out, to_dict(cfg))
    loop.restore()
    loop.setup()
    for epoch in range(loop.state["epoch"], cfg.epochs):
        row = loop.epoch(epoch)
        if loop.end_epoch(epoch, row):
            break
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
        """Continue from ``resume_from``, or from ``last.ckpt`` when ``resume`` is set and it exists (the settings
        were checked against the state file's by ``engine.setup.check_resume`` before the run folder was touched)."""
        src = resume_source(self.cfg)
        if src is None:
            return
        payload = read_checkpoint(src)
        ts = payload["train_state"]
        if ts.get("packed"):  # pack_state: the trained weights as the saved ones plus a bf16 difference
            ts["model"] = {k: (payload["state_dict"][k] + d.float()) if d.is_floating_point() else d
                           for k, d in ts.pop("model_delta").items()}
            if ts.get("ema_is_saved"):
                ts["ema"] = payload["state_dict"]
        task_state = ts["task"]
        if ts.get("task_model"):  # the model's tensors are stored once, under "model"
            task_state = {**{f"model.{k}": v for k, v in ts["model"].items()}, **task_state}
        self.task.load_state_dict(task_state)  # the model and any trainable distillation adapters
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        if self.ema is not None and ts.get("ema") is not None:
            self.ema.module.load_state_dict(ts["ema"])
        self.state = dict(ts["state"])
        self.log = CsvLog(self.out / "metrics.csv", ts.get("log", []))
        _set_rng_state(ts["rng"])
        if not self.best.is_file() and math.isfinite(self.state["best"]):  # moved to a new folder: no best.ckpt
            self.fabric.print(f"kdmark: {self.best} does not exist: the next validation writes it (best so far "
                              f"{self.state['best'] * 100:.3f}% at epoch {self.state['best_epoch']}, in {src})")
            self.state["best"] = math.inf
        self.fabric.print(f"resumed from {src} at epoch {self.state['epoch']}, step {self.state['step']}")

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
        state["train_s"] = state.get("train_s", 0.0) + elapsed  # across every stretch of a resumed run
        row = {"epoch": epoch + 1, "step": state["step"], "images_seen": state["step"] * cfg.batch_size,
               "train_s_total": round(state["train_s"], 1), "lr": self.scheduler.get_last_lr()[0],
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
            task_state = {k: v for k, v in _unwrap(self.task).state_dict().items() if not k.startswith("model.")}
            train_state = {"model": self.model.state_dict(), "task": task_state, "task_model": True,
                           "faces": [len(self.data.train), len(self.data.val)],
                           "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                           "ema": self.ema.module.state_dict() if self.ema else None,
                           "state": dict(state), "rng": _rng_state(), "log": self.log.rows}
            save_checkpoint(self.last, eval_model, self.config, self.metrics, train_state)
            fabric.print(_summary(row, state))
        fabric.barrier()
        return final


def pack_state(src: str | Path, dst: str | Path) -> Path:
    """A smaller copy of a run's state file for carrying between machines (e.g. committed by a campaign): the
    optimiser's moments in bf16, and the trained weights as a bf16 difference from the saved (EMA) ones. Resuming
    from it continues the run with those rounded to bf16 (3 significant digits of each moment), not bit-exactly;
    the saved weights, step, schedule, RNG and log are kept exactly."""
    payload = read_checkpoint(src)
    ts = payload.get("train_state")
    if not ts:
        raise TrainingError(f"{src}: holds no training state to pack")
    if ts.get("packed"):
        raise TrainingError(f"{src}: is packed already")
    ts = dict(ts)
    sd = payload["state_dict"]
    ts["model_delta"] = {k: (v - sd[k]).to(torch.bfloat16) if v.is_floating_point() else v
                         for k, v in ts.pop("model").items()}
    opt = dict(ts["optimizer"])
    opt["state"] = {i: {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and k != "step"
                        else v for k, v in st.items()} for i, st in opt["state"].items()}
    ts["ema_is_saved"], ts["ema"] = ts.get("ema") is not None, None  # the EMA weights are the saved ones
    ts["optimizer"], ts["packed"] = opt, True
    payload["train_state"] = ts
    from kdmark.io import atomic_write

    return atomic_write(dst, lambda f: torch.save(payload, f))


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


@torch.no_grad()
def predict_dataset(model, dataset: LandmarkDataset, batch_size: int = 32, num_workers: int = 0,
                    progress: bool = False, device: torch.device | str | None = None,
                    tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over every face of ``dataset`` (with test-time augmentation ``tta``, see
    ``kdmark.schemes.with_tta``): (N, K, 2) points in original image pixels, (N, K) scores."""
    from kdmark.model import Model
    from kdmark.schemes import get_scheme, with_tta

    net = model.net if isinstance(model, Model) else model  # a loaded model (kdmark.load_model) or a LandmarkNet
    device = device or (next(net.parameters()).device if net is not None else "cpu")
    was_training = net is not None and net.training
    if net is not None:
        net.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    points, scores = [], []
    scheme = ModelCard.from_dict(model.card, "model").scheme  # a Model's typed card or a LandmarkNet's stored one
    run = with_tta(model.predict, tta, get_scheme(scheme))  # dataset may be a Subset (DDP validation)
    for batch in tqdm(loader, desc="predicting", unit="batch", disable=not progress, leave=False):
        pts, sc = run(batch["image"].to(device))
        to_image = batch["to_image"].numpy()
        pts = pts.double().cpu().numpy()
        points.extend(apply_affine(p, m) for p, m in zip(pts, to_image, strict=False))
        scores.append(sc.float().cpu().numpy())
    if net is not None:
        net.train(was_training)
    return np.stack(points), np.concatenate(scores)


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
