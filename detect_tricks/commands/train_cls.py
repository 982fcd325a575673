"""Train a classifier with the Bag of Tricks recipe on an ImageFolder / ImageNet layout.

python tools/train_cls.py --config configs/cls/resnet18_d_flowers5_tricks.yaml
python tools/train_cls.py --out runs/resnet18_d_flowers5_tricks --resume
torchrun --nproc_per_node=8 tools/train_cls.py --config configs/cls/resnet50_d_mixup.yaml
"""

from __future__ import annotations

import functools
import logging

from detect_tricks.classify import (
    ClassificationObjective,
    build_datasets,
    build_teacher,
    collate,
    evaluate_classifier,
)
from detect_tricks.config import ClsConfig
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
from detect_tricks.engine.setup import build_train_parts
from detect_tricks.engine.trainer import Trainer
from detect_tricks.models import build_classifier

logger = logging.getLogger(LOGGER_NAME)


def train(cfg: ClsConfig, run: RunDirectory, ctx: DistContext, checkpoint: dict | None) -> None:
    start_process(cfg, ctx)
    train_set, val_set = build_datasets(cfg.data)
    require_num_classes(cfg.model.num_classes, train_set.classes, str(train_set.root))
    loaders = build_loaders(train_set, val_set, collate, cfg, ctx)
    model = build_classifier(cfg.model)
    teacher = (
        build_teacher(cfg.tricks, ctx.device, cfg.train.channels_last)
        if cfg.tricks.distill
        else None
    )
    objective = ClassificationObjective(
        cfg.model.num_classes, cfg.tricks, cfg.train.epochs, teacher
    )
    parts = build_train_parts(model, objective, cfg, ctx, loaders.sampler.batches_per_epoch)
    evaluate = functools.partial(
        evaluate_classifier,
        loader=loaders.val,
        ctx=ctx,
        autocast=parts.autocast,
        channels_last=cfg.train.channels_last,
    )
    metadata = {"classes": train_set.classes}
    trainer = Trainer.from_config(parts, run, ctx, cfg, evaluate, "top1", metadata)
    fit(trainer, loaders, checkpoint, model, f"{len(train_set.classes)} classes")
    if train_set.num_skipped or val_set.num_skipped:
        logger.warning(
            "Skipped %d unreadable training and %d validation images (listed above)",
            train_set.num_skipped,
            val_set.num_skipped,
        )


def main() -> None:
    """`detect-tricks train-cls` and `python tools/train_cls.py`."""
    run_tool(functools.partial(launch, ClsConfig, train, __doc__))


if __name__ == "__main__":
    main()
