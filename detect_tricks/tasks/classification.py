"""The classification task: datasets, the training objective with its tricks, evaluation.

The objective applies, in this order, label smoothing (§5.2) to the targets, mixup
(§5.4) to images and targets while it is on, and knowledge distillation (§5.3) from a
frozen teacher that sees the same (mixed) images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from detect_tricks.core.config import ClsConfig, ClsTricksConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.data.cls_transforms import (
    ClassificationEvalTransform,
    ClassificationTrainTransform,
)
from detect_tricks.data.folder import ImageFolderDataset
from detect_tricks.data.mixup import mix_batch, sample_lambda
from detect_tricks.models import build_classifier
from detect_tricks.models.resnet import ResNet
from detect_tricks.models.weights import load_weights
from detect_tricks.tasks.classification_loss import (
    distillation_loss,
    smoothed_targets,
    soft_cross_entropy,
)
from detect_tricks.utils.checkpoint import load_trained
from detect_tricks.utils.distributed import DistContext, all_reduce_sum
from detect_tricks.utils.runtime import Runtime

logger = logging.getLogger(__name__)


def build_datasets(config: ClsConfig) -> tuple[ImageFolderDataset, ImageFolderDataset]:
    """The training and validation splits under `data.root`, sharing one class list, every
    image checked once before training."""
    cfg = config.data
    root = Path(cfg.root)
    train = ImageFolderDataset(
        root / cfg.train_split,
        ClassificationTrainTransform(
            cfg.train_size, cfg.color_jitter, cfg.lighting, tuple(cfg.crop_area)
        ),
        skip_bad_images=cfg.skip_bad_images,
    )
    val = ImageFolderDataset(
        root / cfg.val_split,
        ClassificationEvalTransform(cfg.eval_size, cfg.eval_crop_ratio),
        classes=train.classes,
        skip_bad_images=cfg.skip_bad_images,
    )
    return train.checked(), val.checked()


def collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*samples, strict=True)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


class ClassificationObjective:
    """Cross-entropy against smoothed, mixed targets, plus distillation when a teacher
    is given. Returns `loss`, `loss_cls` (and `loss_kd`).

    Args:
        num_classes: K.
        tricks: label smoothing eps, mixup alpha and its last epoch, distillation T and w.
        epochs: length of the run (mixup is off for its last `mixup_off_epochs`).
        teacher: a frozen model in eval mode, or None.
    """

    def __init__(
        self,
        num_classes: int,
        tricks: ClsTricksConfig,
        epochs: int,
        teacher: nn.Module | None = None,
    ) -> None:
        self.num_classes = num_classes
        self.eps = tricks.label_smoothing
        self.mixup_alpha = tricks.mixup_alpha if tricks.mixup else 0.0
        self.mixup_until = epochs - tricks.mixup_off_epochs
        self.teacher = teacher
        self.temperature = tricks.distill_temperature
        self.hard_weight = tricks.distill_hard_weight

    def __call__(
        self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epoch: int
    ) -> dict[str, torch.Tensor]:
        targets = smoothed_targets(labels, self.num_classes, self.eps)
        if self.mixup_alpha and epoch < self.mixup_until:
            images, targets = mix_batch(images, targets, sample_lambda(self.mixup_alpha))
        logits = model(images)
        hard = soft_cross_entropy(logits, targets)
        if self.teacher is None:
            return {"loss": hard, "loss_cls": hard}
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        soft = distillation_loss(logits, teacher_logits, self.temperature)
        total = self.hard_weight * hard + (1 - self.hard_weight) * soft
        return {"loss": total, "loss_cls": hard, "loss_kd": soft}


def load_trained_classifier(path: str | Path) -> tuple[ResNet, ClsConfig, dict[str, Any]]:
    """A model trained by tools/train_cls.py, in eval mode, with its config and metadata.

    The evaluated weights are loaded: the EMA when the run had one.
    """
    trained = load_trained(path, "cls")
    cfg = config_from_dict(trained.config, ClsConfig, source=f"the config in {path}")
    cfg.model.weights = ""
    model = build_classifier(cfg.model)
    load_weights(model, trained.weights, str(path))
    return model.eval(), cfg, trained.metadata


def build_objective(cfg: ClsConfig, ctx: DistContext) -> ClassificationObjective:
    """The run's loss: smoothing and mixup per `tricks`, with the distillation teacher
    (loaded onto this process's device) when `tricks.distill` is on."""
    runtime = Runtime(ctx.device, channels_last=cfg.train.channels_last)
    teacher = build_teacher(cfg.tricks, runtime) if cfg.tricks.distill else None
    return ClassificationObjective(cfg.model.num_classes, cfg.tricks, cfg.train.epochs, teacher)


def build_teacher(tricks: ClsTricksConfig, runtime: Runtime) -> nn.Module:
    """The frozen distillation teacher (§5.3), on the student's device and memory format."""
    teacher, teacher_cfg, _ = load_trained_classifier(tricks.distill_teacher)
    logger.info(
        "Distilling from %s (%s, T=%g, hard weight %g)",
        tricks.distill_teacher,
        teacher_cfg.model.arch,
        tricks.distill_temperature,
        tricks.distill_hard_weight,
    )
    return teacher.requires_grad_(False).to(runtime.device, memory_format=runtime.memory_format)


@torch.inference_mode()
def evaluate_classifier(
    model: nn.Module,
    loader: torch.utils.data.DataLoader,
    ctx: DistContext,
    runtime: Runtime | None = None,
) -> dict[str, float]:
    """Top-1, top-5 (top-K when K < 5) accuracy and mean cross-entropy, over all processes."""
    was_training = model.training
    model.eval()
    runtime = runtime or Runtime(ctx.device)
    totals = torch.zeros(4, dtype=torch.float64, device=ctx.device)  # loss, top1, top5, count
    for images, labels in loader:
        images = runtime.images(images)
        labels = labels.to(ctx.device)
        with runtime.autocast():
            logits = model(images)
        logits = logits.float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == labels.unsqueeze(1)
        totals += torch.stack(
            [
                F.cross_entropy(logits, labels, reduction="sum").double(),
                hits[:, 0].sum().double(),
                hits.any(dim=1).sum().double(),
                torch.tensor(float(len(labels)), dtype=torch.float64, device=ctx.device),
            ]
        )
    loss, top1, top5, count = all_reduce_sum(totals, ctx).tolist()
    model.train(was_training)
    return {"top1": top1 / count, "top5": top5 / count, "loss": loss / count}
