"""Training a task, written once for every task (`engine/task.py`): process start,
loaders, the run.

`train(task, cfg, run, ctx, checkpoint)` asks the task for its data, model, objective
and evaluation and trains; `launch` wraps it with the command line, the process group
and the run directory, and `fit` resumes (when asked), says what is about to run,
trains, and counts the images it skipped (`data.skip_bad_images`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import DataLoader, Dataset

from detect_tricks.core.config import HasTrainSections
from detect_tricks.core.errors import ConfigError
from detect_tricks.data.sampling import TrainBatchSampler
from detect_tricks.engine.cli import open_run_directory, resolve_config, train_arg_parser
from detect_tricks.engine.optim import scaled_lr
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.setup import (
    build_eval_loader,
    build_loader,
    build_train_parts,
    configure_device,
    resolve_workers,
    seed_everything,
)
from detect_tricks.engine.task import Task
from detect_tricks.engine.trainer import Trainer
from detect_tricks.utils.distributed import DistContext, distributed_job

logger = logging.getLogger(__name__)


def launch(task: Task, description: str) -> None:
    """A training tool's `main`: arguments, config, process group, run directory, train."""
    args = train_arg_parser(description).parse_args()
    cfg, out, checkpoint = resolve_config(args, task.config_class, task.name)
    with distributed_job(cfg.train.device) as ctx:
        run = open_run_directory(out, args, ctx)
        if cfg.train.tensorboard:
            run.open_tensorboard()
        try:
            train(task, cfg, run, ctx, checkpoint)
        finally:
            run.close()


def train(
    task: Task, cfg: Any, run: RunDirectory, ctx: DistContext, checkpoint: dict | None
) -> str:
    """Train `task` with `cfg` into `run` (resuming `checkpoint` when given): data,
    loaders, model, objective, optimizer and schedule, evaluation, the loop. Returns the
    fit status (`finished` or `interrupted`)."""
    start_process(cfg, ctx)
    data = task.build_data(cfg, ctx)
    require_num_classes(cfg.model.num_classes, data.class_names, data.origin)
    loaders = build_loaders(data.train, data.val, data.collate, cfg, ctx, data.size_schedule)
    model = task.build_model(cfg)
    objective = task.build_objective(cfg, ctx)
    parts = build_train_parts(model, objective, cfg, ctx, loaders.sampler.batches_per_epoch)
    evaluation = task.build_evaluation(cfg, data, loaders.val, parts, ctx)
    metadata = {"task": task.name, **task.metadata(data)}
    trainer = Trainer(parts, run, ctx, cfg, evaluation, metadata)
    status = fit(trainer, loaders, checkpoint, model, task.describe(cfg, data))
    if status == "finished" and ctx.is_main:
        task.after_training(cfg, data, parts, run)
    return status


def require_num_classes(configured: int, names: list[str], source: str) -> None:
    """A clear error when `model.num_classes` disagrees with the data."""
    if configured != len(names):
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise ConfigError(
            f"'model.num_classes' is {configured} but {source} has {len(names)} classes ({shown})"
        )


def start_process(cfg: HasTrainSections, ctx: DistContext) -> None:
    """Seed this process (the seed plus its rank) and set up its device."""
    seed_everything(cfg.train.seed + ctx.rank)
    configure_device(ctx.device)


@dataclass
class Loaders:
    train: DataLoader
    sampler: TrainBatchSampler
    val: DataLoader


def build_loaders(
    train_set: Dataset,
    val_set: Dataset,
    collate: Callable[[list[Any]], Any],
    cfg: HasTrainSections,
    ctx: DistContext,
    size_schedule: Callable[[int], int] | None = None,
) -> Loaders:
    """This process's shard of the training batches (resumable) and of the validation set."""
    train = cfg.train
    sampler = TrainBatchSampler(
        len(train_set), train.batch_size, ctx.rank, ctx.world_size, train.seed, size_schedule
    )
    workers = resolve_workers(train.workers, ctx)
    if train.workers == "auto":
        logger.info("train.workers auto: %d loader workers per process on %s", workers, ctx.device)
    return Loaders(
        build_loader(train_set, sampler, workers, collate, train.seed, ctx.device),
        sampler,
        build_eval_loader(val_set, cfg.eval.batch_size, workers, collate, ctx),
    )


def fit(
    trainer: Trainer,
    loaders: Loaders,
    checkpoint: dict | None,
    model: nn.Module,
    details: str,
) -> str:
    """Resume from `checkpoint` if given, log what runs, train; returns the fit status."""
    if checkpoint is not None:
        trainer.resume(checkpoint)
    cfg, ctx = trainer.config, trainer.ctx
    logger.info(
        "%s (%.2f M parameters) | %s | train %d images, val %d | %d iterations/epoch x %d "
        "epochs, batch %d over %d process(es) | lr %.4g | %s, amp %s | run dir %s",
        cfg.model.arch,
        sum(p.numel() for p in model.parameters()) / 1e6,
        details,
        len(loaders.train.dataset),
        len(loaders.val.dataset),
        loaders.sampler.batches_per_epoch,
        cfg.train.epochs,
        cfg.train.batch_size,
        ctx.world_size,
        scaled_lr(cfg.optim, cfg.train.batch_size),
        ctx.device,
        cfg.train.amp,
        trainer.run.root,
    )
    status = trainer.fit(loaders.train, loaders.sampler)
    skipped = [getattr(d, "num_skipped", 0) for d in (loaders.train.dataset, loaders.val.dataset)]
    if any(skipped):
        logger.warning(
            "Skipped %d unreadable training and %d validation images (listed above)", *skipped
        )
    return status
