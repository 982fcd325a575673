"""A COCO-format set with its large photos shrunk once, instead of at every load.

Training never uses more than `size / 0.3` pixels per side (`limit_size`), yet a 4600 px
photo is decoded in full and shrunk again at every epoch; phone-camera sets are made of
such photos. `shrink_coco_set` writes a copy of the set whose photos are at most
`max_side` pixels per side (by `limit_size`, the loader's own shrink), with every
box, area and polygon scaled to match; smaller photos are copied byte for byte. RLE
masks cannot be scaled without decoding them and detection reads boxes only: they are
dropped, and counted. The copy also fits sets into places with a size limit.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.coco import CocoDetection, read_json
from detect_tricks.data.det_transforms import limit_size

logger = logging.getLogger(__name__)


@dataclass
class ShrinkReport:
    """What `shrink_coco_set` did: photos shrunk and copied, masks dropped, bytes."""

    shrunk: int = 0
    copied: int = 0
    dropped_masks: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def summary(self, out: Path) -> str:
        return (
            f"{out}: {self.shrunk} photos shrunk, {self.copied} copied as they were, "
            f"{self.dropped_masks} RLE masks dropped; images {self.bytes_before / 2**20:.1f} MiB "
            f"-> {self.bytes_after / 2**20:.1f} MiB"
        )


def shrink_coco_set(
    ann: str | Path,
    image_dir: str | Path,
    out_dir: str | Path,
    max_side: int,
    jpeg_quality: int = 95,
) -> ShrinkReport:
    """Write `out_dir/annotations/<ann's name>` and `out_dir/images/...`: the set of `ann`
    with every photo longer than `max_side` shrunk to it.

    The annotation file is checked first as training reads it (`CocoDetection`), so a
    bad entry stops the copy before anything is written. Every other key of the file is
    kept as it was.
    """
    if max_side < 32:
        raise ValueError(f"max_side must be at least 32 pixels, got {max_side}")
    ann, image_dir, out_dir = Path(ann), Path(image_dir), Path(out_dir)
    if not image_dir.is_dir():
        raise DatasetError(f"no image folder at {image_dir}")
    if out_dir.exists() and not out_dir.is_dir():
        raise DatasetError(f"the output {out_dir} is a file; give a folder")
    data = read_json(ann)
    source = CocoDetection(data, image_dir, source=str(ann))  # one record per entry, in order
    out_images = out_dir / "images"
    out_ann = out_dir / "annotations" / ann.name
    targets = [out_images / Path(entry["file_name"]).name for entry in data["images"]]
    names = [t.name for t in targets]
    if len(set(names)) < len(names):
        shared = next(n for n in names if names.count(n) > 1)
        raise DatasetError(f"{ann}: two images are named {shared}; the copy keeps one folder")
    sources = {Path(r.path).resolve() for r in source.records}
    if out_ann.resolve() == ann.resolve() or any(t.resolve() in sources for t in targets):
        raise DatasetError(
            f"{out_dir}: the copy would be written over its source ({ann} or its images); "
            "give another output folder"
        )
    annotations_of: dict[int, list[dict[str, Any]]] = {}
    for annotation in data["annotations"]:
        annotations_of.setdefault(annotation["image_id"], []).append(annotation)
    report = ShrinkReport()
    for index, (entry, record, target) in enumerate(
        zip(data["images"], source.records, targets, strict=True)
    ):
        entry["file_name"] = target.name  # an absolute or nested name lands in images/
        target.parent.mkdir(parents=True, exist_ok=True)
        report.bytes_before += Path(record.path).stat().st_size
        if max(record.width, record.height) <= max_side:
            shutil.copyfile(record.path, target)
            report.copied += 1
        else:
            image, _ = source.load(index)  # decoded and checked against its entry's size
            factors = _write_shrunk(image, target, entry, max_side, jpeg_quality)
            for annotation in annotations_of.get(entry["id"], []):
                report.dropped_masks += _scale_annotation(annotation, *factors)
            report.shrunk += 1
        report.bytes_after += target.stat().st_size
        if (index + 1) % 500 == 0:
            logger.info("%d / %d images", index + 1, len(data["images"]))
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    (out_dir / "annotations" / ann.name).write_text(json.dumps(data) + "\n")
    return report


def _write_shrunk(
    image: np.ndarray, target: Path, entry: dict[str, Any], max_side: int, jpeg_quality: int
) -> tuple[float, float]:
    """Write `image` shrunk by the loader's own rule (`limit_size`), update its entry's
    size; the (x, y) scale factors."""
    shrunk, _ = limit_size(image, {"boxes": np.zeros((0, 4), np.float32)}, max_side)
    height, width = shrunk.shape[:2]
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
    if not cv2.imwrite(str(target), cv2.cvtColor(shrunk, cv2.COLOR_RGB2BGR), params):
        raise ImageReadError(f"cannot write {target}: OpenCV knows no format for its extension")
    factors = (width / entry["width"], height / entry["height"])
    entry["width"], entry["height"] = width, height
    return factors


def _scale_annotation(annotation: dict[str, Any], fx: float, fy: float) -> int:
    """Scale a box, its area and its polygons in place; 1 if an RLE mask was dropped."""
    x, y, w, h = annotation["bbox"]
    annotation["bbox"] = [x * fx, y * fy, w * fx, h * fy]
    if "area" in annotation:
        annotation["area"] = annotation["area"] * fx * fy
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):  # RLE
        del annotation["segmentation"]
        return 1
    if isinstance(segmentation, list):
        scale = np.array([fx, fy])
        annotation["segmentation"] = [
            (np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * scale).ravel().tolist()
            for polygon in segmentation
        ]
    return 0
