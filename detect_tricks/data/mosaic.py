"""Mosaic (YOLOv4 §3.3, Bochkovskiy et al. 2020; ultralytics `data/augment.py`, `Mosaic`
and `RandomPerspective`; YOLOX's "strong augmentation"): four training photos around a
random centre of a 2S x 2S canvas, then a random scale and translation and a crop to the
S x S input.

- Each photo is resized so that its longer side is S and placed in its quadrant with a
  corner at the centre (cx, cy), drawn uniformly in [S/2, 3S/2]; what falls past the
  canvas's edge is cut, and the rest of the canvas is the mean colour (`EXPAND_FILL`, as
  random expand's).
- The affine is a scale s ~ U(scale_range) about the canvas centre, which then lands at
  ((0.5 + tx) S, (0.5 + ty) S), tx, ty ~ U(-translate, translate) (ultralytics' defaults:
  scale 0.5, i.e. s in [0.5, 1.5], translate 0.1; no rotation or shear, which move boxes
  off their objects).
- Boxes follow, are clipped to their photo's part of the canvas and to the S x S output,
  and a box is kept when both its visible
  sides are at least `MIN_BOX_SIDE` px, at least `MIN_VISIBLE_AREA` of its object's area
  (at the output scale) is visible and its aspect ratio is under `MAX_ASPECT_RATIO`:
  ultralytics' `box_candidates` (wh_thr 2, area_thr 0.1, ar_thr 100), with the visible
  share measured against the whole object rather than the part left after placing.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from detect_tricks.data.det_transforms import EXPAND_FILL, Target, select_boxes

MIN_BOX_SIDE = 2.0  # px at the output size
MIN_VISIBLE_AREA = 0.1  # of the object's area at the output scale
MAX_ASPECT_RATIO = 100.0


def resize_long_side(image: np.ndarray, target: Target, side: int) -> tuple[np.ndarray, Target]:
    """Resize so that the longer side is `side` (area interpolation when shrinking)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale == 1:
        return image, target
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, size, interpolation=interpolation)
    factors = np.array([size[0] / w, size[1] / h] * 2, dtype=np.float32)
    return resized, {**target, "boxes": target["boxes"] * factors}


def quadrant_placement(
    index: int, cx: int, cy: int, w: int, h: int, canvas: int
) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """Where photo `index` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of size
    w x h goes: its canvas region (x0, y0, x1, y1), touching the centre, cut at the canvas
    edge, and the photo pixel that lands on the region's top-left."""
    x0, x1 = (max(cx - w, 0), cx) if index in (0, 2) else (cx, min(cx + w, canvas))
    y0, y1 = (max(cy - h, 0), cy) if index in (0, 1) else (cy, min(cy + h, canvas))
    left = w - (x1 - x0) if index in (0, 2) else 0  # a left quadrant keeps the photo's right
    top = h - (y1 - y0) if index in (0, 1) else 0  # a top quadrant keeps the photo's bottom
    return (x0, y0, x1, y1), (left, top)


@dataclass(frozen=True)
class MosaicGeometry:
    """The random part of a mosaic: the centre of the 2S canvas, the scale about it, and
    where it lands in the S x S output."""

    cx: int
    cy: int
    scale: float
    tx: float  # the canvas centre's x in the output, pixels
    ty: float

    def matrix(self, size: int) -> np.ndarray:
        """The 2 x 3 affine from canvas to output pixels."""
        s = self.scale
        return np.array([[s, 0.0, self.tx - s * size], [0.0, s, self.ty - s * size]])


def draw_geometry(
    size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.5, 1.5),
    translate: float = 0.1,
) -> MosaicGeometry:
    """Centre ~ U[S/2, 3S/2]^2, scale ~ U(scale_range), landing point ~
    (0.5 + U(-translate, translate)) S per axis."""
    cx, cy = (int(rng.uniform(size / 2, 3 * size / 2)) for _ in range(2))
    scale = float(rng.uniform(*scale_range))
    tx, ty = (float(rng.uniform(0.5 - translate, 0.5 + translate) * size) for _ in range(2))
    return MosaicGeometry(cx, cy, scale, tx, ty)


def mosaic(
    samples: list[tuple[np.ndarray, Target]], size: int, geometry: MosaicGeometry
) -> tuple[np.ndarray, Target]:
    """Four samples as one `size` x `size` training image with their boxes (module
    docstring). Labels and per-box weights follow their boxes."""
    if len(samples) != 4:
        raise ValueError(f"mosaic takes 4 samples, got {len(samples)}")
    canvas_side = 2 * size
    canvas = np.full((canvas_side, canvas_side, 3), EXPAND_FILL, dtype=np.uint8)
    placed: list[Target] = []
    shown: list[np.ndarray] = []  # each box clipped to its photo's region of the canvas
    for index, (image, target) in enumerate(samples):
        image, target = resize_long_side(image, target, size)
        h, w = image.shape[:2]
        region, (left, top) = quadrant_placement(index, geometry.cx, geometry.cy, w, h, canvas_side)
        x0, y0, x1, y1 = region
        canvas[y0:y1, x0:x1] = image[top : top + y1 - y0, left : left + x1 - x0]
        boxes = target["boxes"] + np.array([x0 - left, y0 - top] * 2, dtype=np.float32)
        placed.append({**target, "boxes": boxes})
        shown.append(np.clip(boxes, [x0, y0, x0, y0], [x1, y1, x1, y1]))
    target = {key: np.concatenate([t[key] for t in placed]) for key in placed[0]}
    matrix = geometry.matrix(size)
    out = cv2.warpAffine(
        canvas, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=EXPAND_FILL
    )
    scale, offset = geometry.scale, np.array([matrix[0, 2], matrix[1, 2]] * 2)
    whole = target["boxes"] * scale + offset
    visible = np.clip(np.concatenate(shown) * scale + offset, 0, size)
    kept = {**target, "boxes": visible.astype(np.float32)}
    return out, select_boxes(kept, keep_visible(whole, visible))


def keep_visible(whole: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Which boxes stay: the rule of the module docstring, for the objects' `whole` boxes
    and their `visible` (clipped) parts, both at the output scale."""
    visible_w, visible_h = visible[:, 2] - visible[:, 0], visible[:, 3] - visible[:, 1]
    whole_area = (whole[:, 2] - whole[:, 0]) * (whole[:, 3] - whole[:, 1])
    aspect = np.maximum(visible_w / (visible_h + 1e-9), visible_h / (visible_w + 1e-9))
    return (
        (visible_w >= MIN_BOX_SIDE)
        & (visible_h >= MIN_BOX_SIDE)
        & (visible_w * visible_h >= MIN_VISIBLE_AREA * whole_area)
        & (aspect < MAX_ASPECT_RATIO)
    )
