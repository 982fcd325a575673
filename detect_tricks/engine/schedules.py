"""Learning rate as a pure function of the iteration.

Bag of Tricks (He et al. 2019) §3.1 (linear warmup from 0 over the first epochs) and
§5.1 (cosine decay `lr * (1 + cos(pi * t / T)) / 2`), stepped per iteration as GluonCV's
`LRScheduler` does; step and poly decay for the baselines. Each decay is a small pure
function; `build_lr_schedule` picks one once, so the training loop only calls it.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable

from detect_tricks.core.config import ScheduleConfig
from detect_tricks.core.errors import ConfigError

LRSchedule = Callable[[int], float]

logger = logging.getLogger(__name__)


def warmup_lr(base_lr: float, iteration: int, warmup_iters: int) -> float:
    """Linear ramp from 0 at iteration 0 to `base_lr` at `warmup_iters`."""
    return base_lr * iteration / warmup_iters


def step_lr(base_lr: float, iteration: int, boundaries: list[int], factor: float) -> float:
    """`base_lr * factor**k`, k the number of boundaries (iterations) already reached."""
    return base_lr * factor ** bisect.bisect_right(boundaries, iteration)


def cosine_lr(base_lr: float, t: int, total: int, min_lr: float) -> float:
    """`min_lr + (base_lr - min_lr) * (1 + cos(pi * t / total)) / 2`, t counted after warmup."""
    t = min(t, total)
    return min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * t / total)) / 2


def poly_lr(base_lr: float, t: int, total: int, min_lr: float, power: float) -> float:
    """`min_lr + (base_lr - min_lr) * (1 - t / total) ** power`, t counted after warmup."""
    t = min(t, total)
    return min_lr + (base_lr - min_lr) * (1 - t / total) ** power


def build_lr_schedule(
    cfg: ScheduleConfig, base_lr: float, iters_per_epoch: int, epochs: int
) -> LRSchedule:
    """The per-iteration LR of a run of `epochs` epochs of `iters_per_epoch` steps.

    Step boundaries are epochs counted from the start of training (warmup included), as
    in GluonCV; cosine and poly run from the end of warmup to the last iteration.
    """
    total = epochs * iters_per_epoch
    warmup_iters = round(cfg.warmup_epochs * iters_per_epoch)
    if warmup_iters >= total:
        raise ConfigError(
            f"schedule.warmup_epochs={cfg.warmup_epochs} covers the whole run of {epochs} "
            "epochs; it must be shorter than train.epochs"
        )
    if cfg.name == "step":
        late = [step for step in cfg.steps if step >= epochs]
        if late:
            logger.warning(
                "schedule.steps %s come at or after the run's end (train.epochs=%d): "
                "those decays never happen",
                late,
                epochs,
            )
        boundaries = [epoch * iters_per_epoch for epoch in cfg.steps]

        def decay(iteration: int) -> float:
            return step_lr(base_lr, iteration, boundaries, cfg.factor)

    elif cfg.name == "cosine":

        def decay(iteration: int) -> float:
            return cosine_lr(base_lr, iteration - warmup_iters, total - warmup_iters, cfg.min_lr)

    else:

        def decay(iteration: int) -> float:
            t = iteration - warmup_iters
            return poly_lr(base_lr, t, total - warmup_iters, cfg.min_lr, cfg.power)

    def schedule(iteration: int) -> float:
        if iteration < warmup_iters:
            return warmup_lr(base_lr, iteration, warmup_iters)
        return decay(iteration)

    return schedule
