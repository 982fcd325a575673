"""The YOLOv3 loss (GluonCV `YOLOV3Loss`), with an exact test against docs/design.md §3-4:
sigmoid label smoothing and per-box mixup weights (Bag of Freebies), IoU box losses and
IoU-aware objectness (YOLOv4, PP-YOLO).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import (
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
)

from detect_tricks.yolo.assign import (
    AssignedTargets,
    Grid,
    assign_targets,
    build_grid,
    centre_target,
    decode_boxes,
    decode_boxes_at,
    flatten_predictions,
    ignore_mask,
)


def sigmoid_smoothing_eps(num_classes: int) -> float:
    """Bag of Freebies §3.3 sigmoid label smoothing as GluonCV does it (after PR 745):
    `eps = min(1 / C, 1 / 40)`, targets `1 - eps` for the class and `eps` for the others."""
    return min(1.0 / num_classes, 1.0 / 40)


BOX_LOSSES = ("coords", "giou", "diou", "ciou")
IOU_LOSS_WEIGHT = 2.5  # PP-YOLO's IouLoss weight (configs/ppyolo: loss_weight 2.5)
IOU_AWARE_WEIGHT = 1.0  # PP-YOLO's IouAwareLoss weight


class YOLOv3Loss:
    """The four YOLOv3 terms of GluonCV's `YOLOV3Loss`, summed per image, mean over images.

    - objectness: BCE with logits, target 1 at positives (weight = mixup weight), 0
      elsewhere (weight 1), weight 0 where a prediction overlaps a ground truth by more
      than `ignore_iou` (dynamic ignore);
    - box: with `box_loss` `coords`, BCE with logits on the centre's offset and L1 on
      `t_wh` (`loss_xy`, `loss_wh`); with `giou`, `diou` or `ciou` (YOLOv4 Table 4;
      Rezatofighi et al. 2019, Zheng et al. 2020), `IOU_LOSS_WEIGHT` times that IoU loss
      of the decoded box (torchvision.ops) in their place (`loss_box`); either weighted
      by `(2 - w * h / (W * H)) * mixup weight`;
    - class: BCE with logits over the C classes at positives, weighted by the mixup
      weight; targets 1/0, or `1 - eps`/`eps` with label smoothing;
    - with `iou_aware` (PP-YOLO), `loss_iou`: BCE of the extra IoU logit against the
      detached IoU of the decoded box and its ground truth, at positives, weighted by
      the mixup weight.

    Returns `loss` (the unweighted sum), its terms, and `collisions` (candidate positives
    that lost their cell and anchor to another box), as a dict.

    Args:
        num_classes: C.
        anchors: (3, 3, 2) anchor sizes in pixels, strides 8, 16, 32.
        strides: the levels' strides.
        label_smoothing: the switch for sigmoid label smoothing.
        ignore_iou: the dynamic-ignore threshold (0.7).
        box_loss: `coords`, `giou`, `diou` or `ciou`.
        grid_alpha: grid sensitivity of the centre (`assign.centre_offset`); 1 is YOLOv3's.
        assign: `best`, `multi_anchor` or `neighbours` (`assign.assign_targets`).
        iou_aware: the model has an IoU logit after the class logits.
    """

    def __init__(
        self,
        num_classes: int,
        anchors: torch.Tensor,
        strides: tuple[int, ...] = (8, 16, 32),
        label_smoothing: bool = False,
        ignore_iou: float = 0.7,
        box_loss: str = "coords",
        grid_alpha: float = 1.0,
        assign: str = "best",
        iou_aware: bool = False,
    ) -> None:
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
        self.num_classes = num_classes
        self.anchors = anchors
        self.strides = strides
        self.eps = sigmoid_smoothing_eps(num_classes) if label_smoothing else 0.0
        self.ignore_iou = ignore_iou
        self.box_loss = box_loss
        self.grid_alpha = grid_alpha
        self.assign = assign
        self.iou_aware = iou_aware
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
        assigned = assign_targets(targets, grid, anchors, image_size, self.assign)
        decoded = decode_boxes(preds[..., :4].detach(), grid, self.grid_alpha)
        ignored = ignore_mask(decoded, targets, self.ignore_iou)
        kept = assigned.kept.float()

        # Candidates that are not positives write to a spare last slot, cut off after.
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
        classes = self._class_terms(positives[:, 5 : 5 + self.num_classes], assigned.labels)
        losses = {"loss_obj": loss_obj / batch}
        if self.box_loss == "coords":
            losses.update(self._coordinate_terms(positives, assigned, box_weight, batch))
        pred_boxes = decode_boxes_at(positives[:, :4], grid, assigned.index % n, self.grid_alpha)
        if self.box_loss != "coords":
            per_box = IOU_LOSSES[self.box_loss](pred_boxes, assigned.boxes, reduction="none")
            losses["loss_box"] = IOU_LOSS_WEIGHT * (per_box * box_weight).sum() / batch
        losses["loss_cls"] = (classes * mix_weight).sum() / batch
        if self.iou_aware:
            with torch.no_grad():
                iou = paired_iou(pred_boxes, assigned.boxes)
            iou_terms = F.binary_cross_entropy_with_logits(positives[:, -1], iou, reduction="none")
            losses["loss_iou"] = IOU_AWARE_WEIGHT * (iou_terms * mix_weight).sum() / batch
        return {"loss": sum(losses.values()), **losses, "collisions": assigned.collisions}

    def _coordinate_terms(
        self,
        positives: torch.Tensor,
        assigned: AssignedTargets,
        box_weight: torch.Tensor,
        batch: int,
    ) -> dict[str, torch.Tensor]:
        """YOLOv3's box terms: BCE on the centre (its target through the grid
        sensitivity), L1 on the log-size."""
        centre = F.binary_cross_entropy_with_logits(
            positives[:, :2], centre_target(assigned.t_xy, self.grid_alpha), reduction="none"
        ).sum(1)
        scale = (positives[:, 2:4] - assigned.t_wh).abs().sum(1)
        return {
            "loss_xy": (centre * box_weight).sum() / batch,
            "loss_wh": (scale * box_weight).sum() / batch,
        }

    def _class_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per positive, the BCE over its class logits against (smoothed) one-hot targets."""
        class_target = torch.full_like(logits, self.eps)
        rows = torch.arange(len(labels), device=logits.device)
        class_target[rows, labels] = 1 - self.eps
        return F.binary_cross_entropy_with_logits(logits, class_target, reduction="none").sum(1)

    def _grid(self, image_size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, Grid]:
        """The anchors on `device` and the grid of `image_size`, built on first use."""
        key = (tuple(image_size), device)
        if key not in self._grids:
            anchors = self.anchors.to(device)
            self._grids[key] = anchors, build_grid(image_size, anchors, self.strides)
        return self._grids[key]


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of each xyxy box of `a` (P, 4) with the box of `b` at the same row: (P,)."""
    inter = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


IOU_LOSSES = {
    "giou": generalized_box_iou_loss,
    "diou": distance_box_iou_loss,
    "ciou": complete_box_iou_loss,
}
