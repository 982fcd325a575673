"""YOLOv3 target assignment on hand-made boxes: level, anchor, cell, t_xy, t_wh, weights."""

from __future__ import annotations

import math

import pytest
import torch

from detect_tricks.core.config import COCO_ANCHORS
from detect_tricks.yolo.assign import (
    assign_targets,
    build_grid,
    decode_boxes,
    ignore_mask,
    shape_iou,
)

ANCHORS = torch.tensor(COCO_ANCHORS, dtype=torch.float32)
SIZE = (128, 128)  # levels of 16x16, 8x8, 4x4 cells; N = 3 * (256 + 64 + 16) = 1008


def _target(boxes, labels=None, weights=None):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    n = len(boxes)
    return {
        "boxes": boxes,
        "labels": torch.tensor(labels if labels is not None else [0] * n, dtype=torch.int64),
        "weights": torch.tensor(weights if weights is not None else [1.0] * n),
    }


def test_grid_layout():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    assert len(grid.cell) == 1008
    assert grid.offsets == [0, 768, 960] and grid.shapes == [(16, 16), (8, 8), (4, 4)]
    # index 322 = level 0, anchor 1, row 4, column 2
    assert grid.cell[322].tolist() == [2.0, 4.0]
    assert grid.anchor[322].tolist() == [16.0, 30.0] and grid.stride[322].item() == 8


def test_small_box_goes_to_stride_8_anchor_16x30():
    box = [10, 20, 30, 44]  # 20 x 24 centred at (20, 32)
    assert shape_iou(torch.tensor([[20.0, 24.0]]), ANCHORS.reshape(-1, 2)).argmax().item() == 1
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    got = assign_targets([_target([box], labels=[3])], grid, ANCHORS, SIZE)
    assert got.index.tolist() == [0 + 1 * 256 + 4 * 16 + 2]
    torch.testing.assert_close(got.t_xy, torch.tensor([[0.5, 0.0]]))
    torch.testing.assert_close(got.t_wh, torch.tensor([[math.log(20 / 16), math.log(24 / 30)]]))
    torch.testing.assert_close(got.box_weight, torch.tensor([2 - 480 / 128**2]))
    assert got.labels.tolist() == [3] and got.kept.tolist() == [True]
    assert got.collisions.item() == 0


def test_tall_box_at_the_border_goes_to_stride_16_anchor_59x119():
    box = [60, 0, 128, 128]  # 68 x 128 centred at (94, 64)
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    got = assign_targets([_target([box])], grid, ANCHORS, SIZE)
    assert got.index.tolist() == [768 + 2 * 64 + 4 * 8 + 5]
    torch.testing.assert_close(got.t_xy, torch.tensor([[94 / 16 - 5, 0.0]]))
    torch.testing.assert_close(got.t_wh, torch.tensor([[math.log(68 / 59), math.log(128 / 119)]]))


def test_box_in_the_last_cell_and_an_image_without_boxes():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    got = assign_targets(
        [_target([]), _target([[120, 120, 128, 128]])], grid, ANCHORS, SIZE
    )  # image 0 has no boxes; image 1's 8x8 box sits in cell (15, 15) of stride 8
    assert got.index.tolist() == [1008 + 0 * 256 + 15 * 16 + 15]
    torch.testing.assert_close(got.t_xy, torch.tensor([[0.5, 0.5]]))
    empty = assign_targets([_target([]), _target([])], grid, ANCHORS, SIZE)
    assert len(empty.index) == 0 and empty.collisions.item() == 0


def test_two_boxes_on_one_cell_and_anchor_keep_the_heavier():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    boxes = [[10, 20, 30, 44], [11, 21, 31, 45], [12, 20, 32, 44]]
    got = assign_targets(
        [_target(boxes, labels=[0, 1, 2], weights=[0.3, 0.7, 0.7])], grid, ANCHORS, SIZE
    )
    # boxes 1 and 2 tie on weight: the first of them wins; box 0 is lighter
    assert got.kept.tolist() == [False, True, False] and got.collisions.item() == 2
    assert len(set(got.index.tolist())) == 1


def test_only_boxes_on_the_same_image_cell_and_anchor_collide():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    same_place = [[10, 20, 30, 44], [11, 21, 31, 45]]
    got = assign_targets(
        [_target(same_place, weights=[0.9, 0.2]), _target([same_place[1], [60, 0, 128, 128]])],
        grid,
        ANCHORS,
        SIZE,
    )  # image 1 repeats box 1 of image 0: another image, so no collision with it
    assert got.kept.tolist() == [True, False, True, True] and got.collisions.item() == 1


def test_encode_then_decode_gives_back_the_box():
    torch.manual_seed(0)
    size = (96, 160)
    grid = build_grid(size, ANCHORS, (8, 16, 32))
    xy = torch.rand(20, 2) * torch.tensor([140.0, 80.0])
    wh = 2 + torch.rand(20, 2) * torch.tensor([150.0, 90.0])
    boxes = torch.cat([xy, xy + wh], 1).clamp(max=torch.tensor([160.0, 96, 160, 96]))
    got = assign_targets([_target(boxes.tolist())], grid, ANCHORS, size)
    kept = got.kept
    assert kept.sum() >= 15  # a few of the 20 share a place
    raw = torch.zeros(len(grid.cell), 4)
    t_xy = got.t_xy[kept].clamp(1e-6, 1 - 1e-6)
    raw[got.index[kept]] = torch.cat([torch.logit(t_xy.double()).float(), got.t_wh[kept]], 1)
    decoded = decode_boxes(raw, grid)[got.index[kept]]
    torch.testing.assert_close(decoded, boxes[kept], atol=1e-4, rtol=0)


def test_ignore_marks_predictions_over_a_ground_truth():
    preds = torch.tensor([[[10.0, 10, 50, 50], [12, 10, 50, 50], [60, 60, 90, 90]]])
    target = _target([[10, 10, 50, 50]])
    assert ignore_mask(preds, [target], 0.7).tolist() == [[True, True, False]]
    assert ignore_mask(preds, [target], 0.96).tolist() == [[True, False, False]]
    assert ignore_mask(preds, [_target([])], 0.7).tolist() == [[False, False, False]]


# --- After GluonCV: grid sensitivity, several anchors per box, neighbouring cells ----------


def test_grid_sensitivity_reaches_the_cell_border_and_alpha_one_is_yolov3():
    from detect_tricks.yolo.assign import centre_offset, centre_target

    logits = torch.tensor([-30.0, -2.0, 0.0, 2.0, 30.0])
    torch.testing.assert_close(centre_offset(logits, 1.0), logits.sigmoid())
    # alpha 1.05 (PP-YOLO): 1.05 s - 0.025 spans (-0.025, 1.025): 0 and 1 at finite logits
    spread = centre_offset(logits, 1.05)
    assert spread[0].item() == pytest.approx(-0.025) and spread[-1].item() == pytest.approx(1.025)
    border = torch.logit(torch.tensor([0.025 / 1.05]))
    assert centre_offset(border, 1.05).item() == pytest.approx(0.0, abs=1e-6)
    # YOLOv5's 2 sigmoid - 0.5
    torch.testing.assert_close(centre_offset(logits, 2.0), 2 * logits.sigmoid() - 0.5)
    # the target is the sigmoid that decodes back to the offset
    offsets = torch.tensor([-0.5, 0.0, 0.3, 1.0, 1.5])
    torch.testing.assert_close(
        centre_offset(torch.logit(centre_target(offsets, 2.0).clamp(1e-6, 1 - 1e-6)), 2.0),
        offsets,
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(centre_target(offsets, 1.0), offsets)
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    raw = torch.randn(1, len(grid.cell), 4)
    torch.testing.assert_close(decode_boxes(raw, grid, 1.0), decode_boxes(raw, grid))


def test_multi_anchor_picks_every_anchor_over_0213_and_the_best():
    box = [10, 20, 30, 44]  # 20 x 24: shape IoUs with the nine COCO anchors
    ious = shape_iou(torch.tensor([[20.0, 24.0]]), ANCHORS.reshape(-1, 2))[0]
    # (10,13): 130/480 = .271; (16,30): 384/576 = .667; (33,23): 460/779 = .590;
    # (30,61): 480/1830 = .262; (62,45): 480/2790 = .172; the rest smaller
    torch.testing.assert_close(
        ious[:5], torch.tensor([130 / 480, 384 / 576, 460 / 779, 480 / 1830, 480 / 2790])
    )
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    got = assign_targets([_target([box])], grid, ANCHORS, SIZE, mode="multi_anchor")
    picked = got.index[got.kept].tolist()
    # anchors 0, 1, 2 at stride 8 (cell (2, 4) of 16x16) and anchor 3 at stride 16 (cell
    # (1, 2) of 8x8)
    assert picked == [
        0 * 256 + 4 * 16 + 2,
        1 * 256 + 4 * 16 + 2,
        2 * 256 + 4 * 16 + 2,
        768 + 0 * 64 + 2 * 8 + 1,
    ]
    assert got.valid.sum().item() == 4 and got.collisions.item() == 0
    kept_wh = got.t_wh[got.kept]
    torch.testing.assert_close(kept_wh[3], torch.tensor([math.log(20 / 30), math.log(24 / 61)]))
    torch.testing.assert_close(got.t_xy[got.kept][3], torch.tensor([20 / 16 - 1, 32 / 16 - 2]))


def test_neighbours_add_the_two_cells_nearest_the_centre():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    # 20 x 24 centred at (21, 35): stride-8 cell (2, 4), at (0.625, 0.375) within it:
    # right neighbour (3, 4) and upper neighbour (2, 3)
    box = [11, 23, 31, 47]
    got = assign_targets([_target([box])], grid, ANCHORS, SIZE, mode="neighbours")
    at_stride_8_anchor_1 = [i - 256 for i in got.index[got.kept].tolist() if 256 <= i < 512]
    assert sorted(at_stride_8_anchor_1) == sorted([4 * 16 + 2, 4 * 16 + 3, 3 * 16 + 2])
    offsets = {
        int(i) - 256: t.tolist()
        for i, t in zip(got.index[got.kept], got.t_xy[got.kept], strict=True)
        if 256 <= i < 512
    }
    assert offsets[4 * 16 + 3] == pytest.approx([21 / 8 - 3, 35 / 8 - 4])  # -0.375, 0.375
    assert offsets[3 * 16 + 2] == pytest.approx([21 / 8 - 2, 35 / 8 - 3])  # 0.625, 1.375
    # a centre within a cell of the left and top border gets no neighbour there
    # (centre (3, 3): position (0.375, 0.375) of cell (0, 0), left and upper halves)
    corner = assign_targets([_target([[0, 0, 6, 6]])], grid, ANCHORS, SIZE, mode="neighbours")
    level0 = [i for i in corner.index[corner.kept].tolist() if i < 768]
    assert all(i % 256 == 0 for i in level0)  # only cell (0, 0) of each anchor


def test_best_mode_is_one_candidate_per_box_as_before():
    grid = build_grid(SIZE, ANCHORS, (8, 16, 32))
    boxes = [[10, 20, 30, 44], [60, 0, 128, 128]]
    got = assign_targets([_target(boxes)], grid, ANCHORS, SIZE, mode="best")
    assert len(got.index) == 2 and got.valid.all()
