"""The classification objective (smoothing + mixup + distillation) and evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detect_tricks.core.config import ClsTricksConfig
from detect_tricks.tasks.classification import ClassificationObjective, evaluate_classifier
from detect_tricks.utils.distributed import DistContext


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _batch():
    torch.manual_seed(3)
    return torch.randn(5, 6), torch.randint(0, 4, (5,))


def test_without_tricks_the_objective_is_cross_entropy():
    model, (images, labels) = _Linear(), _batch()
    losses = ClassificationObjective(4, ClsTricksConfig(), epochs=3)(model, images, labels, 0)
    torch.testing.assert_close(losses["loss"], F.cross_entropy(model(images), labels))
    assert set(losses) == {"loss", "loss_cls"}


def test_mixup_is_off_for_the_last_epochs():
    model, (images, labels) = _Linear(), _batch()
    tricks = ClsTricksConfig(mixup=True, mixup_alpha=0.2, mixup_off_epochs=2)
    objective = ClassificationObjective(4, tricks, epochs=5)
    plain = F.cross_entropy(model(images), labels)
    torch.manual_seed(0)
    assert objective(model, images, labels, epoch=2)["loss"].item() != pytest.approx(plain.item())
    torch.testing.assert_close(objective(model, images, labels, epoch=3)["loss"], plain)


def test_distillation_with_hard_weight_one_is_plain_cross_entropy():
    model, teacher, (images, labels) = _Linear(), nn.Linear(6, 4), _batch()
    tricks = ClsTricksConfig(distill=True, distill_teacher="t.pt", distill_hard_weight=1.0)
    losses = ClassificationObjective(4, tricks, epochs=1, teacher=teacher)(model, images, labels, 0)
    torch.testing.assert_close(losses["loss"], F.cross_entropy(model(images), labels))
    assert losses["loss_kd"] > 0


def test_distillation_mixes_hard_and_soft_terms():
    model, teacher, (images, labels) = _Linear(), nn.Linear(6, 4), _batch()
    tricks = ClsTricksConfig(
        label_smoothing=0.1,
        distill=True,
        distill_teacher="t.pt",
        distill_temperature=2.0,
        distill_hard_weight=0.3,
    )
    losses = ClassificationObjective(4, tricks, epochs=1, teacher=teacher)(model, images, labels, 0)
    hard = F.cross_entropy(model(images), labels, label_smoothing=0.1)
    p_t = torch.softmax(teacher(images) / 2.0, 1)
    soft = 4.0 * (p_t * (p_t.log() - torch.log_softmax(model(images) / 2.0, 1))).sum(1).mean()
    torch.testing.assert_close(losses["loss"], 0.3 * hard + 0.7 * soft)


def test_evaluate_counts_top1_top5_and_loss():
    class Fixed(nn.Module):
        def forward(self, x):
            return x  # the "logits" are the inputs

    logits = torch.tensor(
        [[9.0, 1, 2, 3, 4, 5, 6], [1.0, 9, 2, 3, 4, 5, 6], [0.0, 1, 2, 3, 4, 5, 6]]
    )
    labels = torch.tensor([0, 2, 0])  # hit, second-worst (not in top 5), last
    loader = [(logits[:2], labels[:2]), (logits[2:], labels[2:])]
    metrics = evaluate_classifier(Fixed(), loader, DistContext())
    assert metrics["top1"] == pytest.approx(1 / 3)
    assert metrics["top5"] == pytest.approx(1 / 3)
    assert metrics["loss"] == pytest.approx(F.cross_entropy(logits, labels).item())
