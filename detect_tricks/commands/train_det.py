"""Train YOLOv3 on a ResNet backbone with the Bag of Freebies switches (COCO or VOC data).

python tools/train_det.py --config configs/det/yolov3_r18d_fruit_bof.yaml
python tools/train_det.py --out runs/yolov3_r18d_fruit_bof --resume
torchrun --nproc_per_node=8 tools/train_det.py --config configs/det/yolov3_r50d_coco_bof.yaml
"""

from __future__ import annotations

import functools
import logging

from detect_tricks.config import DetConfig
from detect_tricks.data.detection import DetectionEvalSet, DetectionTrainSet, collate_detection
from detect_tricks.detection import (
    build_objective,
    build_precise_bn,
    build_sources,
    evaluate_detector,
)
from detect_tricks.detector import save_prediction_grid
from detect_tricks.engine.cli import run_tool
from detect_tricks.engine.distributed import DistContext
from detect_tricks.engine.launch import (
    build_loaders,
    fit,
    launch,
    require_num_classes,
    start_process,
)
from detect_tricks.engine.progress import LOGGER_NAME
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.sampling import random_shape_schedule
from detect_tricks.engine.setup import build_train_parts
from detect_tricks.engine.trainer import Trainer
from detect_tricks.models import build_detector

logger = logging.getLogger(LOGGER_NAME)


def train(cfg: DetConfig, run: RunDirectory, ctx: DistContext, checkpoint: dict | None) -> None:
    start_process(cfg, ctx)
    train_source, val_source = build_sources(cfg.data)
    require_num_classes(cfg.model.num_classes, train_source.class_names, train_source.source)
    tricks = cfg.tricks
    sizes = tricks.random_shape_sizes if tricks.random_shapes else [cfg.data.size]
    train_set = DetectionTrainSet(
        train_source,
        cfg.data.size,
        mixup_alpha=tricks.mixup_alpha if tricks.mixup else None,
        mixup_until_epoch=cfg.train.epochs - tricks.no_mixup_epochs,
        largest_size=max(sizes),
        expand_ratio=cfg.data.expand_ratio,
    )
    shapes = (
        random_shape_schedule(cfg.train.seed, sizes, tricks.random_shape_interval)
        if tricks.random_shapes
        else None
    )
    val_set = DetectionEvalSet(val_source, cfg.data.size)
    loaders = build_loaders(train_set, val_set, collate_detection, cfg, ctx, shapes)
    model = build_detector(cfg.model)
    parts = build_train_parts(
        model, build_objective(cfg), cfg, ctx, loaders.sampler.batches_per_epoch
    )
    evaluate = functools.partial(
        evaluate_detector,
        loader=loaders.val,
        ctx=ctx,
        source=val_source,
        cfg=cfg.eval,
        autocast=parts.autocast,
        channels_last=cfg.train.channels_last,
    )
    metadata = {"class_names": train_source.class_names, "category_ids": train_source.category_ids}
    precise_bn = build_precise_bn(cfg, train_source, ctx, parts.autocast)
    trainer = Trainer.from_config(parts, run, ctx, cfg, evaluate, "AP", metadata, precise_bn)
    details = f"{cfg.model.num_classes} classes, input {'/'.join(map(str, sizes))} px"
    status = fit(trainer, loaders, checkpoint, model, details)
    if status == "finished" and ctx.is_main:
        evaluated = parts.ema.module if parts.ema is not None else parts.module
        save_prediction_grid(evaluated, val_source, cfg, run.plots / "val_predictions.png")
    if train_set.num_skipped or val_set.num_skipped:
        logger.warning(
            "Skipped %d unreadable training and %d validation images (listed above)",
            train_set.num_skipped,
            val_set.num_skipped,
        )


def main() -> None:
    """`detect-tricks train-det` and `python tools/train_det.py`."""
    run_tool(functools.partial(launch, DetConfig, train, __doc__))


if __name__ == "__main__":
    main()
