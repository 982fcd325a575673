"""A training run's state to and from a checkpoint dict: everything needed to continue it
bit for bit. The format, and reading and writing the file, are `utils/checkpoint.py`'s.

The checkpoint holds the model, optimizer, grad scaler and EMA states, the `TrainState`,
the learning rate, the RNG state of every process, the config and the task's metadata
(its task and class names). It is written atomically to `last.pt` (and copied to
`best.pt`) after every epoch, every `train.checkpoint_interval` iterations and on a stop
signal (docs/design.md, "Resume").
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from detect_tricks.core.config_loader import config_to_dict
from detect_tricks.core.errors import CheckpointError
from detect_tricks.engine.parts import TrainParts, TrainState
from detect_tricks.utils.checkpoint import (
    CHECKPOINT_FORMAT,
    capture_rng_state,
    require_training_checkpoint,
    restore_rng_state,
)
from detect_tricks.utils.distributed import DistContext, all_gather_objects

logger = logging.getLogger(__name__)


def training_checkpoint(
    parts: TrainParts, state: TrainState, config: Any, metadata: dict[str, Any], ctx: DistContext
) -> dict[str, Any]:
    """The run's checkpoint dict; every process must call this (it gathers their RNGs)."""
    rng = all_gather_objects(capture_rng_state(), ctx)
    return {
        "format": CHECKPOINT_FORMAT,
        "model": parts.module.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "ema": parts.ema.state_dict() if parts.ema is not None else None,
        "state": dataclasses.asdict(state),
        "lr": parts.lr_schedule(state.iteration),
        "rng": rng,
        "config": config_to_dict(config),
        "metadata": metadata,
    }


def restore_training_checkpoint(
    parts: TrainParts, checkpoint: dict[str, Any], ctx: DistContext
) -> TrainState:
    """Load a checkpoint of `training_checkpoint` into `parts` and this process's RNGs."""
    require_training_checkpoint(checkpoint, "the checkpoint to resume")
    parts.module.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint["scaler"]:
        parts.scaler.load_state_dict(checkpoint["scaler"])
    if parts.ema is not None:
        if checkpoint["ema"] is None:
            raise CheckpointError("train.ema is on but the checkpoint holds no EMA weights")
        parts.ema.load_state_dict(checkpoint["ema"])
    rng = checkpoint["rng"]
    if len(rng) != ctx.world_size:
        logger.warning(
            "The checkpoint was written by %d processes and this job has %d: the run "
            "continues, but not bit-for-bit as it would have.",
            len(rng),
            ctx.world_size,
        )
    restore_rng_state(rng[min(ctx.rank, len(rng) - 1)])
    return TrainState(**checkpoint["state"])
