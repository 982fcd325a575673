"""YOLOv3 loss terms against hand computation: smoothing, mixup weights, ignore."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from detect_tricks.assign import assign_targets, build_grid
from detect_tricks.config import COCO_ANCHORS
from detect_tricks.losses import YOLOv3Loss, sigmoid_smoothing_eps

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
    t_wh = assigned.t_wh[0]
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
