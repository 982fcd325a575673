"""YOLOv3 loss terms against hand computation: smoothing, mixup weights, ignore."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from detect_tricks.core.config import COCO_ANCHORS
from detect_tricks.yolo.assign import assign_targets, build_grid
from detect_tricks.yolo.loss import YOLOv3Loss, sigmoid_smoothing_eps

ANCHORS = torch.tensor(COCO_ANCHORS, dtype=torch.float32)
SIZE = (64, 64)  # N = 3 * (64 + 16 + 4) = 252
N = 252
LOG2 = math.log(2.0)
BOX = [10.0, 20.0, 30.0, 44.0]  # stride 8, anchor (16, 30), cell (2, 4) -> index 64 + 34 = 98


def _outputs(flat: torch.Tensor) -> list[torch.Tensor]:
    """Split a (1, N, 5 + C) flat prediction into the per-level (1, 3, H, W, 5 + C) form."""
    c = flat.shape[-1]
    sizes = [(8, 8), (4, 4), (2, 2)]
    out, start = [], 0
    for h, w in sizes:
        out.append(flat[:, start : start + 3 * h * w].reshape(1, 3, h, w, c))
        start += 3 * h * w
    return out


def _target(weight: float = 1.0, label: int = 0) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor([BOX]),
        "labels": torch.tensor([label]),
        "weights": torch.tensor([weight]),
    }


def _loss(flat, target, smoothing=False, ignore_iou=1.0, classes=2):
    loss = YOLOv3Loss(classes, ANCHORS, label_smoothing=smoothing, ignore_iou=ignore_iou)
    return loss(_outputs(flat), [target], SIZE)


def test_each_term_on_zero_logits():
    flat = torch.zeros(1, N, 7)
    losses = _loss(flat, _target())
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    assigned = assign_targets([_target()], grid, ANCHORS, SIZE)
    assert assigned.index.tolist() == [98]
    box_weight = 2 - 20 * 24 / 64**2
    # the 20 x 24 box on anchor (16, 30): t_wh = (log(20/16), log(24/30)) = (0.2231, -0.2231)
    t_wh = torch.tensor([math.log(20 / 16), math.log(24 / 30)])
    # BCE at logit 0 is log 2 whatever the target; every prediction is a negative but one
    assert losses["loss_obj"].item() == pytest.approx(N * LOG2)
    assert losses["loss_xy"].item() == pytest.approx(box_weight * 2 * LOG2)
    assert losses["loss_wh"].item() == pytest.approx(box_weight * t_wh.abs().sum().item())
    assert losses["loss_cls"].item() == pytest.approx(2 * LOG2)
    total = sum(losses[k] for k in ("loss_obj", "loss_xy", "loss_wh", "loss_cls"))
    assert losses["loss"].item() == pytest.approx(total.item())


@pytest.mark.parametrize("smoothing", [False, True])
def test_class_targets_with_and_without_sigmoid_smoothing(smoothing):
    flat = torch.zeros(1, N, 5 + 3)
    flat[0, 98, 5:] = torch.tensor([2.0, -1.0, 0.5])
    losses = _loss(flat, _target(label=1), smoothing=smoothing, classes=3)
    eps = 1 / 40 if smoothing else 0.0
    assert sigmoid_smoothing_eps(3) == pytest.approx(1 / 40)
    assert sigmoid_smoothing_eps(80) == pytest.approx(1 / 80)
    targets = torch.tensor([eps, 1 - eps, eps])
    expected = F.binary_cross_entropy_with_logits(flat[0, 98, 5:], targets, reduction="sum")
    assert losses["loss_cls"].item() == pytest.approx(expected.item())


def test_mixup_weight_scales_the_boxs_terms_exactly():
    flat = torch.randn(1, N, 7, generator=torch.Generator().manual_seed(0))
    full, half, zero = (_loss(flat, _target(weight=w)) for w in (1.0, 0.5, 0.0))
    for key in ("loss_xy", "loss_wh", "loss_cls"):
        assert zero[key].item() == 0.0
        assert half[key].item() == pytest.approx(full[key].item() / 2, rel=1e-6)
    # objectness: negatives are unchanged; the positive's term scales with the weight
    positive = F.softplus(-flat[0, 98, 4]).item()  # BCE(x, 1)
    assert full["loss_obj"].item() - zero["loss_obj"].item() == pytest.approx(positive, rel=1e-4)
    assert half["loss_obj"].item() - zero["loss_obj"].item() == pytest.approx(
        positive / 2, rel=1e-4
    )


def test_prediction_over_a_ground_truth_is_not_a_negative():
    # A negative (anchor (33, 23) at cell (2, 4), not the positive's anchor) whose decoded
    # box is BOX itself: centre ((0.5 + 2) * 8, (sigmoid(-20) + 4) * 8), size 20 x 24.
    flat = torch.zeros(1, N, 7)
    other = 64 * 2 + 4 * 8 + 2
    flat[0, other, :4] = torch.tensor([0.0, -20.0, math.log(20 / 33), math.log(24 / 23)])
    flat[0, other, 4] = 5.0  # confident: BCE(5, 0) = softplus(5) if counted as a negative
    with_ignore = _loss(flat, _target(), ignore_iou=0.7)["loss_obj"].item()
    without = _loss(flat, _target(), ignore_iou=1.0)["loss_obj"].item()
    assert without - with_ignore == pytest.approx(F.softplus(torch.tensor(5.0)).item(), rel=1e-5)


def test_collisions_are_reported():
    target = {
        "boxes": torch.tensor([BOX, [11.0, 21, 31, 45]]),
        "labels": torch.tensor([0, 1]),
        "weights": torch.ones(2),
    }
    assert _loss(torch.zeros(1, N, 7), target)["collisions"].item() == 1.0


def test_a_box_that_loses_its_place_adds_nothing():
    flat = torch.randn(1, N, 7, generator=torch.Generator().manual_seed(1))
    other = [11.0, 21, 31, 45]  # same cell and anchor as BOX
    both = {
        "boxes": torch.tensor([BOX, other]),
        "labels": torch.tensor([0, 1]),
        "weights": torch.tensor([0.4, 0.8]),  # `other` is heavier: BOX loses its place
    }
    alone = {
        "boxes": torch.tensor([other]),
        "labels": torch.tensor([1]),
        "weights": torch.tensor([0.8]),
    }
    got, expected = _loss(flat, both), _loss(flat, alone)
    for key in ("loss_obj", "loss_xy", "loss_wh", "loss_cls"):
        assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-6), key
    assert got["collisions"].item() == 1.0 and expected["collisions"].item() == 0.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="host syncs exist only on CUDA")
def test_the_loss_never_waits_for_the_device():
    loss = YOLOv3Loss(2, ANCHORS.cuda())
    flat = torch.zeros(1, N, 7, device="cuda", requires_grad=True)
    target = {k: v.cuda() for k, v in _target().items()}
    loss(_outputs(flat), [target], SIZE)  # builds the grid: a copy, once per size
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = loss(_outputs(flat), [target], SIZE)
        got["loss"].backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert got["collisions"].item() == 0.0


# --- After GluonCV: IoU losses, grid sensitivity, IoU-aware objectness ----------------------


def _hand_iou_terms(p, g):
    """IoU, GIoU, DIoU and CIoU of two xyxy boxes by the papers' formulas (Rezatofighi et
    al. 2019, eq. 1; Zheng et al. 2020, eqs. 6, 9-11), written out here."""
    iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
    ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
    inter = iw * ih
    area_p, area_g = (p[2] - p[0]) * (p[3] - p[1]), (g[2] - g[0]) * (g[3] - g[1])
    union = area_p + area_g - inter
    iou = inter / union
    cw, ch = max(p[2], g[2]) - min(p[0], g[0]), max(p[3], g[3]) - min(p[1], g[1])
    giou = iou - (cw * ch - union) / (cw * ch)
    rho2 = ((p[0] + p[2]) / 2 - (g[0] + g[2]) / 2) ** 2 + (
        (p[1] + p[3]) / 2 - (g[1] + g[3]) / 2
    ) ** 2
    c2 = cw**2 + ch**2
    diou = iou - rho2 / c2
    v = (
        4
        / math.pi**2
        * (math.atan((g[2] - g[0]) / (g[3] - g[1])) - math.atan((p[2] - p[0]) / (p[3] - p[1]))) ** 2
    )
    alpha = v / (1 - iou + v)
    ciou = diou - alpha * v
    return {"giou": 1 - giou, "diou": 1 - diou, "ciou": 1 - ciou}


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou"])
def test_iou_losses_match_the_papers_formulas_with_box_and_mixup_weights(kind):
    # zero logits at index 98: centre (20, 36), size 16 x 30 -> box (12, 21, 28, 51)
    predicted = [12.0, 21.0, 28.0, 51.0]
    expected = _hand_iou_terms(predicted, BOX)[kind]
    flat = torch.zeros(1, N, 7)
    for weight in (1.0, 0.3):
        loss = YOLOv3Loss(2, ANCHORS, ignore_iou=1.0, box_loss=kind)
        losses = loss(_outputs(flat), [_target(weight=weight)], SIZE)
        box_weight = 2 - 20 * 24 / 64**2
        assert losses["loss_box"].item() == pytest.approx(
            2.5 * expected * box_weight * weight, rel=1e-5
        )
        assert "loss_xy" not in losses and "loss_wh" not in losses
        total = losses["loss_obj"] + losses["loss_box"] + losses["loss_cls"]
        assert losses["loss"].item() == pytest.approx(total.item())


def test_grid_sensitivity_moves_the_centre_target():
    # BOX's centre sits at (0.5, 0.0) of its cell; with alpha 2 the BCE target is
    # ((0.5 + 0.5) / 2, (0.0 + 0.5) / 2) = (0.5, 0.25)
    flat = torch.zeros(1, N, 7)
    loss = YOLOv3Loss(2, ANCHORS, ignore_iou=1.0, grid_alpha=2.0)
    losses = loss(_outputs(flat), [_target()], SIZE)
    box_weight = 2 - 20 * 24 / 64**2
    bce_at_zero = LOG2  # BCE(logit 0, any target) = log 2
    assert losses["loss_xy"].item() == pytest.approx(box_weight * 2 * bce_at_zero)
    flat[0, 98, 1] = 3.0  # now the y term: BCE(3, 0.25) = softplus(3) - 0.25 * 3
    losses = loss(_outputs(flat), [_target()], SIZE)
    y_term = math.log1p(math.exp(3.0)) - 0.25 * 3.0
    assert losses["loss_xy"].item() == pytest.approx(box_weight * (LOG2 + y_term), rel=1e-5)


def test_iou_aware_learns_the_detached_iou_of_positives():
    flat = torch.zeros(1, N, 8)  # 5 + 2 classes + the IoU logit
    flat[0, 98, 7] = 1.0
    loss = YOLOv3Loss(2, ANCHORS, ignore_iou=1.0, iou_aware=True)
    for weight in (1.0, 0.4):
        losses = loss(_outputs(flat), [_target(weight=weight)], SIZE)
        # predicted (12, 21, 28, 51) vs BOX (10, 20, 30, 44): inter 16 x 23 = 368,
        # union 480 + 480 - 368 = 592
        iou = 368 / 592
        bce = math.log1p(math.exp(1.0)) - iou * 1.0
        assert losses["loss_iou"].item() == pytest.approx(bce * weight, rel=1e-5)
        # the class term reads the two class logits, not the IoU logit
        assert losses["loss_cls"].item() == pytest.approx(2 * LOG2 * weight)
    flat.requires_grad_(True)
    losses = loss(_outputs(flat), [_target()], SIZE)
    losses["loss_iou"].backward()
    assert flat.grad[0, 98, :4].abs().sum() == 0  # the IoU target is detached
    assert flat.grad[0, 98, 7] != 0
