"""Decoding + NMS: thresholds, top-k, class-wise suppression, mapping back to the image."""

from __future__ import annotations

import math

import torch

from detect_tricks.config import COCO_ANCHORS
from detect_tricks.postprocess import NMSSettings, postprocess, rescale_boxes

ANCHORS = torch.tensor(COCO_ANCHORS, dtype=torch.float32)
NEG = -20.0  # a logit whose sigmoid is ~0


def _outputs(entries: dict[int, list[float]], classes: int = 2) -> list[torch.Tensor]:
    """Per-level outputs of a 64 px input, all confident-negative except `entries`."""
    flat = torch.full((1, 252, 5 + classes), NEG)
    flat[..., :4] = 0.0
    for index, values in entries.items():
        flat[0, index] = torch.tensor(values)
    sizes, out, start = [(8, 8), (4, 4), (2, 2)], [], 0
    for h, w in sizes:
        out.append(flat[:, start : start + 3 * h * w].reshape(1, 3, h, w, 5 + classes))
        start += 3 * h * w
    return out


def test_one_confident_prediction_is_decoded_and_scored():
    # index 98: level 0, anchor (16, 30), cell (2, 4); t = 0 -> centre (20, 36), size 16 x 30
    outputs = _outputs({98: [0.0, 0.0, 0.0, 0.0, 3.0, 2.0, NEG]})
    (det,) = postprocess(outputs, ANCHORS, (8, 16, 32), (64, 64))
    torch.testing.assert_close(det["boxes"], torch.tensor([[12.0, 21.0, 28.0, 51.0]]))
    expected = 1 / (1 + math.exp(-3)) / (1 + math.exp(-2))
    torch.testing.assert_close(det["scores"], torch.tensor([expected]))
    assert det["labels"].tolist() == [0]


def test_class_wise_nms_and_limits():
    same_place = [0.0, 0.0, 0.0, 0.0, 3.0, 2.0, 1.5]  # both classes at one box
    # class 0 again at the next cell, pulled left: box (16.4, 21, 32.4, 51), IoU 0.57
    near = [-3.0, 0.0, 0.0, 0.0, 3.0, 1.0, NEG]
    outputs = _outputs({98: same_place, 99: near})
    (det,) = postprocess(outputs, ANCHORS, (8, 16, 32), (64, 64))
    assert sorted(det["labels"].tolist()) == [0, 1]  # the overlapping class-0 box suppressed
    (few,) = postprocess(outputs, ANCHORS, (8, 16, 32), (64, 64), NMSSettings(max_detections=1))
    assert len(few["boxes"]) == 1
    (strict,) = postprocess(outputs, ANCHORS, (8, 16, 32), (64, 64), NMSSettings(0.9))
    assert len(strict["boxes"]) == 0


def test_boxes_are_clipped_and_mapped_back_to_the_original_image():
    boxes = torch.tensor([[-5.0, 10, 70, 32]])
    out = rescale_boxes(boxes.clamp(0, 64), (64, 64), (128, 640))
    torch.testing.assert_close(out, torch.tensor([[0.0, 20, 640, 64]]))
