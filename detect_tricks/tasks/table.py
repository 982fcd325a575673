"""The two tasks as objects (`engine/task.py`'s protocol), and `TASKS` by name.

Each gathers what its task is, from the modules that do the work: detection from
`tasks/detection.py` (sources, objective, COCO evaluation) and `inference/detector.py` (loading a
trained detector, the picture of predictions), classification from `tasks/classification.py`. The
training commands, the ablation ladders and the checkpoints' `task` field use these.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from torch import nn

from detect_tricks.core.config import ClsConfig, DetConfig
from detect_tricks.data.detection import collate_detection
from detect_tricks.engine.evaluation import Evaluation
from detect_tricks.engine.parts import Objective, TrainParts
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.task import Task, TaskData
from detect_tricks.inference.detector import Detector, save_prediction_grid
from detect_tricks.models import build_classifier, build_detector
from detect_tricks.tasks.classification import (
    build_datasets as build_cls_datasets,
)
from detect_tricks.tasks.classification import (
    build_objective as build_cls_objective,
)
from detect_tricks.tasks.classification import (
    collate,
    evaluate_classifier,
    load_trained_classifier,
)
from detect_tricks.tasks.detection import (
    build_datasets,
    build_objective,
    build_precise_bn,
    build_shape_schedule,
    build_train_sample_loader,
    evaluate_detector,
    input_sizes,
    with_train_sample,
)
from detect_tricks.utils.distributed import DistContext


class DetectionTask:
    """YOLOv3 on COCO or VOC data (`tools/train_det.py`)."""

    name = "det"
    config_class = DetConfig
    tool = "detect_tricks.commands.train_det"
    best_metric = "AP"
    metric_names = ("AP", "AP50", "AP75")

    def build_data(self, cfg: DetConfig, ctx: DistContext) -> TaskData:
        train_set, val_set = build_datasets(cfg)
        source = train_set.source
        return TaskData(
            train_set,
            val_set,
            collate_detection,
            source.class_names,
            source.source,
            build_shape_schedule(cfg),
        )

    def build_model(self, cfg: DetConfig) -> nn.Module:
        return build_detector(cfg.model, cfg.tricks)

    def build_objective(self, cfg: DetConfig, ctx: DistContext) -> Objective:
        return build_objective(cfg)

    def build_evaluation(
        self, cfg: DetConfig, data: TaskData, val_loader: Any, parts: TrainParts, ctx: DistContext
    ) -> Evaluation:
        """COCO AP on the validation set (and on a sample of the training images with
        `eval.train_images`), after precise BN when on."""
        evaluate = functools.partial(
            evaluate_detector,
            loader=val_loader,
            ctx=ctx,
            source=data.val.source,
            cfg=cfg.eval,
            runtime=parts.runtime,
        )
        train_source = data.train.source
        evaluate = with_train_sample(evaluate, build_train_sample_loader(cfg, train_source, ctx))
        precise_bn = build_precise_bn(cfg, train_source, ctx, parts.runtime)
        return Evaluation(evaluate, cfg.eval.interval, self.best_metric, precise_bn)

    def metadata(self, data: TaskData) -> dict[str, Any]:
        source = data.train.source
        return {"class_names": source.class_names, "category_ids": source.category_ids}

    def describe(self, cfg: DetConfig, data: TaskData) -> str:
        sizes = "/".join(map(str, input_sizes(cfg)))
        return f"{cfg.model.num_classes} classes, input {sizes} px"

    def after_training(
        self, cfg: DetConfig, data: TaskData, parts: TrainParts, run: RunDirectory
    ) -> None:
        """A picture of the evaluated model's predictions on the first validation images."""
        save_prediction_grid(
            parts.evaluated, data.val.source, cfg, run.plots / "val_predictions.png"
        )

    def load_trained(self, path: str | Path) -> tuple[nn.Module, DetConfig, dict[str, Any]]:
        detector = Detector.from_checkpoint(path, device="cpu")
        meta = {"class_names": detector.class_names, "category_ids": detector.category_ids}
        return detector.model, detector.config, meta


class ClassificationTask:
    """A ResNet on an ImageFolder / ImageNet layout (`tools/train_cls.py`)."""

    name = "cls"
    config_class = ClsConfig
    tool = "detect_tricks.commands.train_cls"
    best_metric = "top1"
    metric_names = ("top1", "top5")

    def build_data(self, cfg: ClsConfig, ctx: DistContext) -> TaskData:
        train_set, val_set = build_cls_datasets(cfg)
        return TaskData(train_set, val_set, collate, train_set.classes, str(train_set.root))

    def build_model(self, cfg: ClsConfig) -> nn.Module:
        return build_classifier(cfg.model)

    def build_objective(self, cfg: ClsConfig, ctx: DistContext) -> Objective:
        return build_cls_objective(cfg, ctx)

    def build_evaluation(
        self, cfg: ClsConfig, data: TaskData, val_loader: Any, parts: TrainParts, ctx: DistContext
    ) -> Evaluation:
        evaluate = functools.partial(
            evaluate_classifier,
            loader=val_loader,
            ctx=ctx,
            runtime=parts.runtime,
        )
        return Evaluation(evaluate, cfg.eval.interval, self.best_metric)

    def metadata(self, data: TaskData) -> dict[str, Any]:
        return {"classes": data.class_names}

    def describe(self, cfg: ClsConfig, data: TaskData) -> str:
        return f"{len(data.class_names)} classes"

    def after_training(
        self, cfg: ClsConfig, data: TaskData, parts: TrainParts, run: RunDirectory
    ) -> None:
        """Nothing beyond the run directory's curves."""

    def load_trained(self, path: str | Path) -> tuple[nn.Module, ClsConfig, dict[str, Any]]:
        return load_trained_classifier(path)


DETECTION: Task = DetectionTask()
CLASSIFICATION: Task = ClassificationTask()
TASKS: dict[str, Task] = {task.name: task for task in (DETECTION, CLASSIFICATION)}
