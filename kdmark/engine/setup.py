"""One run set-up for every job that trains (train, distill, prune): Fabric with the "auto" settings
resolved, the data, the student, the cached faces and the locked run folder."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kdmark.asm import ActiveShapeModel
from kdmark.checkpoint import read_checkpoint
from kdmark.config import TrainConfig, dump_config, from_dict, migrate, to_dict
from kdmark.data import read_dataset
from kdmark.data.dataset import Augment, LandmarkDataset, split_by_photo
from kdmark.data.images import image_size
from kdmark.data.labels import read_confidences
from kdmark.data.pseudo import is_pseudo_folder, pseudo_samples
from kdmark.data.records import Dataset, DatasetError, Sample
from kdmark.errors import TrainingError
from kdmark.io import atomic_write_text, lock_folder, remove_stale_temporaries, unlock_folder
from kdmark.model import load_model
from kdmark.models.landmark_net import LandmarkNet, build_model, codec_for
from kdmark.pruning import apply_channel_spec
from kdmark.schemes import LandmarkScheme

__all__ = ["prepare", "Prepared", "RunResult", "Data", "make_fabric", "resolve_auto", "build_data", "split_samples",
           "build_student", "cache_faces", "claim_run", "claim_folder", "check_resume", "resume_source", "MAY_CHANGE",
           "readable_samples"]


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


def readable_samples(samples: list, skip_bad: bool) -> list:
    """Drop (skip_bad; one "kdmark: skipped" line each) or raise on faces whose image cannot be decoded, before any
    worker sees them."""

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


def split_samples(cfg: TrainConfig) -> tuple[Dataset, list[Sample], list[Sample]]:
    """(the training dataset, its training faces, the validation faces) as ``cfg.data`` says (see ``DataConfig``
    for the split rules): the one place a run's validation faces are chosen, for training and for a pipeline's
    eval stage alike. Images are not decoded here."""

    d = cfg.data
    if not d.root:
        raise DatasetError("data.root", "no dataset given: set data.root=PATH (any format kdmark reads)")
    for key, root in (("data.root", d.root), ("data.val_root", d.val_root)):
        if root and not Path(root).exists():  # recipes name ../shared/data/...: relative to where kdmark runs
            raise DatasetError(f"{key}={root}", f"no such file or folder (relative to {Path.cwd()}); point it at "
                                                f"your copy: {key}=PATH")
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
    return ds, train_samples, val_samples


def build_data(cfg: TrainConfig, codec) -> Data:
    """Train and validation datasets from ``cfg.data``: :func:`split_samples`, then the ``data.extra`` faces, the
    unreadable faces left out (``data.skip_bad``) or refused, ASM soft landmarks (``asm_variance``)."""
    d = cfg.data
    ds, train_samples, val_samples = split_samples(cfg)
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
    """The faces of ``data.extra``: each folder's points weighted by its ``weight`` times their confidence (a
    ``kdmark data label`` folder's recorded confidences, or a pseudo-label folder's fused teachers' agreement)."""

    out = []
    for extra in d.extra:
        samples = _pseudo_faces(extra, scheme) if is_pseudo_folder(extra.root) else _labelled_faces(extra, scheme,
                                                                                                    d.skip_bad)
        if extra.limit and extra.limit < len(samples):  # evenly spread: every sub-folder keeps its share
            samples = [samples[int(i * len(samples) / extra.limit)] for i in range(extra.limit)]
        if not samples:
            raise DatasetError(extra.root, "no faces in this data.extra folder")
        out += samples
    return out


def _pseudo_faces(extra, scheme) -> list:
    """A pseudo-label folder's faces (one TEACHER.jsonl per teacher), fused per landmark (``kdmark.data.pseudo``)."""

    if scheme.num_points != 68:
        raise DatasetError(extra.root, f"pseudo-labels are 68-point; this run's scheme is {scheme.name}")
    if not extra.images:
        raise DatasetError(extra.root, "a pseudo-label folder needs images: (the photos' folder)")
    samples, counts = pseudo_samples(extra.root, extra.images, extra.teachers, extra.fusion, extra.cauchy,
                                     extra.tau, extra.min_confidence, extra.weight)
    print(f"kdmark: {extra.root}: {counts['kept']} of {counts['faces']} faces from {counts['photos']} photos "
          f"({', '.join(counts['teachers'])} fused per point, fusion={extra.fusion}; {counts['dropped']} left out, "
          f"mean confidence {counts['mean_confidence']:.2f})")
    return samples


def _labelled_faces(extra, scheme, skip_bad: bool) -> list:
    """A dataset folder's faces (e.g. ``kdmark data label``'s), weighted by its ``labels*.jsonl`` confidences."""


    conf = read_confidences(extra.root)
    root = Path(extra.root)
    out = []
    for s in read_dataset(extra.root, split=extra.split, scheme=scheme, skip_bad=skip_bad).samples:
        c = conf.get(Path(s.source).relative_to(root).as_posix()) if s.source.startswith(str(root)) else None
        if c is not None and len(c) != s.num_points:
            raise DatasetError(root, f"{Path(s.source).relative_to(root)}: {len(c)} confidences in labels*.jsonl "
                                     f"for a {s.num_points}-point face")
        w = extra.weight * (c if c is not None else np.ones(s.num_points))
        out.append(dataclasses.replace(s, weights=w, subsets=s.subsets + ("extra",)))
    return out


def soften_with_asm(samples: list, variance: float) -> list:
    """Training faces with their points replaced by ASM soft landmarks (the Tolerant teacher's targets)."""


    shapes = np.stack([s.points for s in samples])
    soft = ActiveShapeModel(variance).fit(shapes).project(shapes)
    return [dataclasses.replace(s, points=p) for s, p in zip(samples, soft)]


# (init_from's head, the run's head) pairs where the run's head holds the old one's layers plus new ones, so a
# trained model starts a run with the richer head: a heatmap model starts an offset one (its offset maps are new).
HEAD_GROWTH = {("heatmap", "offset")}


def build_student(cfg: TrainConfig, data: Data) -> LandmarkNet:
    """The model a run trains: ``cfg.model`` for ``data``'s scheme, started from ``cfg.init_from`` when given (every
    job that trains calls this, so ``init_from`` means the same for train, distill and prune).

    ``init_from`` may be a pruned checkpoint (the model takes its slimmer channels) or a model of another scheme
    (e.g. a 68-point zoo model fine-tuned to 98 or 5 points): every tensor whose name and shape fit is loaded and
    one line says what was left at its initial values. A heatmap model may start an offset-head run
    (``HEAD_GROWTH``): the trunk carries over, the offset maps start at their initial values."""
    model = build_model(to_dict(cfg.model), data.scheme.num_points, cfg.data.input_size, data.scheme.name)
    model.set_crop(cfg.data.margin, cfg.data.use_box)  # how to crop at inference
    if not cfg.init_from:
        return model
    start = load_model(cfg.init_from, backend="torch")  # a zoo name or a checkpoint, like every model spec
    init, payload = start.net, start.payload
    theirs_card, own_card = init.info, model.info
    grows = (theirs_card.head, own_card.head) in HEAD_GROWTH
    if theirs_card.backbone != own_card.backbone or (theirs_card.head != own_card.head and not grows):
        raise TrainingError(f"init_from={cfg.init_from}: a {theirs_card.backbone} {theirs_card.head} model cannot "
                            f"start a {own_card.backbone} {own_card.head} one (set model.backbone/head to match it)")
    if payload.get("channel_spec"):

        spec = payload["channel_spec"]
        if grows:  # the grown head may lack some of the old one's layers (a coarser stride): take its widths by name
            modules, theirs = dict(model.named_modules()), dict(init.named_modules())
            spec = {k: v for k, v in spec.items() if k in modules} | {
                name: theirs[name].out_channels for name, m in modules.items()
                if isinstance(m, nn.Conv2d) and name.startswith("head.") and name in theirs
                and theirs[name].out_channels < m.out_channels and theirs[name].out_channels != theirs_card.num_points}
        apply_channel_spec(model, spec)
    own, theirs = model.state_dict(), init.state_dict()
    fits = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    left = [k for k in own if k not in fits]
    if left and theirs_card.num_points == own_card.num_points and not grows:
        raise TrainingError(f"init_from={cfg.init_from}: its weights do not fit a {own_card.backbone} "
                            f"{own_card.head} model (first misfit: {left[0]})")
    model.load_state_dict(fits, strict=False)
    if left:
        print(f"kdmark: init_from={cfg.init_from} ({theirs_card.scheme}): loaded {len(fits)} tensors, left "
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

    import lightning_utilities.core.rank_zero as rank_zero

    # Lightning announces mixed precision on stderr ("Using bfloat16 Automatic Mixed Precision"); the resolved
    # precision is in the run's config.yaml, and stderr is kept for kdmark's one-line errors
    quiet = rank_zero.log  # the logger Lightning's rank_zero_info writes to (whichever Lightning package set it)
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        fabric = Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                        num_nodes=cfg.num_nodes, precision=cfg.precision)
    finally:
        quiet.setLevel(level)
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


@contextlib.contextmanager
def claim_folder(out: Path, config_text: str, outputs: tuple[str, ...], job: str, noun: str,
                 replace: bool = False, keep_hint: str = "", owner: bool = True):
    """``with claim_folder(...) as removed:`` the first step of every job that writes a run folder (training runs,
    prunes), for the length of the block: create ``out``, lock it (a second process is refused: "is JOB in this
    folder"), remove the temporaries a killed save left there (``removed``), refuse an earlier job's ``outputs``
    unless ``replace`` ("holds an earlier NOUN (...); KEEP_HINT overwrite=true replaces it, ..."), and save the
    resolved config as ``config.yaml``. The lock is let go when the block ends, however it ends (also on refusal).
    ``owner=False`` (a process other than rank 0) claims nothing."""
    if not owner:
        yield []
        return
    out.mkdir(parents=True, exist_ok=True)
    lock_folder(out, busy=f"is {job} in this folder", instead="choose another out_dir", error=TrainingError)
    try:
        removed = remove_stale_temporaries(out)  # a kill during a save leaves one; the lock says we own out/
        earlier = [n for n in outputs if (out / n).is_file()]
        if earlier and not replace:
            raise TrainingError(f"{out}: holds an earlier {noun} ({', '.join(earlier)}); {keep_hint}overwrite=true "
                                "replaces it, or choose another out_dir")
        atomic_write_text(out / "config.yaml", config_text)
        yield removed
    finally:
        unlock_folder(out)


# Settings a resumed run may change: the length of the schedule (an extended cosine stretches from the step it is
# at), where things are (paths differ between machines: the face counts are compared instead), and how fast it runs.
MAY_CHANGE = frozenset({
    "epochs", "max_steps", "out_dir", "resume", "resume_from", "overwrite", "progress", "threads", "tensorboard",
    "val_every", "init_from", "compile", "accelerator", "devices", "strategy", "num_nodes", "precision",
    "memory_format", "data.num_workers", "data.cache", "data.root", "data.val_root", "data.extra.root",
    "data.extra.images", "teachers", "unlabelled", "checkpoint"})


def resume_source(cfg: TrainConfig) -> Path | None:
    """The state file a run continues from: ``resume_from``, or ``out_dir/last.ckpt`` with ``resume`` (when it
    exists); None for a fresh run."""
    if getattr(cfg, "resume_from", None):
        return Path(cfg.resume_from)
    last = Path(cfg.out_dir) / "last.ckpt"
    return last if cfg.resume and last.is_file() else None


def _differences(saved, now, path: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for k in dict.fromkeys([*saved, *now]):
            out += _differences(saved.get(k), now.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now) and all(
            isinstance(x, dict) for x in saved + now):
        return [d for a, b in zip(saved, now) for d in _differences(a, b, path)]
    if path in MAY_CHANGE or saved == now:
        return []
    return [f"{path}: {saved!r} in the state file, {now!r} now"]


def check_resume(cfg: TrainConfig, data: Data | None = None) -> Path | None:
    """Refuse, with one line, to continue a run whose settings (or number of training and validation faces)
    differ from the state file's in anything but :data:`MAY_CHANGE`; returns the state file (None: a fresh run).
    Called before anything is written, so a refused resume leaves the run folder as it was."""

    src = resume_source(cfg)
    if src is None:
        return None
    payload = read_checkpoint(src)
    ts = payload.get("train_state")
    if not ts:
        raise TrainingError(f"{src}: holds weights but no training state (optimiser, step, RNG): it cannot be "
                            "resumed; start from its weights with init_from= instead")
    saved = migrate(payload.get("config", {}))  # keys renamed since, under their new names
    with contextlib.suppress(Exception):  # settings added since the state file was written take their defaults
        saved = to_dict(from_dict(type(cfg), saved))  # (a key since removed: compared as written)
    diffs = _differences(saved, to_dict(cfg))
    if diffs:
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        raise TrainingError(f"{src}: cannot resume with other settings: {diffs[0]}{more}; only the schedule's "
                            "length, paths and speed settings may change (a new run: overwrite=true or another "
                            "out_dir)")
    faces = ts.get("faces")
    if data is not None and faces and faces != [len(data.train), len(data.val)]:
        raise TrainingError(f"{src}: was trained on {faces[0]} training and {faces[1]} validation faces, this run "
                            f"has {len(data.train)} and {len(data.val)}: not the same data")
    return src


@contextlib.contextmanager
def claim_run(cfg: TrainConfig, fabric, data: Data | None = None):
    """``with claim_run(cfg, fabric, data) as out: fit(...)``: the run folder claimed for the length of the block
    (:func:`claim_folder`: created, locked, an earlier run refused unless ``overwrite`` or ``resume``, the resolved
    config saved; rank 0), after refusing a resume whose settings changed (:func:`check_resume`). The lock is let
    go when the block ends, however it ends: the job that takes it releases it."""
    out = Path(cfg.out_dir)
    check_resume(cfg, data)
    rank0 = fabric.is_global_zero
    if rank0 and cfg.resume and not (out / "last.ckpt").is_file() and not cfg.resume_from:
        fabric.print(f"kdmark: resume=true but {out / 'last.ckpt'} does not exist: starting a new run")
    with claim_folder(out, dump_config(cfg), ("best.ckpt", "last.ckpt"), "training", "run",
                      replace=cfg.resume or cfg.overwrite, keep_hint="resume=true continues it, ",
                      owner=rank0) as removed:
        for tmp in removed:
            fabric.print(f"kdmark: removed {tmp.name}, left by a save that was interrupted")
        yield out
