"""Typed configuration: frozen dataclasses are the schema (one source of defaults), YAML files give values, and
``a.b=c`` overrides come from the command line. Unknown keys are rejected with a suggestion.

This module imports no torch: configs load and validate in milliseconds.

Example:
    >>> cfg = load_config(TrainConfig, "recipes/300w_mbv2_heatmap.yaml", ["epochs=5", "data.root=/data/300w"])
    >>> cfg.epochs
    5
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kdmark.errors import ConfigError

CROP_MARGIN = 0.15  # crop = landmark box enlarged by this share of its longer side per side (kdmark.card.crop_margin)

__all__ = [
    "ConfigError",
    "DataConfig",
    "ExtraData",
    "AugmentConfig",
    "ModelConfig",
    "LossConfig",
    "OptimConfig",
    "TrainConfig",
    "KDConfig",
    "DistillConfig",
    "PruneConfig",
    "EvalConfig",
    "BenchConfig",
    "ExportConfig",
    "PredictConfig",
    "setting",
    "load_config",
    "migrate",
    "from_dict",
    "to_dict",
    "dump_config",
]


@dataclass(frozen=True)
class ExtraData:
    """More training faces, e.g. a folder ``kdmark data label`` wrote: its faces join the training set with their
    points weighted by ``weight`` times each point's confidence (from its ``labels*.jsonl``, when there is one)."""

    root: str = ""
    weight: float = 1.0
    split: str | None = None
    limit: int | None = None  # use only N faces, spread evenly over the folder's file order
    # a pseudo-label folder (one TEACHER.jsonl per teacher, faces aligned: kdmark.data.pseudo) is read as it is;
    # these settings apply to it only
    images: str | None = None  # the folder its "image" paths are relative to
    teachers: tuple[str, ...] = ()  # which TEACHER.jsonl files to fuse (default: all)
    fusion: str = "hand"  # per-point teacher weights: hand, equal, or a JSON file (scripts/fit_fusion.py)
    cauchy: float = 0.05  # a teacher this far (inter-ocular units) from the others has half its say on a point
    tau: float = 0.06  # point confidence exp(-spread^2 / 2 tau^2), spread in inter-ocular units
    min_confidence: float = 0.3  # leave out faces whose mean point confidence is lower (teachers disagree)

    def __post_init__(self) -> None:
        if self.cauchy <= 0 or self.tau <= 0 or not 0 <= self.min_confidence <= 1:
            raise ValueError("cauchy and tau must be > 0 and min_confidence in [0, 1]")


@dataclass(frozen=True)
class DataConfig:
    """Where the faces come from and how they are cropped."""

    root: str = ""  # dataset folder or annotation file, any format kdmark reads
    format: str = "auto"
    train_split: str | None = "train"  # None: every face in root
    val_split: str | None = None  # a split of root for validation; None: hold out val_fraction of the train faces
    val_fraction: float = 0.1  # fixed held-out fraction, by a hash of the photo id (data.dataset.split_by_photo)
    val_root: str | None = None  # a separate dataset for validation (e.g. the 300-W test folders)
    scheme: str | None = None  # expected landmark scheme; None: inferred from the point count
    input_size: int = 128
    margin: float = CROP_MARGIN  # crop = landmark (or face) box enlarged by this fraction of its longer side per side
    use_box: bool = False  # crop around the dataset's face box instead of the landmarks
    cache: bool = True  # keep decoded, pre-cropped faces in memory (fast epochs on small datasets)
    num_workers: int = 2
    skip_bad: bool = False  # skip unreadable faces (listed once) instead of stopping
    max_samples: int | None = None  # use only the first N faces (tests, smoke runs)
    # pseudo-labelled (or other) folders added to the training faces, e.g. [{root: labels/, weight: 0.5}]
    extra: tuple[ExtraData, ...] = ()

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 8:
            raise ValueError(f"input_size: must be a multiple of 8 from 32 up (the heads' coarsest heatmap stride), "
                             f"got {self.input_size}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction: must be in [0, 1), got {self.val_fraction}")
        if self.num_workers < 0 or (self.max_samples is not None and self.max_samples < 1):
            raise ValueError("num_workers: must be >= 0 (and max_samples >= 1)")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation: one affine warp for image and points, then photometric changes."""

    enabled: bool = True
    rotation: float = 30.0  # degrees, uniform in +-rotation
    scale: float = 0.15  # relative, uniform in 1 +- scale
    shift: float = 0.08  # fraction of the crop side, uniform
    flip: float = 0.5  # probability of a horizontal flip (points permuted with the scheme)
    brightness: float = 0.3
    contrast: float = 0.3
    gamma: float = 0.3
    blur: float = 0.2  # probability
    noise: float = 0.2  # probability
    grey: float = 0.1  # probability
    occlusion: float = 0.3  # probability of one random occluding patch


@dataclass(frozen=True)
class ModelConfig:
    """Backbone (any timm model), head and codec."""

    backbone: str = "mobilenetv2_100"
    # false: random init; true: timm's ImageNet weights (needs the network or timm's cache); PATH: a weights file
    # saved by timm or torchvision (e.g. torchvision's mobilenet_v2-b0353104.pth for mobilenetv2_100)
    pretrained: bool | str = False
    head: Literal["regression", "heatmap", "offset", "deconv", "joint"] = "heatmap"
    hidden: tuple[int, ...] = (256,)  # regression head FC-BN-ReLU widths
    head_channels: int = 96  # heatmap / deconv head width
    heatmap_stride: int = 4
    sigma: float = 1.5  # Gaussian sigma on the heatmap grid, in heatmap pixels
    deconv_kernel: int = 2  # MobileFAN student: 2, SimpleBaseline teacher: 4
    eval_output: Literal["regression", "heatmap"] = "heatmap"  # joint head: which output makes the points


@dataclass(frozen=True)
class LossConfig:
    """The supervised loss: which kind of loss per output, and its weight. Every loss weight in kdmark is named
    ``w_<term>`` in the section of its term (``loss.w_heatmap``, ``kd.w_heatmap``, prune's ``w_pooled_feature``);
    0 turns the term off."""

    coords: Literal["mse", "l1", "smooth_l1", "wing"] = "wing"
    heatmap: Literal["mse", "awing"] = "awing"
    w_coords: float = 1.0  # regression and joint heads: LOSS = w_coords * loss_coords + w_heatmap * loss_heatmap
    w_heatmap: float = 1.0
    w_offsets: float = 1.0  # offset head: LOSS = w_heatmap * loss_heatmap + w_offsets * loss_offsets
    wing_w: float = 10.0  # in pixels of the network input
    wing_epsilon: float = 2.0


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adamw", "sgd", "adam"] = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    milestones: tuple[int, ...] = ()  # step schedule: epochs where lr *= gamma
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    grad_clip: float | None = 5.0

    def __post_init__(self) -> None:
        if self.lr < 0 or self.weight_decay < 0:
            raise ValueError(f"lr: lr and weight_decay must be >= 0, got {self.lr} and {self.weight_decay}")


@dataclass(frozen=True)
class TrainConfig:
    """``kdmark train``: one supervised run."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 60
    batch_size: int = 32
    seed: int = 0
    out_dir: str = "runs/train"
    asm_variance: float | None = None  # train on ASM soft landmarks keeping this share of shape variance (0.9)
    ema: float | None = None  # EMA decay of the weights used for validation and export, e.g. 0.998
    resume: bool = False  # continue from out_dir/last.ckpt
    # continue from this state file (any run's last.ckpt, e.g. one committed by an earlier session on another
    # machine) into out_dir; refused when a setting differs other than those in engine.setup.MAY_CHANGE
    resume_from: str | None = None
    init_from: str | None = None  # start from this checkpoint's weights
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    num_nodes: int = 1
    # auto: what trains fastest on this hardware at equal accuracy (kdmark.engine.setup.resolve_auto; BENCHMARKS.md
    # "Training speed"): bf16-mixed on CPUs with native bf16 (avx512_bf16, AMX) and on bf16 GPUs, else 32-true;
    # the resolved value is what the run's config.yaml and checkpoints record
    precision: str = "auto"
    # auto: channels_last (NHWC), 1.3x faster training of MobileNetV2 on AVX2 CPUs (BENCHMARKS.md)
    memory_format: Literal["auto", "contiguous", "channels_last"] = "auto"
    compile: bool = False  # torch.compile the training step (see BENCHMARKS.md "Training speed" for what it buys)
    threads: int | None = None  # torch CPU threads; None: PyTorch's default
    max_steps: int | None = None  # stop after this many optimiser steps (tests, smoke runs)
    val_every: int = 1
    progress: bool = True
    tensorboard: bool = False
    overwrite: bool = False  # replace a finished or stopped run in out_dir (otherwise refused; resume=true continues)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_every", "devices", "num_nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps: must be at least 1 (or null), got {self.max_steps}")
        size, head, stride = self.data.input_size, self.model.head, self.model.heatmap_stride
        if head == "deconv" and size % 32:
            raise ValueError(f"data.input_size: the deconv head needs a multiple of 32 (the backbone's stride), "
                             f"got {size}")
        if head in ("heatmap", "offset", "joint") and size % stride:
            raise ValueError(f"data.input_size: must be a multiple of model.heatmap_stride ({stride}), got {size}")


@dataclass(frozen=True)
class KDConfig:
    """Which distillation terms to add, and how much (0 turns a term off). Teachers are indexed by their position
    in ``DistillConfig.teachers``."""

    w_sup: float = 1.0  # weight of the supervised loss (KD-Loss contains its own main loss: set 0 there)
    w_kd_loss: float = 0.0  # Fard & Mahoor KD-Loss (regression students); needs a tough and a tolerant teacher
    kd_loss_preset: Literal["code", "paper_fig"] = "code"
    tough: int = 0
    tolerant: int = 1
    w_pooled_feature: float = 0.0  # Appl. Sci. loss3
    pooled_adapter: Literal["student", "teacher"] = "student"
    w_feature_aligned: float = 0.0  # MobileFAN L_FA
    w_feature_similarity: float = 0.0  # MobileFAN L_FS
    w_heatmap: float = 0.0  # Hong & Lin (100 in their code)
    heatmap_kind: Literal["mse", "l2sum", "awing"] = "mse"  # awing: the supervised heatmap loss, weight ~1
    teacher: int = 0  # the teacher for the feature and heatmap terms
    warmup_epochs: float = 0.0  # ramp every distillation weight linearly from 0 over these epochs
    decay: Literal["none", "linear", "cosine"] = "none"  # then fade every distillation weight to 0 by the last epoch
    # run each teacher once per face before training (unaugmented crop) and move its points, spreads and peaks with
    # every augmentation: a distillation step then costs a supervised one (points and heatmaps only, no features)
    cached: bool = False


@dataclass(frozen=True)
class DistillConfig(TrainConfig):
    """``kdmark distill``: a training run with frozen teachers and distillation terms."""

    teachers: tuple[str, ...] = ()  # teacher checkpoints, or black boxes: dlib, mediapipe (points only)
    kd: KDConfig = field(default_factory=KDConfig)
    # faces the student learns from the teachers alone: a dataset (any format kdmark reads) whose landmarks are never
    # in a loss (with data.use_box=false they only place the crop); its faces join every epoch of training
    unlabelled: str | None = None
    unlabelled_split: str | None = None


@dataclass(frozen=True)
class PruneConfig:
    """``kdmark prune``: filter pruning of a trained checkpoint, retrained with distillation (Appl. Sci. 2024)."""

    checkpoint: str = ""
    ratio: float = 0.5  # share of filters removed from every prunable layer (floor(C * ratio))
    importance: Literal["reconstruction", "l1", "l2", "taylor"] = "reconstruction"
    schedule: Literal["layerwise", "global"] = "layerwise"  # layerwise: top layer down, retraining after each
    scope: Literal["hidden", "all"] = "hidden"  # hidden: inverted-residual inner channels; all: residual ones too
    samples: int = 32  # L: training images the scores are computed on
    teacher: str = "student"  # retraining teacher: "student" (the unpruned checkpoint) or a checkpoint path
    w_pooled_feature: float = 1.0  # w in LOSS + w * loss3 while retraining (0: plain supervised retraining)
    epochs_per_layer: int = 1  # retraining epochs after each layer (layerwise schedule)
    finetune_epochs: int = 5  # retraining epochs at the end
    lr: float = 5e-4
    out_dir: str = "runs/prune"
    overwrite: bool = False  # replace an earlier prune in out_dir (else it is refused)
    train: dict = field(default_factory=dict)  # overrides of the checkpoint's training config (e.g. data.root)


# --- the model-running verbs: eval, bench, export, predict ----------------------------------------------------
# One schema per verb, as for training: the dataclass holds each default once, the CLI's flags are generated from
# it (``kdmark.cli.flags``: "flag" names the option, "check" the argparse type in ``kdmark.cli.args`` that
# validates it, "positional" an argument without a flag), and the job functions' keyword defaults read the same
# class attributes. ``key=value`` after the flags sets the same fields (``kdmark eval M --data D threshold=0.1``).

def setting(default: Any = None, help: str = "", **how: Any) -> Any:  # noqa: A002 - argparse's own word
    """A config field with its command-line form: ``help``, and optionally ``flag``, ``check``, ``metavar``,
    ``positional``, ``required``, ``nargs``."""
    return field(default=default, metadata={"help": help, **how})


MODEL_SPEC = "a zoo name (kdmark models), a .ckpt or an exported .onnx"
TTA_HELP = "test-time augmentation: flip also runs the mirrored face and averages (2x the model time)"


@dataclass(frozen=True)
class EvalConfig:
    """``kdmark eval``: score a model on a dataset (NME, FR, AUC, per subset)."""

    model: str = setting("", MODEL_SPEC, positional=True, metavar="checkpoint")
    data: str = setting("", "dataset folder or annotation file", required=True)
    split: str | None = setting(None, "one split of the dataset, e.g. test, common, challenging")
    format: str = setting("auto", "force a format instead of detecting it")
    normaliser: str | None = setting(None, "e.g. inter_ocular, inter_pupil, box")
    threshold: float | None = setting(None, "FR/AUC threshold (default: the scheme's)", check="fraction")
    batch_size: int = setting(32, "faces per forward pass", check="positive")
    heldout: float | None = setting(None, "score only the faces kdmark's fixed split holds out for validation "
                                          "(e.g. 0.1)", check="fraction", metavar="FRACTION")
    out: str | None = setting(None, "output folder (default: beside the checkpoint)")
    worst: int = setting(16, "draw the N faces with the largest error in worst.png (0: no drawing)", check="whole",
                         metavar="N")
    tta: Literal["none", "flip"] = setting("none", TTA_HELP)


@dataclass(frozen=True)
class BenchConfig:
    """``kdmark bench``: params, MACs, size, latency (torch, ONNX FP32 / INT8), accuracy, against peers."""

    model: str = setting("", MODEL_SPEC, positional=True)
    data: str | None = setting(None, "dataset to measure accuracy on (and calibrate INT8 with)")
    split: str | None = setting(None, "one split of --data, e.g. train (with --heldout) or common")
    vs: str | None = setting(None, "also run the peers on the same faces (see --detector): dlib (its 68-point "
                                   "predictor), mediapipe (Face Mesh mapped to 68 points), or dlib,mediapipe")
    detector: Literal["blazeface", "dlib"] = setting(
        "blazeface", "with --vs: the detector whose boxes kdmark's model (and MediaPipe) are scored from (dlib's "
                     "predictor always gets its own detector's box)")
    runs: int = setting(30, "timed runs per latency figure", check="positive")
    max_faces: int = setting(200, "score on at most this many faces", check="positive")
    heldout: float | None = setting(None, "score on the faces kdmark's fixed split holds out for validation "
                                          "(e.g. 0.1)", check="fraction", metavar="FRACTION")
    int8: bool = setting(True, "skip the INT8 model (quantisation takes a while)", flag="--no-int8")
    json: str | None = setting(None, "also write the figures as JSON")
    tta: Literal["none", "flip"] = setting("none", TTA_HELP)


@dataclass(frozen=True)
class ExportConfig:
    """``kdmark export``: a checkpoint as ONNX (parity-checked), optionally INT8, or as a web page."""

    model: str = setting("", "a .ckpt or a zoo name (with --web also an exported .onnx)", positional=True,
                         metavar="checkpoint")
    web: str | None = setting(None, "write a static web page running BlazeFace and this model in the browser, "
                                    "offline", metavar="FOLDER")
    ort_web: str | None = setting(None, "--web: onnxruntime-web from this npm package (.tgz or folder) instead of "
                                        "kdmark's cache", metavar="TGZ_OR_FOLDER")
    format: Literal["onnx"] = setting("onnx", "export format")
    out: str | None = setting(None, "output .onnx (default: beside the checkpoint)")
    opset: int = setting(17, "ONNX opset version", check="positive")
    tolerance: float = setting(0.01, "99th-percentile point difference vs PyTorch allowed, in input pixels",
                               check="non_negative")
    int8: bool = setting(False, "also write a statically quantised INT8 model")
    calibration: str | None = setting(None, "dataset of real faces for INT8 calibration")
    calibration_faces: int = setting(128, "faces to calibrate INT8 on", check="positive")
    precision: Literal["auto", "fp32", "int8"] = setting(
        "auto", "--web with a zoo model: which shipped file the page runs (auto: INT8 where one ships, the smaller "
                "download)")


@dataclass(frozen=True)
class PredictConfig:
    """``kdmark predict``: landmarks for images, folders, videos and cameras."""

    inputs: tuple[str, ...] = setting((), "optionally a model first (zoo name, .ckpt or .onnx; default "
                                          "kdmark-68-s), then images, folders of images, videos, or a camera (0, "
                                          "/dev/video0)", positional=True, nargs="+", metavar="[MODEL] INPUT")
    model: str | None = setting(None, "zoo name, .ckpt or .onnx (default: kdmark-68-s)")
    boxes: str | None = setting(None, "JSON: image file name -> [[x0, y0, x1, y1], ...]")
    json: str | None = setting(None, "write results here (file name -> faces); - for stdout")
    draw: str | None = setting(None, "folder for images (and videos) with landmarks drawn")
    backend: Literal["auto", "torch", "onnx"] = setting(
        "auto", "auto: by file type (zoo models and .onnx on onnxruntime, .ckpt on PyTorch)")
    batch_size: int = setting(32, "faces per forward pass", check="positive")
    smooth: bool = setting(True, "video: no One-Euro smoothing", flag="--no-smooth")
    max_frames: int = setting(300, "a camera input (0 or /dev/video0): stop after this many frames",
                              check="positive")
    detector: Literal["blazeface", "dlib"] = setting(
        "blazeface", "face detector: blazeface (MediaPipe's BlazeFace on onnxruntime, default) or dlib (HOG)")
    detector_threshold: float | None = setting(
        None, "keep faces whose detection score is at least this (default: the detector's own, 0.5 for BlazeFace, "
              "0 for dlib; JSON 'detector_score')", check="finite")
    min_face: float = setting(0.0, "ignore detected faces smaller than this (pixels)", check="non_negative")
    precision: Literal["auto", "fp32", "int8"] = setting(
        "auto", "a zoo model that ships an INT8 file: auto runs it where this CPU makes it faster than FP32 "
                "(VNNI / dot-product instructions), else FP32")
    tta: Literal["none", "flip"] = setting("none", TTA_HELP)


# --- loading -----------------------------------------------------------------------------------------------------


# Loss weights named before the one rule (``w_<term>`` in the section of its term): refused with the new name, and
# renamed in configs stored inside checkpoints written before it (``migrate``).
RENAMED = {"model.w_reg": "loss.w_coords", "model.w_hm": "loss.w_heatmap", "model.w_off": "loss.w_offsets",
           "kd.kd_loss": "kd.w_kd_loss", "kd.pooled_feature": "kd.w_pooled_feature",
           "kd.feature_aligned": "kd.w_feature_aligned", "kd.feature_similarity": "kd.w_feature_similarity",
           "kd.heatmap": "kd.w_heatmap", "kd_weight": "w_pooled_feature"}


def migrate(saved: dict) -> dict:
    """A config stored by an earlier kdmark (a checkpoint's, a run's), with the keys ``RENAMED`` since under their
    new names; anything else as it was."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in saved.items()}
    for old, new in RENAMED.items():
        (osec, okey), (nsec, nkey) = (old.rpartition(".")[::2]), (new.rpartition(".")[::2])
        src = out.get(osec) if osec else out
        if isinstance(src, dict) and okey in src:
            value = src.pop(okey)
            dst = out.setdefault(nsec, {}) if nsec else out
            if isinstance(dst, dict):
                dst.setdefault(nkey, value)
    return out


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(options)}"


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: {value!r} is not allowed")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}"
                              + (_suggest(str(value), [str(a) for a in args]) if isinstance(value, str) else ""))
        return value
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(items))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string; Python reads it as a number
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict, where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict, coercing types and rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            if path in RENAMED:
                raise ConfigError(f"unknown key {path!r}: it is {RENAMED[path]!r} now (every loss weight is named "
                                  "w_<term>)")
            raise ConfigError(f"unknown key {path!r}" + _suggest(str(key), names))
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except ValueError as err:  # a range check: the message starts with the setting's name
        raise ConfigError(f"{where + '.' if where else ''}{err}") from None
    except TypeError as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def to_dict(cfg: Any) -> dict:
    """A plain nested dict (tuples as lists) that YAML, JSON and ``torch.load(weights_only=True)`` accept."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    node = data
    *parents, last = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[last] = value


def packaged(*parts: str) -> Path:
    """A file shipped inside the package as package data, e.g. ``packaged("pipelines", "default.yaml")`` (found
    through ``importlib.resources``, so it is the installed copy wherever kdmark is installed)."""
    from importlib.resources import files

    return Path(str(files("kdmark").joinpath(*parts)))


def shipped(path: str | Path) -> Path:
    """``path`` itself when it exists; otherwise, for ``recipes/...`` and ``pipelines/...``, the copy shipped inside
    the package (so the README's commands work from an installed wheel, outside the source tree)."""
    path = Path(path)
    if not path.exists() and path.parts and path.parts[0] in ("recipes", "pipelines"):
        inside = packaged(*path.parts)
        if inside.exists():
            return inside
    return path


def load_config(cls: type, path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                settings: tuple[dict, ...] | list[dict] = ()) -> Any:
    """Defaults of ``cls``, then the YAML file ``path``, then ``settings`` (dicts of values as they are, applied in
    order; keys may be dotted, nested dicts set their leaves: how jobs hand settings to each other), then
    ``key.sub=value`` overrides (text from a user, values parsed as YAML).

    Raises:
        ConfigError: unreadable YAML, an unknown key (with a suggestion), a value of the wrong type.
    """
    data: dict = {}
    if path is not None:
        path = shipped(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        data = loaded or {}
    from_file = _dotted_keys(data)
    overridden = set()
    for layer in settings:
        for key, value in layer.items():
            overridden |= _set_leaves(data, str(key), value)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. epochs=10)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
        overridden.add(key.strip())
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        blamed = str(err).split(":", 1)[0].strip("'")
        if blamed in overridden or not path or (blamed not in from_file and "." in blamed):
            raise ConfigError(f"command line: {err}" if overridden else str(err)) from None
        raise ConfigError(f"{path}: {err}") from None


def _dotted_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for k, v in data.items():
        keys.add(f"{prefix}{k}")
        if isinstance(v, dict):
            keys |= _dotted_keys(v, f"{prefix}{k}.")
    return keys


def _set_leaves(data: dict, dotted: str, value: Any) -> set[str]:
    """Set ``value`` at ``dotted``; a dict value sets each of its leaves instead (so ``{"data": {"root": R}}`` leaves
    the other ``data`` settings be). Returns the dotted keys set."""
    if isinstance(value, dict):
        return set().union(*(_set_leaves(data, f"{dotted}.{k}", v) for k, v in value.items()))
    _set_dotted(data, dotted, value)
    return {dotted}


def dump_config(cfg: Any) -> str:
    """The config as YAML text (what is saved beside every run)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
