"""The detection task: data sources, the training objective, COCO evaluation.

Evaluation runs on every process over its shard of the validation set; rank 0 gathers
the detections, runs COCOeval and shares the stats, so every process sees the same
metrics (the loop picks `best.pt` with them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from detect_tricks.core.config import DetConfig, DetDataConfig, DetEvalConfig
from detect_tricks.core.errors import ConfigError
from detect_tricks.data.det_pipeline import build_det_train_pipeline
from detect_tricks.data.detection import (
    DetectionEvalSet,
    DetectionTrainSet,
    collate_detection,
    max_photo_side,
)
from detect_tricks.data.records import DetectionSource
from detect_tricks.data.sampling import fixed_subset, random_shape_schedule, spread_indices
from detect_tricks.data.sources import read_sources
from detect_tricks.engine.precise_bn import PreciseBN
from detect_tricks.engine.setup import build_eval_loader, resolve_workers
from detect_tricks.metrics.coco_eval import (
    detections_to_results,
    evaluate_results,
    load_ground_truth,
)
from detect_tricks.models.yolov3 import YOLOv3
from detect_tricks.utils.distributed import DistContext, all_gather_objects, broadcast_object
from detect_tricks.utils.runtime import Runtime
from detect_tricks.yolo.loss import YOLOv3Loss
from detect_tricks.yolo.postprocess import NMSSettings, postprocess, rescale_boxes

logger = logging.getLogger(__name__)


def input_sizes(cfg: DetConfig) -> list[int]:
    """The training input sizes: random shapes' list when on, else `data.size`."""
    return cfg.tricks.random_shape_sizes if cfg.tricks.random_shapes else [cfg.data.size]


def build_datasets(cfg: DetConfig) -> tuple[DetectionTrainSet, DetectionEvalSet]:
    """The training set (its sample operations from `build_det_train_pipeline`) and the
    validation set at `data.size`, read from `data.format`'s annotations."""
    train_source, val_source = build_sources(cfg.data)
    return build_train_set(cfg, train_source), DetectionEvalSet(val_source, cfg.data.size)


def build_train_set(cfg: DetConfig, source: DetectionSource) -> DetectionTrainSet:
    """The training samples of `source` through the config's sample operations."""
    max_side = max_photo_side(max(input_sizes(cfg)))
    pipeline = build_det_train_pipeline(cfg, max_side)
    return DetectionTrainSet(source, pipeline, cfg.data.size, max_side, cfg.data.cache == "ram")


def build_shape_schedule(cfg: DetConfig) -> Callable[[int], int] | None:
    """Random shapes (§3.2): the input size of each batch, or None for `data.size`."""
    tricks = cfg.tricks
    if not tricks.random_shapes:
        return None
    return random_shape_schedule(
        cfg.train.seed, tricks.random_shape_sizes, tricks.random_shape_interval
    )


def build_sources(cfg: DetDataConfig) -> tuple[DetectionSource, DetectionSource]:
    """The training (`data.train_subset` of it) and validation annotation readers of
    `data.format`, every image checked once before training."""
    train, val = read_sources(cfg)
    train, val = train.checked(), val.checked()
    if not any(len(record.boxes) for record in val.records):
        logger.warning(
            "%s has no boxes: its AP means nothing (COCOeval has nothing to score)", val.source
        )
    if cfg.train_subset:
        total = len(train)
        train = train.subset(fixed_subset(total, cfg.train_subset, cfg.train_subset_seed))
        if not len(train):
            raise ConfigError(
                f"data.train_subset {cfg.train_subset} of the {total} images of "
                f"{train.source} is no image at all; give a larger count or fraction"
            )
        logger.info(
            "data.train_subset %s: training on %d of the %d images of %s (subset seed %d)",
            cfg.train_subset,
            len(train),
            total,
            train.source,
            cfg.train_subset_seed,
        )
    return train, val


class DetectionObjective:
    """`YOLOv3Loss` of the model's outputs; the input size is read from the batch."""

    def __init__(self, loss: YOLOv3Loss) -> None:
        self.loss = loss

    def __call__(
        self, model: nn.Module, images: torch.Tensor, targets: list[dict], epoch: int
    ) -> dict[str, torch.Tensor]:
        return self.loss(model(images), targets, (images.shape[-2], images.shape[-1]))


def build_objective(cfg: DetConfig) -> DetectionObjective:
    anchors = torch.tensor(cfg.model.anchors, dtype=torch.float32)
    tricks = cfg.tricks
    loss = YOLOv3Loss(
        cfg.model.num_classes,
        anchors,
        label_smoothing=tricks.label_smoothing,
        ignore_iou=cfg.model.ignore_iou,
        box_loss=tricks.box_loss,
        grid_alpha=tricks.grid_alpha,
        assign=tricks.assign,
        iou_aware=tricks.iou_aware,
    )
    return DetectionObjective(loss)


def nms_settings(cfg: DetEvalConfig) -> NMSSettings:
    return NMSSettings(
        cfg.score_threshold, cfg.pre_nms_top_k, cfg.nms_iou, cfg.max_detections, cfg.nms
    )


@torch.inference_mode()
def detect_batch(
    model: YOLOv3,
    images: torch.Tensor,
    settings: NMSSettings,
    runtime: Runtime | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Detections per image, boxes in the pixels of the (resized) input; the forward pass
    under `runtime`'s autocast (fp32 without one)."""
    with runtime.autocast() if runtime else nullcontext():
        outputs = model(images)
    size = (images.shape[-2], images.shape[-1])
    return postprocess(
        [o.float() for o in outputs],
        model.anchors,
        model.strides,
        size,
        settings,
        model.grid_alpha,
        model.iou_aware_factor,
    )


def collect_results(
    model: YOLOv3,
    loader: Any,
    ctx: DistContext,
    category_ids: list[int | None],
    settings: NMSSettings,
    runtime: Runtime | None = None,
) -> list[dict[str, Any]]:
    """This process's detections over its shard, in the COCO results format."""
    runtime = runtime or Runtime(ctx.device)
    results = []
    for images, metas in loader:
        images = runtime.images(images)
        size = (images.shape[-2], images.shape[-1])
        for det, meta in zip(detect_batch(model, images, settings, runtime), metas, strict=True):
            if meta["skipped"]:
                continue
            boxes = rescale_boxes(det["boxes"].cpu(), size, meta["orig_size"])
            results += detections_to_results(
                meta["image_id"], boxes, det["scores"].cpu(), det["labels"].cpu(), category_ids
            )
    return results


def evaluate_detector(
    model: YOLOv3,
    loader: Any,
    ctx: DistContext,
    source: DetectionSource,
    cfg: DetEvalConfig,
    runtime: Runtime | None = None,
) -> dict[str, float]:
    """The twelve COCO stats (and `AP/<class>` per class) over all processes."""
    was_training = model.training
    model.eval()
    mine = collect_results(model, loader, ctx, source.category_ids, nms_settings(cfg), runtime)
    model.train(was_training)
    gathered = all_gather_objects(mine, ctx)
    stats = None
    if ctx.is_main:
        results = [r for part in gathered for r in part]
        gt = load_ground_truth(source.evaluation_ground_truth(), cfg.backend)
        evaluated = evaluate_results(gt, results, cfg.backend, source=source.source)
        per_class = {f"AP/{k}": v for k, v in evaluated.pop("per_class").items() if v is not None}
        evaluated.pop("table")
        stats = {**evaluated, **per_class}
    return broadcast_object(stats, ctx)


def build_train_sample_loader(
    cfg: DetConfig, train_source: DetectionSource, ctx: DistContext
) -> tuple[Any, DetectionSource] | None:
    """`eval.train_images` training images spread evenly over the training set, read like
    validation images, with their source; None when `eval.train_images` is 0."""
    if not cfg.eval.train_images:
        return None
    sample = train_source.subset(spread_indices(len(train_source), cfg.eval.train_images))
    loader = build_eval_loader(
        DetectionEvalSet(sample, cfg.data.size),
        cfg.eval.batch_size,
        resolve_workers(cfg.train.workers, ctx),
        collate_detection,
        ctx,
    )
    return loader, sample


def with_train_sample(
    evaluate: Callable[..., dict[str, float]], train_sample: tuple[Any, DetectionSource] | None
) -> Callable[[nn.Module], dict[str, float]]:
    """`evaluate(model)` on the validation set, plus the same stats on the training sample
    as `train_AP`, `train_AP50`, ... (per-class APs left out)."""
    if train_sample is None:
        return evaluate
    loader, source = train_sample

    def evaluate_both(model: nn.Module) -> dict[str, float]:
        stats = evaluate(model)
        on_train = evaluate(model, loader=loader, source=source)
        return {**stats, **{f"train_{k}": v for k, v in on_train.items() if "/" not in k}}

    return evaluate_both


def precise_bn_enabled(cfg: DetConfig) -> bool:
    """`eval.precise_bn`; `auto` means on exactly when random shapes train at sizes other
    than the evaluation size."""
    if cfg.eval.precise_bn == "auto":
        return cfg.tricks.random_shapes
    return cfg.eval.precise_bn


def build_precise_bn(
    cfg: DetConfig,
    train_source: DetectionSource,
    ctx: DistContext,
    runtime: Runtime,
) -> PreciseBN | None:
    """Precise BN over training images resized like evaluation images, spread evenly over
    the training set (`eval.precise_bn_batches` batches per process), or None when off."""
    if not precise_bn_enabled(cfg):
        return None
    batch = cfg.eval.batch_size
    wanted = cfg.eval.precise_bn_batches * batch * ctx.world_size
    subset = spread_indices(len(train_source), wanted, ctx.world_size)
    if not subset:
        raise ValueError(
            f"precise BN: {len(train_source)} training images cannot be shared by "
            f"{ctx.world_size} processes"
        )
    dataset = DetectionEvalSet(train_source, cfg.data.size)
    loader = build_eval_loader(
        dataset,
        batch,
        resolve_workers(cfg.train.workers, ctx),
        collate_detection,
        ctx,
        subset=subset,
    )
    return PreciseBN(loader, cfg.eval.precise_bn_batches, ctx, runtime)
