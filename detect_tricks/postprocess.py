"""From raw YOLOv3 outputs to detections: decode, score, top-k, class-wise NMS, rescale.

GluonCV's evaluation settings (docs/design.md §3): score `sigmoid(obj) * sigmoid(cls)` per
class, threshold 0.01, the 400 best (box, class) pairs kept before NMS, class-wise NMS
at IoU 0.45 (torchvision `batched_nms`), at most 100 detections per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from detect_tricks.assign import build_grid, decode_boxes, flatten_predictions


@dataclass(frozen=True)
class NMSSettings:
    score_threshold: float = 0.01
    pre_nms_top_k: int = 400
    iou_threshold: float = 0.45
    max_detections: int = 100


GLUONCV_NMS = NMSSettings()


@torch.no_grad()
def postprocess(
    outputs: list[Tensor],
    anchors: Tensor,
    strides: tuple[int, ...],
    image_size: tuple[int, int],
    settings: NMSSettings = GLUONCV_NMS,
) -> list[dict[str, Tensor]]:
    """Detections per image: `boxes` (K, 4) xyxy in input pixels, `scores`, `labels`."""
    preds = flatten_predictions(outputs).float()
    grid = build_grid(image_size, anchors.to(preds.device), strides)
    boxes = decode_boxes(preds[..., :4], grid)
    boxes[..., 0::2] = boxes[..., 0::2].clamp(0, image_size[1])
    boxes[..., 1::2] = boxes[..., 1::2].clamp(0, image_size[0])
    scores = preds[..., 4:5].sigmoid() * preds[..., 5:].sigmoid()  # (B, N, C)
    num_classes = scores.shape[-1]
    results = []
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        flat = image_scores.reshape(-1)
        candidates = torch.nonzero(flat > settings.score_threshold).squeeze(1)
        if len(candidates) > settings.pre_nms_top_k:
            candidates = candidates[flat[candidates].topk(settings.pre_nms_top_k).indices]
        box_index, labels = candidates // num_classes, candidates % num_classes
        kept_boxes, kept_scores = image_boxes[box_index], flat[candidates]
        keep = batched_nms(kept_boxes, kept_scores, labels, settings.iou_threshold)
        keep = keep[: settings.max_detections]
        results.append(
            {"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": labels[keep]}
        )
    return results


def rescale_boxes(boxes: Tensor, input_size: tuple[int, int], original: tuple[int, int]) -> Tensor:
    """Map xyxy boxes from the resized input (H, W) back to the original image (H0, W0)."""
    scale = boxes.new_tensor([original[1] / input_size[1], original[0] / input_size[0]] * 2)
    out = boxes * scale
    out[:, 0::2] = out[:, 0::2].clamp(0, original[1])
    out[:, 1::2] = out[:, 1::2].clamp(0, original[0])
    return out
