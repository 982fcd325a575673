"""YOLOv3 target assignment and box coding (GluonCV `yolo_target.py`, docs/design.md §3).

Predictions of all levels are handled flattened: index `n` of `(B, N, 5 + C)` runs over
levels (stride 8 first), then anchors, rows and columns. A `Grid` gives, per index, the
cell, the stride and the anchor, so coding is plain tensor arithmetic:

    centre = (sigmoid(t_xy) + cell) * stride        t_xy = centre / stride - cell
    size   = exp(t_wh) * anchor                     t_wh = log(size / anchor)

Each ground-truth box gets exactly one positive: the anchor (of all 9) with the best
shape-only IoU picks the level, the cell holding the box centre picks the place. Box
weight `2 - w * h / (W * H)` favours small boxes; the mixup weight rides along. All of
it is vectorised over the batch on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Grid:
    """Per flattened prediction: its cell `(x, y)`, stride and anchor `(w, h)`."""

    cell: Tensor  # (N, 2)
    stride: Tensor  # (N, 1)
    anchor: Tensor  # (N, 2)
    offsets: list[int]  # first flattened index of each level
    shapes: list[tuple[int, int]]  # (H, W) of each level
    strides: tuple[int, ...]


def build_grid(image_size: tuple[int, int], anchors: Tensor, strides: tuple[int, ...]) -> Grid:
    """The grid of an input of `image_size` (H, W); `anchors` is (levels, 3, 2) pixels."""
    cells, stride_list, anchor_list, offsets, shapes = [], [], [], [], []
    total = 0
    device = anchors.device
    for level, stride in enumerate(strides):
        h, w = -(-image_size[0] // stride), -(-image_size[1] // stride)
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
        )
        cell = torch.stack([xs, ys], dim=-1).reshape(1, h * w, 2).expand(3, -1, -1)
        cells.append(cell.reshape(-1, 2))
        anchor_list.append(anchors[level].reshape(3, 1, 2).expand(-1, h * w, -1).reshape(-1, 2))
        stride_list.append(torch.full((3 * h * w, 1), float(stride), device=device))
        offsets.append(total)
        shapes.append((h, w))
        total += 3 * h * w
    return Grid(
        cell=torch.cat(cells).float(),
        stride=torch.cat(stride_list),
        anchor=torch.cat(anchor_list),
        offsets=offsets,
        shapes=shapes,
        strides=tuple(strides),
    )


def flatten_predictions(outputs: list[Tensor]) -> Tensor:
    """Per-level `(B, 3, H, W, 5 + C)` outputs as one `(B, N, 5 + C)` tensor."""
    return torch.cat([o.reshape(o.shape[0], -1, o.shape[-1]) for o in outputs], dim=1)


def decode_boxes(raw: Tensor, grid: Grid) -> Tensor:
    """`(..., N, 4)` raw `t_xy, t_wh` to `(..., N, 4)` xyxy boxes in input pixels."""
    centre = (raw[..., :2].sigmoid() + grid.cell) * grid.stride
    size = raw[..., 2:4].exp() * grid.anchor
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


@dataclass
class AssignedTargets:
    """The positives of a batch: one per kept ground-truth box."""

    index: Tensor  # (P,) flattened index into (B * N)
    t_xy: Tensor  # (P, 2) in [0, 1]
    t_wh: Tensor  # (P, 2)
    box_weight: Tensor  # (P,) 2 - w * h / (W * H)
    mix_weight: Tensor  # (P,) mixup weight of the box (1 when not mixed)
    labels: Tensor  # (P,) int64
    collisions: int  # boxes dropped because another took their cell and anchor


def shape_iou(wh: Tensor, anchors: Tensor) -> Tensor:
    """IoU of boxes and anchors as if both were centred at the same point: (M, A)."""
    inter = torch.min(wh[:, None, :], anchors[None]).prod(-1)
    union = wh.prod(-1)[:, None] + anchors.prod(-1)[None] - inter
    return inter / union


def assign_targets(
    targets: list[dict[str, Tensor]],
    grid: Grid,
    anchors: Tensor,
    image_size: tuple[int, int],
) -> AssignedTargets:
    """One positive per box; two boxes on one cell and anchor keep the larger loss weight
    (`box_weight * mix_weight`), ties going to the first box of the batch."""
    device = anchors.device
    boxes = torch.cat([t["boxes"] for t in targets]).to(device).float()
    labels = torch.cat([t["labels"] for t in targets]).to(device)
    mix = torch.cat([t["weights"] for t in targets]).to(device).float()
    image_of_box = torch.cat(
        [torch.full((len(t["boxes"]),), b, device=device) for b, t in enumerate(targets)]
    )
    num_boxes = len(boxes)
    if num_boxes == 0:
        empty = torch.zeros(0, device=device)
        return AssignedTargets(
            index=empty.long(),
            t_xy=empty.view(0, 2),
            t_wh=empty.view(0, 2),
            box_weight=empty,
            mix_weight=empty,
            labels=empty.long(),
            collisions=0,
        )
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
    best = shape_iou(wh, anchors.reshape(-1, 2)).argmax(dim=1)
    level, anchor_in_level = best // 3, best % 3
    strides = torch.tensor(grid.strides, dtype=torch.float32, device=device)[level]
    sizes = torch.tensor(grid.shapes, device=device)[level]  # (M, 2) as (H, W)
    offsets = torch.tensor(grid.offsets, device=device)[level]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    cell = torch.floor(centre / strides[:, None])
    cell = torch.minimum(cell.clamp(min=0), sizes.flip(1) - 1)
    index = (
        image_of_box * len(grid.cell)
        + offsets
        + anchor_in_level * sizes.prod(1)
        + cell[:, 1].long() * sizes[:, 1]
        + cell[:, 0].long()
    )
    box_weight = 2 - wh.prod(1) / (image_size[0] * image_size[1])
    keep = _keep_heaviest(index, box_weight * mix)
    chosen_anchor = anchors.reshape(-1, 2)[best]
    return AssignedTargets(
        index=index[keep],
        t_xy=(centre / strides[:, None] - cell)[keep],
        t_wh=torch.log(wh / chosen_anchor)[keep],
        box_weight=box_weight[keep],
        mix_weight=mix[keep],
        labels=labels[keep],
        collisions=num_boxes - len(keep),
    )


def _keep_heaviest(index: Tensor, priority: Tensor) -> Tensor:
    """Indices of the boxes to keep: per distinct `index`, the largest priority, then the
    first box. Deterministic on every device (no reliance on scatter order)."""
    unique, inverse = torch.unique(index, return_inverse=True)
    best = torch.full((len(unique),), -torch.inf, device=index.device)
    best = best.scatter_reduce(0, inverse, priority, reduce="amax")
    order = torch.arange(len(index), device=index.device)
    candidate = torch.where(priority == best[inverse], order, len(index))
    first = torch.full((len(unique),), len(index), device=index.device)
    return first.scatter_reduce(0, inverse, candidate, reduce="amin")


@torch.no_grad()
def ignore_mask(
    pred_boxes: Tensor, targets: list[dict[str, Tensor]], iou_threshold: float
) -> Tensor:
    """(B, N) True where a decoded prediction overlaps a ground truth of its own image by
    more than `iou_threshold`: such predictions are not penalised as negatives."""
    batch, n = pred_boxes.shape[:2]
    most = max((len(t["boxes"]) for t in targets), default=0)
    if most == 0:
        return torch.zeros(batch, n, dtype=torch.bool, device=pred_boxes.device)
    padded = torch.zeros(batch, most, 4, device=pred_boxes.device)
    for b, t in enumerate(targets):  # B small copies; the IoU itself is batched
        padded[b, : len(t["boxes"])] = t["boxes"].to(pred_boxes.device)
    iou = _batched_iou(pred_boxes.float(), padded)  # padding boxes have zero area: IoU 0
    return iou.amax(dim=2) > iou_threshold


def _batched_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of (B, N, 4) and (B, M, 4) xyxy boxes: (B, N, M)."""
    top_left = torch.max(a[:, :, None, :2], b[:, None, :, :2])
    bottom_right = torch.min(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, :, None] + area_b[:, None, :] - inter).clamp(min=1e-9)
