"""Tiny COCO-format detection data: coloured rectangles on dark noise, two categories
with non-contiguous ids, for the tool and robustness tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {1: (220, 30, 30), 5: (30, 30, 220)}  # category id -> colour (ids not contiguous)


def one_box_ground_truth() -> dict:
    """A COCO ground truth of one 100 x 80 image holding one 30 x 20 box of category 17."""
    return {
        "images": [{"id": 5, "width": 100, "height": 80}],
        "annotations": [
            {
                "id": 1,
                "image_id": 5,
                "category_id": 17,
                "bbox": [10, 10, 30, 20],
                "area": 600,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 17, "name": "cat"}],
    }


def write_split(root: Path, name: str, count: int, rng: np.random.Generator) -> Path:
    images, annotations = [], []
    for i in range(count):
        w, h = int(rng.integers(80, 120)), int(rng.integers(80, 120))
        pixels = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
        for category_id, colour in COLOURS.items():
            bw, bh = int(rng.integers(20, 40)), int(rng.integers(20, 40))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            pixels[y : y + bh, x : x + bw] = colour
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 100 + i,
                    "category_id": category_id,
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        file_name = f"{name}_{i}.png"
        Image.fromarray(pixels).save(root / "images" / file_name)
        images.append({"id": 100 + i, "file_name": file_name, "width": w, "height": h})
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "red"}, {"id": 5, "name": "blue"}],
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def write_tiny_coco(root: Path, train: int = 8, val: int = 4) -> Path:
    """`root/images/*.png`, `root/train.json` and `root/val.json`; returns `root`."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_split(root, "train", train, rng)
    write_split(root, "val", val, rng)
    return root


def tiny_det_config(root: Path, path: Path) -> Path:
    """A one-epoch config of a tiny YOLOv3 on `write_tiny_coco(root)`'s data."""
    path.write_text(
        f"""model: {{arch: yolov3_resnet18_d, width: 0.125, num_classes: 2}}
data:
  train_ann: {root}/train.json
  train_images: {root}/images
  val_ann: {root}/val.json
  val_images: {root}/images
  size: 64
schedule: {{steps: [1]}}
tricks: {{random_shape_sizes: [64, 96], random_shape_interval: 1, mixup_off_epochs: 0}}
train: {{epochs: 1, batch_size: 4, workers: 0, log_interval: 1}}
eval: {{batch_size: 4}}
"""
    )
    return path
