"""From raw YOLOv3 outputs to detections: decode, score, top-k, class-wise NMS, rescale.

GluonCV's evaluation settings (docs/design.md §3): score `sigmoid(obj) * sigmoid(cls)` per
class, threshold 0.01, the 400 best (box, class) pairs kept before NMS, class-wise NMS
at IoU 0.45 (torchvision `batched_nms`), at most 100 detections per image.

Two other NMS methods (`eval.nms`), both class-wise:

- `diou` (YOLOv4; Zheng et al. 2020 §5): greedy, but a box is suppressed by a
  higher-scored one when `IoU - (d^2 / c^2)^beta > threshold`, d the distance between
  the centres and c the diagonal of the smallest box enclosing both; beta 0.6 (darknet's
  `beta_nms`). Boxes side by side with distant centres survive more often.
- `matrix` (SOLOv2, Wang et al. 2020; PP-YOLO): no box is removed, every score decays:
  `s_j * min_i (1 - IoU_ij) / (1 - max_IoU_i)` over the higher-scored boxes i of its
  class, where max_IoU_i is box i's own largest IoU with the boxes above it (PP-YOLO's
  linear decay); the boxes whose score stays above the score threshold are kept,
  best first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_iou

from detect_tricks.yolo.assign import build_grid, decode_boxes, flatten_predictions

NMS_METHODS = ("standard", "diou", "matrix")
DIOU_BETA = 0.6


@dataclass(frozen=True)
class NMSSettings:
    score_threshold: float = 0.01
    pre_nms_top_k: int = 400
    iou_threshold: float = 0.45
    max_detections: int = 100
    method: str = "standard"  # NMS_METHODS


GLUONCV_NMS = NMSSettings()


@torch.no_grad()
def postprocess(
    outputs: list[Tensor],
    anchors: Tensor,
    strides: tuple[int, ...],
    image_size: tuple[int, int],
    settings: NMSSettings = GLUONCV_NMS,
    grid_alpha: float = 1.0,
    iou_aware_factor: float | None = None,
) -> list[dict[str, Tensor]]:
    """Detections per image: `boxes` (K, 4) xyxy in input pixels, `scores`, `labels`.

    `grid_alpha` decodes the centres (`assign.centre_offset`); with `iou_aware_factor`
    a, the outputs end with an IoU logit and the score is `obj^(1 - a) iou^a cls`
    (PP-YOLO)."""
    preds = flatten_predictions(outputs).float()
    grid = build_grid(image_size, anchors.to(preds.device), strides)
    boxes = decode_boxes(preds[..., :4], grid, grid_alpha)
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, image_size[1])
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, image_size[0])
    objectness = preds[..., 4:5].sigmoid()
    if iou_aware_factor is not None:
        iou = preds[..., -1:].sigmoid()
        objectness = objectness.pow(1 - iou_aware_factor) * iou.pow(iou_aware_factor)
        preds = preds[..., :-1]
    scores = objectness * preds[..., 5:].sigmoid()  # (B, N, C)
    num_classes = scores.shape[-1]
    results = []
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        flat = image_scores.reshape(-1)
        candidates = torch.nonzero(flat > settings.score_threshold).squeeze(1)
        if len(candidates) > settings.pre_nms_top_k:
            candidates = candidates[flat[candidates].topk(settings.pre_nms_top_k).indices]
        box_index, labels = candidates // num_classes, candidates % num_classes
        kept_boxes, kept_scores = image_boxes[box_index], flat[candidates]
        keep, kept_scores = suppress(kept_boxes, kept_scores, labels, settings)
        keep = keep[: settings.max_detections]
        results.append(
            {"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": labels[keep]}
        )
    return results


def suppress(
    boxes: Tensor, scores: Tensor, labels: Tensor, settings: NMSSettings
) -> tuple[Tensor, Tensor]:
    """Class-wise NMS by `settings.method`: the indices kept, best first, and the scores
    (decayed by Matrix NMS, unchanged otherwise)."""
    if settings.method == "standard":
        return batched_nms(boxes, scores, labels, settings.iou_threshold), scores
    if settings.method == "diou":
        return diou_nms(boxes, scores, labels, settings.iou_threshold), scores
    if settings.method == "matrix":
        decayed = matrix_nms_scores(boxes, scores, labels)
        keep = torch.nonzero(decayed > settings.score_threshold).squeeze(1)
        return keep[decayed[keep].argsort(descending=True)], decayed
    raise ValueError(f"NMS method must be one of {NMS_METHODS}, got {settings.method!r}")


def diou_nms(
    boxes: Tensor, scores: Tensor, labels: Tensor, threshold: float, beta: float = DIOU_BETA
) -> Tensor:
    """Greedy class-wise DIoU-NMS (module docstring): the kept indices, best first."""
    order = scores.argsort(descending=True)
    boxes, labels = boxes[order], labels[order]
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    penalised = box_iou(boxes, boxes) - _centre_penalty(boxes).pow(beta)
    same_class = labels[:, None] == labels[None, :]
    for i in range(len(order)):
        if not suppressed[i]:
            later = torch.arange(len(order), device=boxes.device) > i
            suppressed |= later & same_class[i] & (penalised[i] > threshold)
    return order[~suppressed]


def _centre_penalty(boxes: Tensor) -> Tensor:
    """(K, K) `d^2 / c^2`: squared distance of the centres over the squared diagonal of the
    smallest box enclosing both."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    distance = (centres[:, None] - centres[None]).pow(2).sum(-1)
    corner_low = torch.min(boxes[:, None, :2], boxes[None, :, :2])
    corner_high = torch.max(boxes[:, None, 2:], boxes[None, :, 2:])
    diagonal = (corner_high - corner_low).pow(2).sum(-1)
    return distance / diagonal.clamp(min=1e-9)


def matrix_nms_scores(boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
    """Matrix NMS's linear decay (module docstring), class-wise: the decayed scores, in the
    input's order."""
    if len(scores) == 0:
        return scores
    order = scores.argsort(descending=True)
    sorted_boxes, sorted_labels = boxes[order], labels[order]
    iou = box_iou(sorted_boxes, sorted_boxes)
    above = torch.ones_like(iou, dtype=torch.bool).triu(diagonal=1)  # row i above column j
    iou = torch.where(above & (sorted_labels[:, None] == sorted_labels[None, :]), iou, 0.0)
    own_max = iou.max(dim=0).values  # per box: its largest IoU with the boxes above it
    decay = (1 - iou) / (1 - own_max[:, None]).clamp(min=1e-9)
    decay = torch.where(above, decay, torch.inf).min(dim=0).values.clamp(max=1.0)
    decayed = torch.empty_like(scores)
    decayed[order] = scores[order] * decay
    return decayed


def rescale_boxes(boxes: Tensor, input_size: tuple[int, int], original: tuple[int, int]) -> Tensor:
    """Map xyxy boxes from the resized input (H, W) back to the original image (H0, W0)."""
    scale = boxes.new_tensor([original[1] / input_size[1], original[0] / input_size[0]] * 2)
    out = boxes * scale
    out[:, 0::2] = out[:, 0::2].clamp(0, original[1])
    out[:, 1::2] = out[:, 1::2].clamp(0, original[0])
    return out
