"""YOLO txt labels (ultralytics' and darknet's format) read into a COCO-format dict.

A split is a folder of images and a folder of labels with the same stems: one line per
box, `class cx cy w h`, the centre and size as fractions of the image's width and
height. An image without a label file has no boxes. The sizes come from the pixels (each
image decoded once, `data/image_check.py`, so EXIF-rotated photos get their upright
size), category ids are the class index + 1, in the order of the names given. Every
bad line is an error naming the file and the line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import is_finite_number, read_text
from detect_tricks.data.image import list_image_files
from detect_tricks.data.image_check import check_images

logger = logging.getLogger(__name__)
SLACK = 1e-3  # labellers' rounding: a coordinate this far outside [0, 1] is clipped


def yolo_to_coco(images: str | Path, labels: str | Path, names: list[str]) -> dict[str, Any]:
    """The COCO dict of a YOLO split (module docstring); `file_name`s are relative to
    `images`."""
    images, labels = Path(images), Path(labels)
    if not names:
        raise DatasetError("YOLO labels need the class names, in class-index order")
    if not images.is_dir():
        raise DatasetError(f"no image folder at {images}")
    if not labels.is_dir():
        raise DatasetError(f"no label folder at {labels}")
    paths, _ = list_image_files(images)
    if not paths:
        raise DatasetError(f"no image files in {images}")
    stems = [p.stem for p in paths]
    shared = sorted({s for s in stems if stems.count(s) > 1})
    if shared:
        raise DatasetError(
            f"{images}: several images share the stem {shared[0]} (e.g. .jpg and .png), so "
            f"{shared[0]}.txt cannot say whose boxes it holds"
        )
    sizes = check_images([str(p) for p in paths])
    coco: dict[str, Any] = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(names)],
    }
    for image_id, (path, size) in enumerate(zip(paths, sizes, strict=True), start=1):
        if isinstance(size, str):
            raise DatasetError(size)
        width, height = size
        coco["images"].append(
            {"id": image_id, "file_name": path.name, "width": width, "height": height}
        )
        label_file = labels / f"{path.stem}.txt"
        if label_file.is_file():
            for box, label in _read_label_file(label_file, len(names)):
                cx, cy, w, h = box
                x, y = (cx - w / 2) * width, (cy - h / 2) * height
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": label + 1,
                        "bbox": [x, y, w * width, h * height],
                        "area": w * width * h * height,
                        "iscrowd": 0,
                    }
                )
    stems = {p.stem for p in paths}
    orphans = sorted(p.name for p in labels.glob("*.txt") if p.stem not in stems)
    if orphans:
        logger.warning(
            "%s: %d label files have no image (first: %s)", labels, len(orphans), orphans[0]
        )
    return coco


def _read_label_file(path: Path, classes: int) -> list[tuple[list[float], int]]:
    boxes = []
    for number, line in enumerate(read_text(path, "a label file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        if len(fields) != 5:
            raise DatasetError(f"{where}: expected 'class cx cy w h', got {line!r}")
        try:
            label, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise DatasetError(
                f"{where}: expected an integer class and four numbers, got {line!r}"
            ) from None
        if not 0 <= label < classes:
            raise DatasetError(f"{where}: class {label} is not one of the {classes} names given")
        if not all(is_finite_number(v) and -SLACK <= v <= 1 + SLACK for v in values):
            raise DatasetError(
                f"{where}: centre and size must be fractions of the image in [0, 1], got {line!r}"
            )
        boxes.append(([min(max(v, 0.0), 1.0) for v in values], label))
    return boxes
