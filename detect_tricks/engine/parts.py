"""What a training run is made of (`TrainParts`) and where it is (`TrainState`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from detect_tricks.engine.ema import ModelEma
from detect_tricks.engine.schedules import LRSchedule
from detect_tricks.utils.runtime import Runtime

# objective(model, images, targets, epoch) -> {"loss": backpropagated, other terms: logged}
Objective = Callable[[nn.Module, torch.Tensor, Any, int], dict[str, torch.Tensor]]


@dataclass
class TrainState:
    """Where the run is; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of `epoch` already trained
    iteration: int = 0  # batches trained since the start
    images_seen: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    wall_seconds: float = 0.0  # training time over all sessions of the run
    # The epoch just trained is saved but not yet evaluated (a crash in its evaluation
    # loses no training: resume evaluates it first).
    evaluation_pending: bool = False

    def record(self, value: float | None, epoch: int) -> bool:
        """Keep `value` as the best metric if it beats it (higher is better); True if so."""
        if value is None or (self.best_metric is not None and value <= self.best_metric):
            return False
        self.best_metric, self.best_epoch = value, epoch
        return True


@dataclass
class TrainParts:
    """The objects one training run is made of."""

    model: nn.Module  # what the step calls: the DDP wrapper when distributed
    module: nn.Module  # the bare model: its state is what gets saved
    objective: Objective
    optimizer: torch.optim.Optimizer
    lr_schedule: LRSchedule
    scaler: torch.amp.GradScaler
    runtime: Runtime  # the device, autocast and memory format of every forward pass
    ema: ModelEma | None = None

    @property
    def evaluated(self) -> nn.Module:
        """The model that evaluations and the saved predictions use: the EMA when on."""
        return self.ema.module if self.ema is not None else self.module
