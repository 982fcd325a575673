"""Mosaic: boxes follow their objects' pixels through placement, scale, translation and
crop, to a pixel; a box is dropped exactly when too little of it is left."""

from __future__ import annotations

import numpy as np
import pytest

from detect_tricks.data.mosaic import (
    MosaicGeometry,
    draw_geometry,
    keep_visible,
    mosaic,
    quadrant_placement,
)

# Every object is a rectangle of its own colour on black, so its pixels can be found.
COLOURS = np.array(
    [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 255, 255],
    ],
    dtype=np.uint8,
)


def _photos(rng: np.random.Generator) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Four photos of 60-200 px a side, seven rectangles in all (one colour each), kept
    8 px from each other and from the photo's edges."""
    photos, label = [], 0
    for index in range(4):
        h, w = (int(v) for v in rng.integers(60, 200, 2))
        image = np.zeros((h, w, 3), np.uint8)
        boxes, labels = [], []
        for _ in range(2 if index < 3 else 1):
            # one rectangle in the left and one in the right half, so they never touch
            half = len(boxes)
            x_low, x_high = (8, w // 2 - 4) if half == 0 else (w // 2 + 4, w - 8)
            x0 = int(rng.integers(x_low, x_high - 12))
            x1 = int(rng.integers(x0 + 10, x_high))
            y0 = int(rng.integers(8, h - 20))
            y1 = int(rng.integers(y0 + 10, h - 8))
            image[y0:y1, x0:x1] = COLOURS[label]
            boxes.append([x0, y0, x1, y1])
            labels.append(label)
            label += 1
        target = {
            "boxes": np.array(boxes, np.float32),
            "labels": np.array(labels, np.int64),
            "weights": np.ones(len(labels), np.float32),
        }
        photos.append((image, target))
    return photos


def _extent(image: np.ndarray, label: int) -> tuple[np.ndarray, int]:
    """The box (xyxy, pixel edges) of the pixels that are mostly of `label`'s colour, and
    how many there are: each channel on the colour's side of half-way."""
    colour = COLOURS[label].astype(np.int16)
    mask = np.all(np.abs(image.astype(np.int16) - colour) < 128, axis=2)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return np.zeros(4), 0
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64), len(xs)


@pytest.mark.parametrize("size", [96, 128, 160])
def test_every_kept_box_covers_its_objects_pixels_to_a_pixel(size):
    kept_count, dropped_count = 0, 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        photos = _photos(rng)
        geometry = draw_geometry(size, rng, (0.5, 1.5), 0.1)
        image, target = mosaic(photos, size, geometry)
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        kept = dict(zip(target["labels"].tolist(), target["boxes"], strict=True))
        for label in range(len(COLOURS)):
            extent, pixels = _extent(image, label)
            if label in kept:
                box = kept[label]
                assert (box[2:] - box[:2] >= 2).all(), (seed, label, box)  # never empty
                np.testing.assert_allclose(box, extent, atol=1.0, err_msg=f"seed {seed}")
                kept_count += 1
            else:
                # Dropped: what is left of it is under the rule (with a pixel of slack
                # for the resampled edges): a side under 2 px or under 10% of its area.
                whole = _whole_area(photos, label, size, geometry)
                sides = extent[2:] - extent[:2]
                assert (
                    pixels == 0 or sides.min() < 2 + 1 or pixels < 0.1 * whole + 2 * sides.sum()
                ), (
                    seed,
                    label,
                )
                dropped_count += 1
    assert kept_count > 100 and dropped_count > 10  # both branches were exercised


def _whole_area(photos, label: int, size: int, geometry: MosaicGeometry) -> float:
    """The object's whole area at the output scale: its area in the photo, times the
    photo's resize to a long side of `size`, times the mosaic's scale, squared."""
    for image, target in photos:
        where = np.nonzero(target["labels"] == label)[0]
        if len(where):
            x0, y0, x1, y1 = target["boxes"][where[0]]
            factor = size / max(image.shape[:2]) * geometry.scale
            return float((x1 - x0) * (y1 - y0) * factor * factor)
    raise AssertionError(label)


def test_placement_touches_the_centre_and_cuts_at_the_canvas_edge():
    # A 50 x 40 photo in each quadrant around (30, 70) on a 100-px canvas.
    assert quadrant_placement(0, 30, 70, 50, 40, 100) == ((0, 30, 30, 70), (20, 0))
    assert quadrant_placement(1, 30, 70, 50, 40, 100) == ((30, 30, 80, 70), (0, 0))
    assert quadrant_placement(2, 30, 70, 50, 40, 100) == ((0, 70, 30, 100), (20, 0))
    assert quadrant_placement(3, 90, 70, 50, 40, 100) == ((90, 70, 100, 100), (0, 0))


def test_the_keep_rule_by_hand():
    whole = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 300, 3]], np.float32)
    visible = np.array(
        [[0, 0, 10, 1.9], [0, 0, 3.3, 3], [0, 0, 3.2, 3], [0, 0, 300, 2.9]], np.float32
    )
    # a side under 2 px; 9.9 of 100 px visible (>= 10% needed: 3.3 x 3 = 9.9 < 10); 9.6
    # too; an aspect ratio of 300 / 2.9 > 100
    assert keep_visible(whole, visible).tolist() == [False, False, False, False]
    visible[1] = [0, 0, 3.4, 3]  # 10.2 px of 100: kept
    assert keep_visible(whole, visible).tolist() == [False, True, False, False]


def test_the_geometry_draws_within_its_ranges():
    rng = np.random.default_rng(0)
    draws = [draw_geometry(100, rng, (0.5, 1.5), 0.1) for _ in range(2000)]
    assert min(g.cx for g in draws) >= 50 and max(g.cy for g in draws) < 150
    assert min(g.scale for g in draws) >= 0.5 and max(g.scale for g in draws) < 1.5
    assert min(g.tx for g in draws) >= 40 and max(g.ty for g in draws) <= 60
    # the canvas centre (100, 100) lands on (tx, ty)
    g = draws[0]
    np.testing.assert_allclose(g.matrix(100) @ [100, 100, 1], [g.tx, g.ty])
