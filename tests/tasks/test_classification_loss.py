"""Classification tricks, exact math: label smoothing, mixup, distillation (DESIGN §4)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from detect_tricks.data.mixup import mix_batch
from detect_tricks.tasks.classification_loss import (
    distillation_loss,
    smoothed_targets,
    soft_cross_entropy,
)


def test_smoothed_targets_exact_values():
    q = smoothed_targets(torch.tensor([2, 0]), num_classes=4, eps=0.1)
    expected = torch.tensor([[0.025, 0.025, 0.925, 0.025], [0.925, 0.025, 0.025, 0.025]])
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-7)
    assert torch.equal(smoothed_targets(torch.tensor([1]), 3, 0.0), torch.tensor([[0.0, 1, 0]]))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch_cross_entropy(eps):
    torch.manual_seed(0)
    logits, labels = torch.randn(7, 5), torch.randint(0, 5, (7,))
    ours = soft_cross_entropy(logits, smoothed_targets(labels, 5, eps))
    torch.testing.assert_close(ours, F.cross_entropy(logits, labels, label_smoothing=eps))


def test_mixup_with_a_known_lambda():
    images = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2)
    targets = torch.eye(3)
    mixed_images, mixed_targets = mix_batch(images, targets, lam=0.7)
    torch.testing.assert_close(mixed_images, 0.7 * images + 0.3 * images.flip(0))
    torch.testing.assert_close(mixed_targets[0], torch.tensor([0.7, 0.0, 0.3]))
    # odd batch: the middle sample is its own partner
    torch.testing.assert_close(mixed_images[1], images[1])
    torch.testing.assert_close(mixed_targets[1], torch.tensor([0.0, 1.0, 0.0]))


def test_mixup_lambda_one_leaves_the_batch_unchanged():
    images, targets = torch.randn(4, 3, 5, 5), torch.eye(4)
    mixed_images, mixed_targets = mix_batch(images, targets, lam=1.0)
    assert torch.equal(mixed_images, images) and torch.equal(mixed_targets, targets)


def test_distillation_is_zero_when_the_student_equals_the_teacher():
    logits = torch.randn(6, 10)
    assert distillation_loss(logits, logits.clone(), temperature=20.0).abs().item() < 1e-6


def test_distillation_is_t_squared_times_kl_of_the_softened_distributions():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    for temperature in (1.0, 4.0, 20.0):
        p = torch.softmax(teacher / temperature, 1)
        kl = (p * (p.log() - torch.log_softmax(student / temperature, 1))).sum(1).mean()
        expected = temperature**2 * kl
        assert distillation_loss(student, teacher, temperature).item() == pytest.approx(
            expected.item(), rel=1e-5
        )


def test_distillation_gradient_equals_that_of_the_papers_cross_entropy_form():
    torch.manual_seed(2)
    teacher = torch.randn(3, 5)
    student = torch.randn(3, 5, requires_grad=True)
    distillation_loss(student, teacher, 4.0).backward()
    ours = student.grad.clone()
    student.grad = None
    p_t = torch.softmax(teacher / 4.0, 1)
    ce = -(p_t * torch.log_softmax(student / 4.0, 1)).sum(1).mean() * 16.0
    ce.backward()
    torch.testing.assert_close(ours, student.grad)
    assert not math.isclose(ce.item(), distillation_loss(student, teacher, 4.0).item())
