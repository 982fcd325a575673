"""Loss functions of both tasks, each with an exact test against docs/design.md §3-4.

Classification (Bag of Tricks): label-smoothed and soft-target cross-entropy (§5.2),
distillation (§5.3). Detection (Bag of Freebies): the YOLOv3 loss with sigmoid label
smoothing and per-box mixup weights (GluonCV `YOLOV3Loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detect_tricks.assign import (
    Grid,
    assign_targets,
    build_grid,
    decode_boxes,
    flatten_predictions,
    ignore_mask,
)


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


def sigmoid_smoothing_eps(num_classes: int) -> float:
    """Bag of Freebies §3.3 sigmoid label smoothing as GluonCV does it (after PR 745):
    `eps = min(1 / C, 1 / 40)`, targets `1 - eps` for the class and `eps` for the others."""
    return min(1.0 / num_classes, 1.0 / 40)


class YOLOv3Loss:
    """The four YOLOv3 terms of GluonCV's `YOLOV3Loss`, summed per image, mean over images.

    - objectness: BCE with logits, target 1 at positives (weight = mixup weight), 0
      elsewhere (weight 1), weight 0 where a prediction overlaps a ground truth by more
      than `ignore_iou` (dynamic ignore);
    - centre: BCE with logits on `t_xy`, scale: L1 on `t_wh`, both weighted by
      `(2 - w * h / (W * H)) * mixup weight`;
    - class: BCE with logits over the C classes at positives, weighted by the mixup
      weight; targets 1/0, or `1 - eps`/`eps` with label smoothing.

    Returns `loss` (the unweighted sum), the four terms, and `collisions` (boxes that
    lost their cell and anchor to another box), as a dict.

    Args:
        num_classes: C.
        anchors: (3, 3, 2) anchor sizes in pixels, strides 8, 16, 32.
        strides: the levels' strides.
        label_smoothing: the switch for sigmoid label smoothing.
        ignore_iou: the dynamic-ignore threshold (0.7).
    """

    def __init__(
        self,
        num_classes: int,
        anchors: torch.Tensor,
        strides: tuple[int, ...] = (8, 16, 32),
        label_smoothing: bool = False,
        ignore_iou: float = 0.7,
    ) -> None:
        self.num_classes = num_classes
        self.anchors = anchors
        self.strides = strides
        self.eps = sigmoid_smoothing_eps(num_classes) if label_smoothing else 0.0
        self.ignore_iou = ignore_iou
        # Built once per input size and device (random shapes use about ten sizes):
        # rebuilding them each step would copy the anchors and level tables to the device.
        self._grids: dict[tuple[tuple[int, int], torch.device], tuple[torch.Tensor, Grid]] = {}

    def __call__(
        self,
        outputs: list[torch.Tensor],
        targets: list[dict[str, torch.Tensor]],
        image_size: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        preds = flatten_predictions(outputs).float()
        batch, n = preds.shape[:2]
        anchors, grid = self._grid(image_size, preds.device)
        assigned = assign_targets(targets, grid, anchors, image_size)
        ignored = ignore_mask(decode_boxes(preds[..., :4].detach(), grid), targets, self.ignore_iou)
        kept = assigned.kept.float()

        # Boxes that lost their place write to a spare last slot, cut off after.
        slot = torch.where(assigned.kept, assigned.index, batch * n)
        obj_target = torch.zeros(batch * n + 1, device=preds.device)
        obj_weight = F.pad((~ignored).float().reshape(-1), (0, 1))
        obj_target[slot] = 1.0
        obj_weight[slot] = assigned.mix_weight
        loss_obj = F.binary_cross_entropy_with_logits(
            preds[..., 4].reshape(-1), obj_target[:-1], obj_weight[:-1], reduction="sum"
        )

        positives = preds.reshape(batch * n, -1)[assigned.index]
        mix_weight = assigned.mix_weight * kept
        box_weight = assigned.box_weight * mix_weight
        centre = F.binary_cross_entropy_with_logits(
            positives[:, :2], assigned.t_xy, reduction="none"
        ).sum(1)
        scale = (positives[:, 2:4] - assigned.t_wh).abs().sum(1)
        class_target = torch.full_like(positives[:, 5:], self.eps)
        rows = torch.arange(len(assigned.labels), device=preds.device)
        class_target[rows, assigned.labels] = 1 - self.eps
        classes = F.binary_cross_entropy_with_logits(
            positives[:, 5:], class_target, reduction="none"
        ).sum(1)
        losses = {
            "loss_obj": loss_obj / batch,
            "loss_xy": (centre * box_weight).sum() / batch,
            "loss_wh": (scale * box_weight).sum() / batch,
            "loss_cls": (classes * mix_weight).sum() / batch,
        }
        return {"loss": sum(losses.values()), **losses, "collisions": assigned.collisions}

    def _grid(self, image_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, Grid]:
        """The anchors on `device` and the grid of `image_size`, built on first use."""
        key = (tuple(image_size), device)
        if key not in self._grids:
            anchors = self.anchors.to(device)
            self._grids[key] = anchors, build_grid(image_size, anchors, self.strides)
        return self._grids[key]
