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


def decode_boxes(raw: Tensor, grid: Grid, grid_alpha: float = 1.0) -> Tensor:
    """`(..., N, 4)` raw `t_xy, t_wh` to `(..., N, 4)` xyxy boxes in input pixels; with
    `grid_alpha` > 1 the centre is grid-sensitive (`centre_offset`)."""
    return _decode(raw, grid.cell, grid.stride, grid.anchor, grid_alpha)


def decode_boxes_at(raw: Tensor, grid: Grid, position: Tensor, grid_alpha: float = 1.0) -> Tensor:
    """`(P, 4)` raw outputs of the predictions at grid positions `position` (P,) to xyxy
    boxes in input pixels."""
    return _decode(
        raw, grid.cell[position], grid.stride[position], grid.anchor[position], grid_alpha
    )


def _decode(raw: Tensor, cell: Tensor, stride: Tensor, anchor: Tensor, grid_alpha: float) -> Tensor:
    centre = (centre_offset(raw[..., :2], grid_alpha) + cell) * stride
    size = raw[..., 2:4].exp() * anchor
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def centre_offset(t_xy: Tensor, grid_alpha: float = 1.0) -> Tensor:
    """The box centre's offset from its cell, in cells: `sigmoid(t)` (YOLOv3), or with
    grid sensitivity `alpha * sigmoid(t) - (alpha - 1) / 2` (YOLOv4 §3.4 "eliminate grid
    sensitivity"; PP-YOLO: alpha 1.05; YOLOv5: 2 sigmoid(t) - 0.5), which reaches the
    cell's borders (and past them for alpha > 1) at finite logits."""
    if grid_alpha == 1.0:
        return t_xy.sigmoid()
    return grid_alpha * t_xy.sigmoid() - (grid_alpha - 1) / 2


def centre_target(offset: Tensor, grid_alpha: float = 1.0) -> Tensor:
    """The `sigmoid(t)` that puts the centre at `offset` cells from its cell (the inverse
    of `centre_offset`): the BCE target of the centre term."""
    if grid_alpha == 1.0:
        return offset
    return (offset + (grid_alpha - 1) / 2) / grid_alpha


ASSIGN_MODES = ("best", "multi_anchor", "neighbours")
MULTI_ANCHOR_IOU = 0.213  # YOLOv4's iou_thresh (cfg/yolov4.cfg)


@dataclass
class AssignedTargets:
    """Per candidate positive of the batch's boxes (M boxes, K candidates each, box-major)
    its place and targets; `valid` False marks a candidate the assignment did not pick
    (another anchor, a neighbour past the border) and `kept` False also one that lost its
    place to a heavier box: only `kept` candidates are positives."""

    index: Tensor  # (P,) flattened index into (B * N)
    t_xy: Tensor  # (P, 2) the centre's offset from the cell, in cells
    t_wh: Tensor  # (P, 2)
    box_weight: Tensor  # (P,) 2 - w * h / (W * H)
    mix_weight: Tensor  # (P,) mixup weight of the box (1 when not mixed)
    labels: Tensor  # (P,) int64
    boxes: Tensor  # (P, 4) the ground-truth box, xyxy pixels
    valid: Tensor  # (P,) bool
    kept: Tensor  # (P,) bool: valid, and at most one kept candidate per index

    @property
    def collisions(self) -> Tensor:
        """How many picked candidates lost their place, as a 0-d float tensor."""
        return (self.valid & ~self.kept).sum().float()


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
    mode: str = "best",
    anchor_iou: float = MULTI_ANCHOR_IOU,
) -> AssignedTargets:
    """The positives of each box. `best` (YOLOv3, GluonCV): the anchor (of all 9) with the
    best shape IoU picks the level, the cell holding the centre the place.
    `multi_anchor` (YOLOv4): every anchor whose shape IoU exceeds `anchor_iou`, and the
    best one, each at the centre's cell of its level. `neighbours` (YOLOv5's cells on
    YOLOv4's anchors): each of those also at the two cells next to it nearest the
    centre, left or right and up or down, when inside the grid and the centre is not
    within a cell of the border (needs `grid_alpha` >= 2 to reach the centre from
    there). Two candidates on one cell and anchor keep the larger loss weight
    (`box_weight * mix_weight`), ties going to the first box of the batch. `grid` must
    be `build_grid(image_size, anchors, ...)`."""
    if mode not in ASSIGN_MODES:
        raise ValueError(f"assignment mode must be one of {ASSIGN_MODES}, got {mode!r}")
    device = anchors.device
    boxes = torch.cat([t["boxes"] for t in targets]).to(device).float()
    labels = torch.cat([t["labels"] for t in targets]).to(device)
    mix = torch.cat([t["weights"] for t in targets]).to(device).float()
    image_of_box = torch.cat(
        [torch.full((len(t["boxes"]),), b, device=device) for b, t in enumerate(targets)]
    )
    flat_anchors = anchors.reshape(-1, 2)
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
    ious = shape_iou(wh, flat_anchors)
    best = ious.argmax(dim=1)
    if mode == "best":
        anchor_id, picked = best[:, None], torch.ones_like(best[:, None], dtype=torch.bool)
    else:  # all nine anchors as candidates, the assignment's ones picked
        anchor_id = torch.arange(len(flat_anchors), device=device).expand(len(boxes), -1)
        picked = (ious > anchor_iou) | (anchor_id == best[:, None])
    level, anchor_in_level = anchor_id // 3, anchor_id % 3  # (M, A)
    strides = grid.level_stride[level][..., None]  # (M, A, 1)
    sizes = grid.level_shape[level].flip(-1)  # (M, A, 2) as (W, H)
    position = ((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None, :] / strides  # centre in cells
    cell = torch.minimum(torch.floor(position).clamp(min=0), sizes - 1)
    cells, in_grid = cell[:, :, None, :], picked[:, :, None]
    if mode == "neighbours":
        cells, in_grid = _with_neighbours(position, cell, sizes, picked)
    k = cells.shape[2]
    index = (
        image_of_box[:, None, None] * len(grid.cell)
        + grid.level_offset[level][..., None]
        + (anchor_in_level * sizes.prod(-1))[..., None]
        + cells[..., 1].long() * sizes[..., None, 0]
        + cells[..., 0].long()
    )
    box_weight = 2 - wh.prod(1) / (image_size[0] * image_size[1])
    t_wh = torch.log(wh[:, None, :] / flat_anchors[anchor_id])  # (M, A, 2)

    def per_candidate(values: Tensor) -> Tensor:  # (M, ...) -> (M * A * K, ...)
        shape = (len(boxes), anchor_id.shape[1], k, *values.shape[1:])
        return values[:, None, None].expand(shape).reshape(-1, *values.shape[1:])

    valid = in_grid.reshape(-1)
    weight = per_candidate(box_weight * mix)
    priority = torch.where(valid, weight, -torch.inf)
    slots = len(targets) * len(grid.cell)
    index = index.reshape(-1)
    return AssignedTargets(
        index=index,
        t_xy=(position[:, :, None, :] - cells).reshape(-1, 2),
        t_wh=t_wh[:, :, None, :].expand(-1, -1, k, -1).reshape(-1, 2),
        box_weight=per_candidate(box_weight),
        mix_weight=per_candidate(mix),
        labels=per_candidate(labels),
        boxes=per_candidate(boxes),
        valid=valid,
        kept=valid & _heaviest_per_slot(index, priority, slots),
    )


def _with_neighbours(
    position: Tensor, cell: Tensor, sizes: Tensor, picked: Tensor
) -> tuple[Tensor, Tensor]:
    """The centre's cell and its two neighbours nearest the centre (YOLOv5
    `build_targets`, g = 0.5): left when the centre is in the cell's left half and more
    than one cell from the left border, else right when in the right half and more than
    one cell from the right border; up or down alike. (M, A, 3, 2) cells and (M, A, 3)
    flags, the neighbours flagged only where that rule picks them."""
    fraction = position - cell
    near_low = (fraction < 0.5) & (position > 1)
    near_high = (fraction > 0.5) & (sizes - position > 1)
    step = torch.where(near_low, -1.0, 1.0)
    horizontal = cell + torch.stack([step[..., 0], torch.zeros_like(step[..., 0])], -1)
    vertical = cell + torch.stack([torch.zeros_like(step[..., 1]), step[..., 1]], -1)
    has = near_low | near_high  # (M, A, 2): x, y
    # a neighbour not picked stays inside the grid, so that its index is valid
    cells = torch.stack([cell, horizontal, vertical], dim=2)
    cells = torch.minimum(cells.clamp(min=0), sizes[:, :, None, :] - 1)
    flags = torch.stack([picked, picked & has[..., 0], picked & has[..., 1]], dim=2)
    return cells, flags


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
