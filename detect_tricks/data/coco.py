"""COCO-format detection data: a JSON of images, categories and annotations, and images.

Everything is checked when the file is read, with errors that name the file and the
entry: a broken JSON, an annotation naming an unknown image or category, a missing image
file. Category ids of any kind (non-contiguous, starting anywhere) map to labels
0..C-1 in id order and back. `iscrowd` boxes stay out of the training targets; boxes
are clipped to their image and dropped when nothing is left (width or height <= 0);
images without boxes are kept. A one-line summary says what was dropped.

With `skip_bad_images`, entries that would be errors are skipped and counted instead.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.image import read_rgb
from detect_tricks.data.image_check import readable_indices
from detect_tricks.data.records import ImageRecord

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What reading an annotation file dropped or changed."""

    images: int = 0
    boxes: int = 0
    crowd: int = 0
    clipped: int = 0
    degenerate: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self, source: str, categories: int) -> str:
        line = (
            f"{source}: {self.images} images, {categories} categories, {self.boxes} boxes "
            f"({self.clipped} clipped to their image, {self.degenerate} degenerate dropped, "
            f"{self.crowd} crowd kept out of training)"
        )
        if self.skipped:
            line += f"; skipped {len(self.skipped)} bad entries (first: {self.skipped[0]})"
        return line


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file's content; a folder, an unreadable file or bytes that are not
    UTF-8 are a DatasetError naming the file."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise DatasetError(f"{path} is a folder, not {what}") from None
    except OSError as err:
        raise DatasetError(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        bad = err.object[err.start : err.start + 1]
        raise DatasetError(f"{path} is not UTF-8 text (byte {err.start}: {bad!r})") from None


def write_coco_file(data: dict[str, Any], path: Path) -> str:
    """Write a COCO annotation dict as JSON; returns the line that says what it holds."""
    path.write_text(json.dumps(data) + "\n")
    images, boxes = len(data["images"]), len(data["annotations"])
    names = [c["name"] for c in data["categories"]]
    return f"{path}: {images} images, {boxes} boxes, classes {names}"


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; errors name the file (and the line and column of a syntax error)."""
    path = Path(path)
    text = read_text(path, "an annotation file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from err
    except RecursionError:
        raise DatasetError(f"{path} nests its JSON too deeply to be an annotation file") from None


class CocoDetection:
    """The images and boxes of a COCO-format annotation file.

    Args:
        ann: the JSON file (COCO `instances_*.json` layout), or its parsed content.
        image_dir: the folder the images' `file_name`s are relative to; None for the
            annotations alone (evaluating a results file: no image is read).
        skip_bad_images: skip (and count) bad entries and unreadable images.
        source: how to name `ann` in messages (default: its path).
    """

    def __init__(
        self,
        ann: str | Path | dict[str, Any],
        image_dir: str | Path | None,
        skip_bad_images: bool = False,
        source: str | None = None,
    ) -> None:
        self.source = source or str(ann)
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.skip_bad_images = skip_bad_images
        data = ann if isinstance(ann, dict) else read_json(ann)
        for key in ("images", "annotations", "categories"):
            if not isinstance(data, dict) or not isinstance(data.get(key), list):
                raise DatasetError(f"{self.source}: a COCO file holds a list under '{key}'")
        if not data["categories"]:
            raise DatasetError(f"{self.source}: 'categories' is empty")
        categories = sorted(self._checked_categories(data["categories"]), key=lambda c: c["id"])
        self.category_ids = [c["id"] for c in categories]
        self.class_names = [str(c.get("name", c["id"])) for c in categories]
        self.report = LoadReport()
        self.records = self._read_records(data)
        logger.info(self.report.summary(self.source, len(self.class_names)))

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, indices: list[int]) -> CocoDetection:
        """The same source restricted to the records at `indices` (in that order)."""
        view = copy.copy(self)
        view.records = [self.records[i] for i in indices]
        return view

    def checked(self) -> CocoDetection:
        """This source with every image decoded once (`data/image_check.py`): one that
        cannot be read, or is not its annotated size, is an error naming it, or with
        `skip_bad_images` is left out (counted)."""
        kept = readable_indices(
            [r.path for r in self.records],
            self.source,
            self.skip_bad_images,
            [(r.width, r.height) for r in self.records],
        )
        return self if len(kept) == len(self.records) else self.subset(kept)

    def evaluation_ground_truth(self) -> dict[str, Any]:
        """The checked records as a COCO dict for COCOeval: what training reads is what
        evaluation scores (duplicate or missing annotation ids, degenerate boxes and
        missing `area` or `iscrowd` in the file cannot change the metric)."""
        images, annotations = [], []
        for record in self.records:
            images.append(
                {
                    "id": record.image_id,
                    "file_name": Path(record.path).name,
                    "width": record.width,
                    "height": record.height,
                }
            )
            regions = [
                (record.boxes, record.labels, record.areas, 0),
                (record.crowd_boxes, record.crowd_labels, _box_areas(record.crowd_boxes), 1),
            ]
            for boxes, labels, areas, crowd in regions:
                for box, label, area in zip(boxes.tolist(), labels.tolist(), areas, strict=True):
                    x0, y0, x1, y1 = box
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": record.image_id,
                            "category_id": self.category_ids[label],
                            "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "area": float(area),
                            "iscrowd": crowd,
                        }
                    )
        categories = [
            {"id": cid, "name": name}
            for cid, name in zip(self.category_ids, self.class_names, strict=True)
        ]
        return {"images": images, "annotations": annotations, "categories": categories}

    def _bad(self, message: str) -> None:
        if not self.skip_bad_images:
            raise DatasetError(f"{self.source}: {message} (data.skip_bad_images: true skips it)")
        self.report.skipped.append(message)

    def _checked_categories(self, categories: list[Any]) -> list[dict[str, Any]]:
        """Every category is a mapping with a distinct integer `id` (always an error: a
        skipped category would silently relabel the others)."""
        seen: dict[int, int] = {}
        for index, category in enumerate(categories):
            cid = category.get("id") if isinstance(category, dict) else None
            if not _is_integer(cid):
                raise DatasetError(
                    f"{self.source}: category {index} needs an integer 'id', got {category!r}"
                )
            if cid in seen:
                raise DatasetError(
                    f"{self.source}: categories {seen[cid]} and {index} share the id {cid}"
                )
            seen[cid] = index
        return categories

    def _read_records(self, data: dict[str, Any]) -> list[ImageRecord]:
        label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        records: dict[int, ImageRecord] = {}
        entry_of: dict[int, int] = {}  # image id -> its index in 'images'
        known_images = set()
        for index, entry in enumerate(data["images"]):
            image_id = entry.get("id") if isinstance(entry, dict) else None
            if _is_integer(image_id) and image_id in entry_of:
                # The later entry would replace the earlier, and its boxes land on the
                # wrong picture: never skipped silently, always an error.
                raise DatasetError(
                    f"{self.source}: images {entry_of[image_id]} and {index} share the id "
                    f"{image_id}"
                )
            record = self._image_record(entry, index)
            if _is_integer(image_id):
                entry_of[image_id] = index
                known_images.add(image_id)
            if record is not None:
                records[record.image_id] = record
        boxes: dict[int, list[list[float]]] = {i: [] for i in records}
        labels: dict[int, list[int]] = {i: [] for i in records}
        areas: dict[int, list[float]] = {i: [] for i in records}
        crowd: dict[int, list[tuple[list[float], int]]] = {i: [] for i in records}
        for index, ann in enumerate(data["annotations"]):
            if not isinstance(ann, dict):
                self._bad(f"annotation {index} is not a mapping: {ann!r}")
                continue
            where = f"annotation {index} (id {ann.get('id')})"
            wrong_type = [
                f"'{key}' is {ann.get(key)!r}"
                for key in ("image_id", "category_id")
                if key in ann and not _is_integer(ann[key])
            ]
            if wrong_type:
                self._bad(f"{where}: ids must be integers, but {' and '.join(wrong_type)}")
                continue
            if ann.get("image_id") not in known_images:
                self._bad(f"{where} names image_id {ann.get('image_id')}, not in 'images'")
                continue
            if ann.get("category_id") not in label_of:
                self._bad(
                    f"{where} names category_id {ann.get('category_id')}, not one of "
                    f"{self.category_ids}"
                )
                continue
            if ann["image_id"] not in records:  # the image itself was skipped
                continue
            image_id, label = ann["image_id"], label_of[ann["category_id"]]
            box = self._clip(ann, records[image_id], where)
            if box is None:
                continue
            if ann.get("iscrowd", 0):
                crowd[image_id].append((box, label))
                continue
            boxes[image_id].append(box)
            labels[image_id].append(label)
            area = ann.get("area")
            box_area = (box[2] - box[0]) * (box[3] - box[1])
            areas[image_id].append(area if is_finite_number(area) and area > 0 else box_area)
        for image_id, record in records.items():
            record.boxes = np.asarray(boxes[image_id], dtype=np.float32).reshape(-1, 4)
            record.labels = np.asarray(labels[image_id], dtype=np.int64)
            record.areas = np.asarray(areas[image_id], dtype=np.float32)
            record.crowd_boxes = np.asarray(
                [b for b, _ in crowd[image_id]], dtype=np.float32
            ).reshape(-1, 4)
            record.crowd_labels = np.asarray([c for _, c in crowd[image_id]], dtype=np.int64)
        self.report.images = len(records)
        self.report.boxes = sum(len(r.boxes) for r in records.values())
        return list(records.values())

    def _image_record(self, entry: Any, index: int) -> ImageRecord | None:
        if not isinstance(entry, dict):
            self._bad(f"image entry {index} is not a mapping: {entry!r}")
            return None
        missing = [k for k in ("id", "file_name", "width", "height") if k not in entry]
        if missing:
            self._bad(f"image entry {index} (id {entry.get('id')}) lacks {', '.join(missing)}")
            return None
        wrong = [
            f"'{key}' is {entry[key]!r}"
            for key in ("id", "width", "height")
            if not _is_integer(entry[key]) or (key != "id" and entry[key] <= 0)
        ]
        if not isinstance(entry["file_name"], str):
            wrong.append(f"'file_name' is {entry['file_name']!r}")
        if wrong:
            self._bad(
                f"image entry {index}: expected an integer id, positive integer width and "
                f"height and a file_name string, but {', '.join(wrong)}"
            )
            return None
        if self.image_dir is None:
            path = Path(entry["file_name"])
        else:
            path = self.image_dir / entry["file_name"]
        if self.image_dir is not None and not path.is_file():
            self._bad(f"image {entry['id']}: file {path} does not exist")
            return None
        empty = np.zeros((0, 4), np.float32)
        return ImageRecord(
            int(entry["id"]),
            str(path),
            int(entry["width"]),
            int(entry["height"]),
            empty,
            np.zeros(0, np.int64),
        )

    def _clip(self, ann: dict[str, Any], record: ImageRecord, where: str) -> list[float] | None:
        """The annotation's box as xyxy clipped to the image, or None when it is
        degenerate or malformed (a crowd box is counted here; the caller keeps it apart)."""
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            self._bad(f"{where}: 'bbox' must be [x, y, width, height], got {bbox!r}")
            return None
        if not all(is_finite_number(v) for v in bbox):
            self._bad(f"{where}: 'bbox' must hold four finite numbers, got {bbox!r}")
            return None
        if ann.get("iscrowd", 0):
            self.report.crowd += 1
        x, y, w, h = (float(v) for v in bbox)
        box = [max(x, 0.0), max(y, 0.0), min(x + w, record.width), min(y + h, record.height)]
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            self.report.degenerate += 1
            return None
        if box != [x, y, x + w, y + h]:
            self.report.clipped += 1
        return box

    def load(self, index: int, reduce: int = 1) -> tuple[np.ndarray, ImageRecord]:
        """The RGB image of record `index` (checked against its annotated size); `reduce`
        as in `read_rgb` (the image may then be 1/reduce of the record's size per side,
        rounded up: scale boxes by the image's shape)."""
        record = self.records[index]
        image = read_rgb(record.path, reduce)
        reduced = (-(-record.height // reduce), -(-record.width // reduce))
        if image.shape[:2] not in ((record.height, record.width), reduced):
            raise ImageReadError(
                f"{record.path} is {image.shape[1]}x{image.shape[0]} pixels but {self.source} "
                f"says {record.width}x{record.height} (image id {record.image_id})"
            )
        return image, record


def _box_areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _is_integer(value: Any) -> bool:
    """A JSON integer (not a bool, a float or a numeric string)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """A JSON number (not a bool or a string) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
