"""Experiment configs: the sections of a classification and a detection run, as nested
dataclasses with their defaults and the checks of their values.

A config file holds only what differs from these defaults; `config_loader.py` reads it
strictly (unknown keys and wrong types are errors that name the key). Each section checks
its values in `__post_init__`, so a config built in code is checked the same way.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from detect_tricks.core.errors import ConfigError

# ---------------------------------------------------------------------------------------
# Sections shared by classification and detection runs.


@dataclass
class OptimConfig:
    """SGD with momentum (the papers' optimiser) or AdamW; `lr` is the rate at
    `reference_batch` images per step."""

    name: Literal["sgd", "adamw"] = "sgd"  # adamw: betas (momentum, 0.999), decoupled decay
    lr: float = 0.1
    reference_batch: int = 256
    linear_scaling: bool = False  # Bag of Tricks §3.1: lr = lr * batch / reference_batch
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    no_bias_decay: bool = False  # Bag of Tricks §3.1: no decay on biases and norm params

    def __post_init__(self) -> None:
        _require(_positive(self.lr), "optim.lr", "a positive finite number", self.lr)
        _require(self.reference_batch > 0, "optim.reference_batch", "> 0", self.reference_batch)
        _require(0 <= self.momentum < 1, "optim.momentum", "in [0, 1)", self.momentum)
        _require(
            math.isfinite(self.weight_decay) and self.weight_decay >= 0,
            "optim.weight_decay",
            "a finite number >= 0",
            self.weight_decay,
        )
        _require(
            not self.nesterov or self.momentum > 0,
            "optim.nesterov",
            "false when optim.momentum is 0 (Nesterov needs momentum)",
            self.nesterov,
        )
        _require(
            not self.nesterov or self.name == "sgd",
            "optim.nesterov",
            "false with optim.name adamw (Nesterov is an SGD option)",
            self.nesterov,
        )


@dataclass
class ScheduleConfig:
    """Per-iteration learning rate: linear warmup from 0, then step, cosine or poly."""

    name: Literal["step", "cosine", "poly"] = "step"
    warmup_epochs: float = 0.0
    steps: list[int] = field(default_factory=lambda: [30, 60, 90])  # epochs, for `step`
    factor: float = 0.1  # multiplier at each step epoch
    min_lr: float = 0.0  # where cosine and poly end
    power: float = 0.9  # exponent of poly

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0,
            "schedule.warmup_epochs",
            "a finite number >= 0",
            self.warmup_epochs,
        )
        _require(
            math.isfinite(self.min_lr) and self.min_lr >= 0, "schedule.min_lr", ">= 0", self.min_lr
        )
        _require(_positive(self.factor), "schedule.factor", "a positive number", self.factor)
        _require(_positive(self.power), "schedule.power", "a positive number", self.power)
        _require(all(step >= 0 for step in self.steps), "schedule.steps", "epochs >= 0", self.steps)
        _require(
            self.steps == sorted(self.steps),
            "schedule.steps",
            "epochs in increasing order",
            self.steps,
        )


@dataclass
class TrainConfig:
    """How the loop runs: length, batch, precision, device, logging and checkpoints."""

    epochs: int = 120
    batch_size: int = 256  # global: split evenly over the processes of a torchrun job
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "fp16", "bf16"] = "off"
    channels_last: bool = False
    compile: bool = False  # torch.compile the model the step calls (fewer, fused kernels)
    sync_bn: bool = False  # SyncBatchNorm across processes (CUDA only)
    ema: bool = False  # evaluate an exponential moving average of the weights
    ema_decay: float = 0.9998
    # data-loading processes per training process; auto: on a GPU every core of this
    # process's share but one, on the CPU 2 (engine/setup.py, resolve_workers)
    workers: int | Literal["auto"] = "auto"
    log_interval: int = 20  # iterations between metrics.jsonl lines
    checkpoint_interval: int = 0  # iterations between extra checkpoints; 0: each epoch only
    tensorboard: bool = False  # also write the logged scalars to <run>/tb/ (needs tensorboard)

    def __post_init__(self) -> None:
        _require(self.epochs > 0, "train.epochs", "> 0", self.epochs)
        _require(0 <= self.seed < 2**31, "train.seed", "in [0, 2^31)", self.seed)
        _require(self.batch_size > 0, "train.batch_size", "> 0", self.batch_size)
        _require(0 < self.ema_decay < 1, "train.ema_decay", "in (0, 1)", self.ema_decay)
        _require(
            self.workers == "auto" or self.workers >= 0,
            "train.workers",
            ">= 0 or auto",
            self.workers,
        )
        _require(self.log_interval > 0, "train.log_interval", "> 0", self.log_interval)
        _require(
            self.checkpoint_interval >= 0,
            "train.checkpoint_interval",
            ">= 0",
            self.checkpoint_interval,
        )


@dataclass
class EvalConfig:
    """When and how the validation set is evaluated."""

    interval: int = 1  # epochs between evaluations (the last epoch is always evaluated)
    batch_size: int = 64

    def __post_init__(self) -> None:
        _require(self.interval > 0, "eval.interval", "> 0", self.interval)
        _require(self.batch_size > 0, "eval.batch_size", "> 0", self.batch_size)


class HasTrainSections(typing.Protocol):
    """What the engine reads of a task config (ClsConfig, DetConfig)."""

    optim: OptimConfig
    schedule: ScheduleConfig
    train: TrainConfig
    eval: EvalConfig


# ---------------------------------------------------------------------------------------
# Classification (tools/train_cls.py). Defaults are the paper's baseline (§2): ResNet-50,
# batch 256, Nesterov SGD lr 0.1, step decay x0.1 at epochs 30/60/90 of 120, 224 px.


@dataclass
class ClsModelConfig:
    arch: str = "resnet50"  # resnet{18,34,50,101,152}[_b|_c|_d]
    width: float = 1.0  # channel multiplier (small CPU models)
    num_classes: int = 1000
    zero_gamma: bool = False  # Bag of Tricks §3.1: last BN of each block starts at 0
    weights: str = ""  # initial weights: a .pth/.pt/.safetensors file (ours, torchvision, timm)

    def __post_init__(self) -> None:
        _require(_positive(self.width), "model.width", "a positive finite number", self.width)
        _require(self.num_classes > 0, "model.num_classes", "> 0", self.num_classes)


@dataclass
class ClsDataConfig:
    root: str = "data/imagenet"  # holds <train_split>/<class>/* and <val_split>/<class>/*
    train_split: str = "train"
    val_split: str = "val"
    train_size: int = 224  # RandomResizedCrop output
    crop_area: list[float] = field(default_factory=lambda: [0.08, 1.0])  # RandomResizedCrop
    eval_size: int = 224  # centre crop after resizing the short side to size / crop_ratio
    eval_crop_ratio: float = 0.875
    color_jitter: float = 0.4  # brightness, contrast and saturation factors in [1-x, 1+x]
    lighting: float = 0.1  # std of AlexNet-style PCA lighting noise; 0 turns it off
    skip_bad_images: bool = False  # skip unreadable images (counted) instead of stopping

    def __post_init__(self) -> None:
        _require(
            0 < self.eval_crop_ratio <= 1, "data.eval_crop_ratio", "in (0, 1]", self.eval_crop_ratio
        )
        _require(self.train_size > 0, "data.train_size", "> 0", self.train_size)
        _require(
            len(self.crop_area) == 2 and 0 < self.crop_area[0] <= self.crop_area[1] <= 1,
            "data.crop_area",
            "[min, max] fractions of the image area with 0 < min <= max <= 1",
            self.crop_area,
        )
        _require(self.eval_size > 0, "data.eval_size", "> 0", self.eval_size)
        _require(
            math.isfinite(self.color_jitter) and 0 <= self.color_jitter < 1,
            "data.color_jitter",
            "in [0, 1)",
            self.color_jitter,
        )
        _require(
            math.isfinite(self.lighting) and self.lighting >= 0,
            "data.lighting",
            ">= 0",
            self.lighting,
        )


@dataclass
class ClsTricksConfig:
    label_smoothing: float = 0.0  # §5.2: eps of softmax smoothing, 0.1 in the paper
    mixup: bool = False  # §5.4
    mixup_alpha: float = 0.2  # lam ~ Beta(alpha, alpha), one per batch
    mixup_off_epochs: int = 0  # the last N epochs train without mixup
    distill: bool = False  # §5.3: knowledge distillation from a trained teacher
    distill_teacher: str = ""  # a checkpoint written by tools/train_cls.py
    distill_temperature: float = 20.0
    distill_hard_weight: float = 0.5  # weight of the loss on the true labels

    def __post_init__(self) -> None:
        _require(
            0 <= self.label_smoothing < 1,
            "tricks.label_smoothing",
            "in [0, 1)",
            self.label_smoothing,
        )
        _require(_positive(self.mixup_alpha), "tricks.mixup_alpha", "> 0", self.mixup_alpha)
        _require(
            self.mixup_off_epochs >= 0, "tricks.mixup_off_epochs", ">= 0", self.mixup_off_epochs
        )
        _require(
            not self.distill or bool(self.distill_teacher),
            "tricks.distill_teacher",
            "a checkpoint path when tricks.distill is true",
            self.distill_teacher,
        )
        _require(
            _positive(self.distill_temperature),
            "tricks.distill_temperature",
            "> 0",
            self.distill_temperature,
        )
        _require(
            0 <= self.distill_hard_weight <= 1,
            "tricks.distill_hard_weight",
            "in [0, 1]",
            self.distill_hard_weight,
        )


@dataclass
class ClsConfig:
    """A classification run (tools/train_cls.py)."""

    model: ClsModelConfig = field(default_factory=ClsModelConfig)
    data: ClsDataConfig = field(default_factory=ClsDataConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(nesterov=True))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    tricks: ClsTricksConfig = field(default_factory=ClsTricksConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---------------------------------------------------------------------------------------
# Detection (tools/train_det.py). Defaults are GluonCV's YOLOv3 COCO recipe without the
# Bag of Freebies tricks: 416 px, batch 64, SGD lr 1e-3 per 64 images, weight decay 5e-4,
# step decay x0.1 at epochs 220 and 250 of 280.

# (w, h) in pixels at the training size, 3 per level for strides 8, 16, 32 (COCO k-means).
COCO_ANCHORS = [
    [[10, 13], [16, 30], [33, 23]],
    [[30, 61], [62, 45], [59, 119]],
    [[116, 90], [156, 198], [373, 326]],
]


@dataclass
class DetModelConfig:
    arch: str = "yolov3_resnet50_d"  # yolov3_resnet{18,34,50,101}[_b|_c|_d]
    width: float = 1.0  # channel multiplier of backbone and head (small CPU models)
    num_classes: int = 80
    anchors: list[list[list[float]]] = field(default_factory=lambda: COCO_ANCHORS)
    # a classification checkpoint of ours, a timm or torchvision file, or a name:
    # timm/<model>.<tag> or torchvision/<model> (from that library's cache or download)
    backbone_weights: str = ""
    init_from: str = ""  # a detector checkpoint to fine-tune from (matching weights)
    ignore_iou: float = 0.7  # predictions overlapping a ground truth more are not negatives

    def __post_init__(self) -> None:
        _require(_positive(self.width), "model.width", "a positive finite number", self.width)
        _require(self.num_classes > 0, "model.num_classes", "> 0", self.num_classes)
        shape_ok = len(self.anchors) == 3 and all(
            len(level) == 3 and all(len(a) == 2 and min(a) > 0 for a in level)
            for level in self.anchors
        )
        shape_ok = shape_ok and all(
            _positive(v) for level in self.anchors for a in level for v in a
        )
        _require(shape_ok, "model.anchors", "3 levels of 3 positive (w, h) pairs", self.anchors)
        _require(0 < self.ignore_iou <= 1, "model.ignore_iou", "in (0, 1]", self.ignore_iou)


@dataclass
class DetDataConfig:
    format: Literal["coco", "voc"] = "coco"
    train_ann: str = "data/coco/annotations/instances_train2017.json"  # VOC: a split .txt
    train_images: str = "data/coco/train2017"  # VOC: the VOC2007-style root folder
    val_ann: str = "data/coco/annotations/instances_val2017.json"
    val_images: str = "data/coco/val2017"
    size: int = 416  # training input (without random shapes) and evaluation size
    expand_ratio: float = 4.0  # random expand's largest canvas/image side ratio; 1 turns it off
    # hue jitter: ssd, +-18 OpenCV hue units (+-36 degrees); gluoncv, GluonCV's uniformly
    # random rotation in YIQ (data/det_transforms.py)
    hue: Literal["ssd", "gluoncv"] = "ssd"
    voc_use_difficult: bool = False  # train on VOC "difficult" boxes too
    skip_bad_images: bool = False  # skip unreadable images and bad entries (counted)
    # Train on a fixed random subset of the training images: a count (>= 1), a fraction
    # in (0, 1), or 0 for all. The subset depends on train_subset_seed only, not on
    # train.seed, so every config and seed of a ladder sees the same photos.
    train_subset: int | float = 0
    train_subset_seed: int = 0
    # ram: every training photo decoded once (a JPEG much larger than training can use at
    # a reduced size, OpenCV's IMREAD_REDUCED) and shrunk to the largest side training
    # can use, kept in memory; none: decoded for every sample.
    cache: Literal["none", "ram"] = "none"

    def __post_init__(self) -> None:
        _require(
            self.size > 0 and self.size % 32 == 0,
            "data.size",
            "a positive multiple of 32",
            self.size,
        )
        _require(
            math.isfinite(self.expand_ratio) and self.expand_ratio >= 1,
            "data.expand_ratio",
            "a finite number >= 1",
            self.expand_ratio,
        )
        seed = self.train_subset_seed
        _require(0 <= seed < 2**31, "data.train_subset_seed", "in [0, 2^31)", seed)
        subset = self.train_subset
        _require(
            (isinstance(subset, int) and subset >= 0) or 0 < subset < 1,
            "data.train_subset",
            "0 (all), a count of images >= 1, or a fraction in (0, 1)",
            subset,
        )


@dataclass
class DetTricksConfig:
    mixup: bool = False  # Bag of Freebies §3.1: box-weighted visually coherent mixup
    mixup_alpha: float = 1.5  # lam ~ Beta(alpha, alpha) per sample
    mixup_off_epochs: int = 20  # the last N epochs train without mixup
    # §3.3, sigmoid form: a switch, eps = min(1/C, 1/40) follows the class count (GluonCV);
    # classification's tricks.label_smoothing is eps itself (softmax, 0.1 in its paper)
    label_smoothing: bool = False
    random_shapes: bool = False  # §3.2 (GluonCV): a new input size every few iterations
    random_shape_sizes: list[int] = field(default_factory=lambda: list(range(320, 609, 32)))
    random_shape_interval: int = 10  # iterations between size changes
    # Mosaic (YOLOv4 §3.3; data/mosaic.py): four photos per sample, then a random scale
    # in mosaic_scale and translation; off for the last mosaic_off_epochs (ultralytics'
    # close_mosaic, YOLOX's no-augmentation tail).
    mosaic: bool = False
    mosaic_prob: float = 1.0
    mosaic_scale: list[float] = field(default_factory=lambda: [0.5, 1.5])
    mosaic_off_epochs: int = 10
    # After GluonCV, on the same YOLOv3 head (PP-YOLO, YOLOv4; yolo/loss.py, yolo/assign.py,
    # models/yolov3.py, yolo/postprocess.py; eval.nms is the NMS):
    box_loss: Literal["coords", "giou", "diou", "ciou"] = "coords"  # coords: YOLOv3's
    grid_alpha: float = 1.0  # grid sensitivity; PP-YOLO 1.05, YOLOv5 2.0; 1: YOLOv3's
    assign: Literal["best", "multi_anchor", "neighbours"] = "best"  # positives per box
    iou_aware: bool = False  # PP-YOLO: an IoU output, score obj^(1-a) iou^a
    iou_aware_factor: float = 0.4  # a (PP-YOLO's iou_aware_factor)
    spp: bool = False  # spatial pyramid pooling on the deepest level
    dropblock: bool = False  # DropBlock in the head (block 3, rate 0.1)
    coord_conv: bool = False  # CoordConv on the detection blocks' first and tip convs

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.grid_alpha) and self.grid_alpha >= 1,
            "tricks.grid_alpha",
            "a finite number >= 1",
            self.grid_alpha,
        )
        _require(
            self.assign != "neighbours" or self.grid_alpha >= 2,
            "tricks.grid_alpha",
            ">= 2 with tricks.assign neighbours (a neighbouring cell reaches the centre "
            "only when the offset spans -0.5 to 1.5, as YOLOv5's 2 sigmoid - 0.5)",
            self.grid_alpha,
        )
        _require(
            0 <= self.iou_aware_factor <= 1,
            "tricks.iou_aware_factor",
            "in [0, 1]",
            self.iou_aware_factor,
        )
        _require(0 <= self.mosaic_prob <= 1, "tricks.mosaic_prob", "in [0, 1]", self.mosaic_prob)
        _require(
            len(self.mosaic_scale) == 2
            and 0 < self.mosaic_scale[0] <= self.mosaic_scale[1]
            and math.isfinite(self.mosaic_scale[1]),
            "tricks.mosaic_scale",
            "[min, max] with 0 < min <= max",
            self.mosaic_scale,
        )
        _require(
            self.mosaic_off_epochs >= 0, "tricks.mosaic_off_epochs", ">= 0", self.mosaic_off_epochs
        )
        _require(_positive(self.mixup_alpha), "tricks.mixup_alpha", "> 0", self.mixup_alpha)
        _require(
            self.mixup_off_epochs >= 0, "tricks.mixup_off_epochs", ">= 0", self.mixup_off_epochs
        )
        _require(
            bool(self.random_shape_sizes)
            and min(self.random_shape_sizes) > 0
            and all(s % 32 == 0 for s in self.random_shape_sizes),
            "tricks.random_shape_sizes",
            "a non-empty list of positive multiples of 32",
            self.random_shape_sizes,
        )
        _require(
            self.random_shape_interval > 0,
            "tricks.random_shape_interval",
            "> 0",
            self.random_shape_interval,
        )


@dataclass
class DetEvalConfig(EvalConfig):
    batch_size: int = 16
    score_threshold: float = 0.01
    pre_nms_top_k: int = 400
    nms_iou: float = 0.45
    max_detections: int = 100
    backend: Literal["pycocotools", "faster_coco_eval"] = "pycocotools"
    # standard: class-wise greedy NMS; diou: YOLOv4's DIoU-NMS; matrix: SOLOv2's Matrix
    # NMS as PP-YOLO runs it (postprocess.py)
    nms: Literal["standard", "diou", "matrix"] = "standard"
    # Recompute BN statistics at the evaluation size before each evaluation (precise BN,
    # engine/precise_bn.py); `auto`: only when tricks.random_shapes trains at other sizes.
    precise_bn: bool | Literal["auto"] = "auto"
    precise_bn_batches: int = 200  # eval-size batches of training images (detectron2: 200)
    # Also evaluate on this many training images (spread evenly over the training set),
    # logged as train_AP, train_AP50, ...: train >> val is overfitting; 0 turns it off.
    train_images: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        batches = self.precise_bn_batches
        _require(batches > 0, "eval.precise_bn_batches", "> 0", batches)
        threshold = self.score_threshold
        _require(0 <= threshold < 1, "eval.score_threshold", "in [0, 1)", threshold)
        _require(0 < self.nms_iou <= 1, "eval.nms_iou", "in (0, 1]", self.nms_iou)
        _require(self.pre_nms_top_k > 0, "eval.pre_nms_top_k", "> 0", self.pre_nms_top_k)
        _require(self.max_detections > 0, "eval.max_detections", "> 0", self.max_detections)
        _require(self.train_images >= 0, "eval.train_images", ">= 0", self.train_images)


@dataclass
class DetConfig:
    """A detection run (tools/train_det.py)."""

    model: DetModelConfig = field(default_factory=DetModelConfig)
    data: DetDataConfig = field(default_factory=DetDataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=1e-3, reference_batch=64, linear_scaling=True, weight_decay=5e-4
        )
    )
    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(steps=[220, 250]))
    tricks: DetTricksConfig = field(default_factory=DetTricksConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=280, batch_size=64))
    eval: DetEvalConfig = field(default_factory=DetEvalConfig)


def _positive(value: float) -> bool:
    """A positive finite number (NaN and infinity fail)."""
    return math.isfinite(value) and value > 0


def _require(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"'{key}' must be {expected}, got {value!r}")
