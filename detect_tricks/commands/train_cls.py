"""Train a classifier with the Bag of Tricks recipe on an ImageFolder / ImageNet layout.

python tools/train_cls.py --config configs/cls/resnet18_d_flowers5_tricks.yaml
python tools/train_cls.py --out runs/resnet18_d_flowers5_tricks --resume
torchrun --nproc_per_node=8 tools/train_cls.py --config configs/cls/resnet50_d_mixup.yaml
"""

from __future__ import annotations

import functools

from detect_tricks.classify import build_datasets, build_objective, collate, evaluate_classifier
from detect_tricks.config import ClsConfig
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
from detect_tricks.models import build_classifier
from detect_tricks.utils.distributed import DistContext


def train(cfg: ClsConfig, run: RunDirectory, ctx: DistContext, checkpoint: dict | None) -> None:
    start_process(cfg, ctx)
    train_set, val_set = build_datasets(cfg)
    require_num_classes(cfg.model.num_classes, train_set.classes, str(train_set.root))
    loaders = build_loaders(train_set, val_set, collate, cfg, ctx)
    model = build_classifier(cfg.model)
    objective = build_objective(cfg, ctx)
    parts = build_train_parts(model, objective, cfg, ctx, loaders.sampler.batches_per_epoch)
    evaluate = functools.partial(
        evaluate_classifier,
        loader=loaders.val,
        ctx=ctx,
        autocast=parts.autocast,
        channels_last=cfg.train.channels_last,
    )
    evaluation = Evaluation(evaluate, cfg.eval.interval, "top1")
    metadata = {"classes": train_set.classes}
    trainer = Trainer(parts, run, ctx, cfg, evaluation, metadata)
    details = f"{len(train_set.classes)} classes"
    fit(trainer, loaders, checkpoint, model, details)


def main() -> None:
    """`detect-tricks train-cls` and `python tools/train_cls.py`."""
    run_tool(functools.partial(launch, ClsConfig, train, __doc__))


if __name__ == "__main__":
    main()
