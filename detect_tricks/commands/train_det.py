"""Train YOLOv3 on a ResNet backbone with the Bag of Freebies switches (COCO or VOC data).

python tools/train_det.py --config configs/det/yolov3_r18d_fruit_bof.yaml
python tools/train_det.py --out runs/yolov3_r18d_fruit_bof --resume
torchrun --nproc_per_node=8 tools/train_det.py --config configs/det/yolov3_r50d_coco_bof.yaml
"""

from __future__ import annotations

import functools

from detect_tricks.config import DetConfig
from detect_tricks.data.detection import collate_detection
from detect_tricks.detection import (
    build_datasets,
    build_objective,
    build_precise_bn,
    build_shape_schedule,
    build_train_sample_loader,
    evaluate_detector,
    input_sizes,
    with_train_sample,
)
from detect_tricks.detector import save_prediction_grid
from detect_tricks.engine.cli import run_tool
from detect_tricks.engine.evaluation import Evaluation
from detect_tricks.engine.launch import (
    build_loaders,
    fit,
    launch,
    require_num_classes,
    start_process,
)
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.setup import build_train_parts
from detect_tricks.engine.trainer import Trainer
from detect_tricks.models import build_detector
from detect_tricks.utils.distributed import DistContext


def train(cfg: DetConfig, run: RunDirectory, ctx: DistContext, checkpoint: dict | None) -> None:
    start_process(cfg, ctx)
    train_set, val_set = build_datasets(cfg)
    train_source, val_source = train_set.source, val_set.source
    require_num_classes(cfg.model.num_classes, train_source.class_names, train_source.source)
    loaders = build_loaders(
        train_set, val_set, collate_detection, cfg, ctx, build_shape_schedule(cfg)
    )
    model = build_detector(cfg.model, cfg.tricks)
    objective = build_objective(cfg)
    parts = build_train_parts(model, objective, cfg, ctx, loaders.sampler.batches_per_epoch)
    evaluate = functools.partial(
        evaluate_detector,
        loader=loaders.val,
        ctx=ctx,
        source=val_source,
        cfg=cfg.eval,
        autocast=parts.autocast,
        channels_last=cfg.train.channels_last,
    )
    evaluate = with_train_sample(evaluate, build_train_sample_loader(cfg, train_source, ctx))
    precise_bn = build_precise_bn(cfg, train_source, ctx, parts.autocast)
    evaluation = Evaluation(evaluate, cfg.eval.interval, "AP", precise_bn)
    metadata = {"class_names": train_source.class_names, "category_ids": train_source.category_ids}
    trainer = Trainer(parts, run, ctx, cfg, evaluation, metadata)
    details = f"{cfg.model.num_classes} classes, input {'/'.join(map(str, input_sizes(cfg)))} px"
    status = fit(trainer, loaders, checkpoint, model, details)
    if status == "finished" and ctx.is_main:
        save_prediction_grid(parts.evaluated, val_source, cfg, run.plots / "val_predictions.png")


def main() -> None:
    """`detect-tricks train-det` and `python tools/train_det.py`."""
    run_tool(functools.partial(launch, DetConfig, train, __doc__))


if __name__ == "__main__":
    main()
