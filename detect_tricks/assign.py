"""YOLOv3 target assignment and box coding (GluonCV `yolo_target.py`, docs/design.md §3).

Predictions of all levels are handled flattened: index `n` of `(B, N, 5 + C)` runs over
levels (stride 8 first), then anchors, rows and columns. A `Grid` gives, per index, the
cell, the stride and the anchor, so coding is plain tensor arithmetic:

    centre = (sigmoid(t_xy) + cell) * stride        t_xy = centre / stride - cell
    size   = exp(t_wh) * anchor                     t_wh = log(size / anchor)

Each ground-truth box gets exactly one positive: the anchor (of all 9) with the best
shape-only IoU picks the level, the cell holding the box centre picks the place. Box
weight `2 - w * h / (W * H)` favours small boxes; the mixup weight rides along. All of
it is vectorised over the batch on the training device, and none of it waits for the
device: no result's size depends on the data (boxes that lose their place are masked,
not dropped), and no Python list is copied to the device per step (a pageable
host-to-device copy synchronises the stream). A `Grid` is built once per input size by
its user (`YOLOv3Loss` keeps them).
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
    level_offset: Tensor  # (L,) `offsets` on the device
    level_shape: Tensor  # (L, 2) `shapes` on the device
    level_stride: Tensor  # (L,) `strides` on the device, float


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
        level_offset=torch.tensor(offsets, device=device),
        level_shape=torch.tensor(shapes, device=device),
        level_stride=torch.tensor(strides, dtype=torch.float32, device=device),
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
    """Per ground-truth box of the batch (M of them) its place and targets; the boxes
    with `kept` False lost their cell and anchor to another box and are not positives."""

    index: Tensor  # (M,) flattened index into (B * N)
    t_xy: Tensor  # (M, 2) in [0, 1]
    t_wh: Tensor  # (M, 2)
    box_weight: Tensor  # (M,) 2 - w * h / (W * H)
    mix_weight: Tensor  # (M,) mixup weight of the box (1 when not mixed)
    labels: Tensor  # (M,) int64
    kept: Tensor  # (M,) bool: at most one kept box per index

    @property
    def collisions(self) -> Tensor:
        """How many boxes lost their place, as a 0-d float tensor on the device."""
        return (~self.kept).sum().float()


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
    (`box_weight * mix_weight`), ties going to the first box of the batch. `grid` must
    be `build_grid(image_size, anchors, ...)`."""
    device = anchors.device
    boxes = torch.cat([t["boxes"] for t in targets]).to(device).float()
    labels = torch.cat([t["labels"] for t in targets]).to(device)
    mix = torch.cat([t["weights"] for t in targets]).to(device).float()
    image_of_box = torch.cat(
        [torch.full((len(t["boxes"]),), b, device=device) for b, t in enumerate(targets)]
    )
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
    best = shape_iou(wh, anchors.reshape(-1, 2)).argmax(dim=1)
    level, anchor_in_level = best // 3, best % 3
    strides = grid.level_stride[level]
    sizes = grid.level_shape[level]  # (M, 2) as (H, W)
    offsets = grid.level_offset[level]
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
    return AssignedTargets(
        index=index,
        t_xy=centre / strides[:, None] - cell,
        t_wh=torch.log(wh / anchors.reshape(-1, 2)[best]),
        box_weight=box_weight,
        mix_weight=mix,
        labels=labels,
        kept=_heaviest_per_slot(index, box_weight * mix, len(targets) * len(grid.cell)),
    )


def _heaviest_per_slot(index: Tensor, priority: Tensor, slots: int) -> Tensor:
    """(M,) True for the box to keep per distinct `index` in `[0, slots)`: the largest
    priority, then the first box. Reductions over a fixed-size slot table, so nothing
    waits for the device (as `torch.unique` would) and no result depends on scatter
    order."""
    device = index.device
    best = torch.full((slots,), -torch.inf, device=device)
    best = best.scatter_reduce(0, index, priority, reduce="amax")
    order = torch.arange(len(index), device=device)
    candidate = torch.where(priority == best[index], order, len(index))
    first = torch.full((slots,), len(index), device=device)
    first = first.scatter_reduce(0, index, candidate, reduce="amin")
    return first[index] == order


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
