"""Decoding + NMS: thresholds, top-k, class-wise suppression, mapping back to the image."""

from __future__ import annotations

import math

import pytest
import torch

from detect_tricks.core.config import COCO_ANCHORS
from detect_tricks.yolo.postprocess import NMSSettings, postprocess, rescale_boxes

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


# --- After GluonCV: DIoU-NMS, Matrix NMS, the IoU-aware score ------------------------------


def _boxes():
    # A (score .9) and B (.8) overlap with IoU 0.5 and close centres; C (.7) overlaps A with
    # IoU 0.5 too but sits to its side; D (.6) is of another class on top of A.
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [0.0, 0.0, 10.0, 5.0],
            [5.0, 0.0, 15.0, 10.0],
            [0.0, 0.0, 10.0, 10.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 0, 1])
    return boxes, scores, labels


def test_diou_nms_spares_a_neighbour_whose_centre_is_far():
    from detect_tricks.yolo.postprocess import diou_nms

    boxes, scores, labels = _boxes()
    # IoU(A, B) = 50 / 100 = 0.5; centres (5, 5), (5, 2.5): d^2 = 6.25, enclosing 10 x 10:
    # c^2 = 200, penalty (6.25 / 200)^0.6 = 0.1249: 0.5 - 0.1249 = 0.375
    # IoU(A, C) = 50 / 150 = 1/3; centres 5 apart: d^2 = 25, enclosing 15 x 10: c^2 = 325,
    # penalty (25 / 325)^0.6 = 0.2148: 0.333 - 0.215 = 0.119
    assert diou_nms(boxes, scores, labels, 0.3).tolist() == [0, 2, 3]  # B suppressed
    assert diou_nms(boxes, scores, labels, 0.4).tolist() == [0, 1, 2, 3]  # none
    # the plain IoU rule at 0.3 removes C as well
    from torchvision.ops import batched_nms

    assert batched_nms(boxes, scores, labels, 0.3).tolist() == [0, 3]


def test_matrix_nms_decays_scores_linearly():
    from detect_tricks.yolo.postprocess import matrix_nms_scores

    boxes, scores, labels = _boxes()
    decayed = matrix_nms_scores(boxes, scores, labels)
    # A: nothing above it, 0.9. B: by A, (1 - 0.5) / (1 - 0) -> 0.8 * 0.5 = 0.4.
    # C: by A, (1 - 1/3) / 1 = 2/3; by B (IoU(B, C) = 25 / 125 = 0.2, B's own max 0.5),
    # (1 - 0.2) / (1 - 0.5) = 1.6; min 2/3 -> 0.7 * 2/3. D: alone in its class, 0.6.
    torch.testing.assert_close(decayed, torch.tensor([0.9, 0.4, 0.7 * 2 / 3, 0.6]))


def test_postprocess_with_each_method_and_the_iou_aware_score():
    one = [0.0, 0.0, 0.0, 0.0, 3.0, 2.0, NEG]
    for method in ("standard", "diou", "matrix"):
        (det,) = postprocess(
            _outputs({98: one}), ANCHORS, (8, 16, 32), (64, 64), NMSSettings(method=method)
        )
        torch.testing.assert_close(det["boxes"], torch.tensor([[12.0, 21.0, 28.0, 51.0]]))
    flat = _outputs({98: [*one, 1.0]}, classes=3)  # the last "class" column is the IoU logit
    (det,) = postprocess(flat, ANCHORS, (8, 16, 32), (64, 64), iou_aware_factor=0.4)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = sig(3.0) ** 0.6 * sig(1.0) ** 0.4 * sig(2.0)
    torch.testing.assert_close(det["scores"], torch.tensor([expected]))
    # grid sensitivity in decoding: alpha 2, t = 0 -> offset 0.5 as with alpha 1; t = 30
    # -> offset 1.5, centre x (2 + 1.5) * 8 = 28
    (det,) = postprocess(
        _outputs({98: [30.0, 0.0, 0.0, 0.0, 3.0, 2.0, NEG]}),
        ANCHORS,
        (8, 16, 32),
        (64, 64),
        grid_alpha=2.0,
    )
    assert det["boxes"][0, 0].item() == pytest.approx(28 - 8)
