"""The classification losses of the Bag of Tricks, each with an exact test against
docs/design.md §4: label-smoothed and soft-target cross-entropy (§5.2), distillation
(§5.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_targets(labels: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    """`q = 1 - eps + eps / K` for the true class and `eps / K` for the others (§5.2)."""
    q = torch.full((labels.shape[0], num_classes), eps / num_classes, device=labels.device)
    return q.scatter_(1, labels.unsqueeze(1), 1 - eps + eps / num_classes)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of `-sum_k q_k log softmax(z)_k` for target distributions q."""
    return -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """`T^2 * KL(softmax(r / T) || softmax(z / T))`, the mean over the batch (§5.3).

    The paper writes the cross-entropy `T^2 * CE(softmax(r/T), softmax(z/T))`; KL is
    that minus the teacher's entropy, a constant for the student: the same gradients,
    and 0 when the student matches the teacher.
    """
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
    return temperature**2 * kl
