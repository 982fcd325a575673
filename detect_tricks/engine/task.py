"""What a task is, as the engine sees it: one object per task (`detect_tricks/tasks/table.py`
builds them), the way YOLOX's `Exp` and detectron2's `DefaultTrainer.build_*` gather a
task's parts. The engine's `train(task, ...)` (`engine/launch.py`) is written once
against this protocol; a third task is a third object, not a third copy of the wiring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn
from torch.utils.data import Dataset

from detect_tricks.engine.evaluation import Evaluation
from detect_tricks.engine.parts import Objective, TrainParts
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.utils.distributed import DistContext


@dataclass(frozen=True)
class TaskData:
    """A task's datasets and what the engine needs to know of them."""

    train: Dataset
    val: Dataset
    collate: Callable[[list[Any]], Any]
    class_names: list[str]
    origin: str  # where the classes were read (for messages)
    size_schedule: Callable[[int], int] | None = None  # random shapes: iteration -> size


class Task(Protocol):
    """One task: its config class, data, model, objective, evaluation and checkpoints."""

    name: str  # "det" or "cls": stored in every checkpoint as metadata["task"]
    config_class: type
    tool: str  # the module of its training command, run by the ablation ladders
    best_metric: str  # higher is better; picks best.pt
    metric_names: tuple[str, ...]  # the headline metrics of its ladders

    def build_data(self, cfg: Any, ctx: DistContext) -> TaskData: ...

    def build_model(self, cfg: Any) -> nn.Module: ...

    def build_objective(self, cfg: Any, ctx: DistContext) -> Objective: ...

    def build_evaluation(
        self, cfg: Any, data: TaskData, val_loader: Any, parts: TrainParts, ctx: DistContext
    ) -> Evaluation: ...

    def metadata(self, data: TaskData) -> dict[str, Any]: ...

    def describe(self, cfg: Any, data: TaskData) -> str: ...

    def after_training(
        self, cfg: Any, data: TaskData, parts: TrainParts, run: RunDirectory
    ) -> None: ...

    def load_trained(self, path: str | Path) -> tuple[nn.Module, Any, dict[str, Any]]: ...
