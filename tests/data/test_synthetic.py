"""The generated demo dataset: deterministic, loads as COCO, boxes cover the objects."""

from __future__ import annotations

import hashlib

import numpy as np

from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.synthetic import CLASSES, generate


def _digest(folder) -> str:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_generated_set_loads_through_the_coco_dataset(tmp_path):
    generate(tmp_path / "demo", num_images=12, seed=3, val_fraction=0.25)
    train = CocoDetection(
        tmp_path / "demo/annotations/instances_train.json", tmp_path / "demo/images"
    )
    val = CocoDetection(tmp_path / "demo/annotations/instances_val.json", tmp_path / "demo/images")
    assert (len(train), len(val)) == (9, 3)
    assert train.class_names == list(CLASSES)
    assert sum(len(r.boxes) for r in train.records) >= 9
    assert train.report.degenerate == 0 and train.report.clipped == 0
    image, record = train.load(0)
    assert image.shape == (record.height, record.width, 3)


def test_boxes_are_the_extent_of_each_objects_visible_pixels(monkeypatch):
    """Paint object k in its own flat colour on black, then check each box against the
    pixels of that colour: the box holds all of them and touches them on every side."""
    import detect_tricks.data.synthetic as synthetic

    painted = []

    def flat_colour(size, rng):
        painted.append((len(painted) + 1) * 30)
        return np.full((size, size, 3), (painted[-1], 255 - painted[-1], 77), np.uint8)

    monkeypatch.setattr(synthetic, "_texture", flat_colour)
    monkeypatch.setattr(synthetic, "_background", lambda h, w, rng: np.zeros((h, w, 3), np.uint8))
    checked = 0
    for seed in range(8):
        painted.clear()
        image, objects = synthetic.render_scene(np.random.default_rng([11, seed]))
        extents = set()
        for value in painted:
            pixels = np.argwhere(image[..., 0] == value)
            if len(pixels):
                (y0, x0), (y1, x1) = pixels.min(0), pixels.max(0) + 1
                extents.add((float(x0), float(y0), float(x1 - x0), float(y1 - y0)))
        for _, box in objects:
            assert tuple(box) in extents, (seed, box)
            checked += 1
    assert checked >= 15


def test_same_seed_same_bytes(tmp_path):
    generate(tmp_path / "a", num_images=3, seed=1)
    generate(tmp_path / "b", num_images=3, seed=1)
    generate(tmp_path / "c", num_images=3, seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
