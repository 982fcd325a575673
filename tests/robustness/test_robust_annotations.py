"""COCO and VOC annotation files: every bad entry is an error naming file, entry and field,
or with skip_bad_images skipped and counted; never a silent change of the data."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.voc import voc_to_coco
from robustness.case import Case, raises

GOOD = {
    "images": [
        {"id": 7, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 9, "file_name": "b.png", "width": 20, "height": 20},
    ],
    "annotations": [
        {"id": 1, "image_id": 7, "category_id": 90, "bbox": [1, 2, 10, 5], "iscrowd": 0},
        {"id": 2, "image_id": 9, "category_id": 3, "bbox": [0, 0, 4, 4], "iscrowd": 0},
    ],
    "categories": [{"id": 90, "name": "zebra"}, {"id": 3, "name": "cat"}],
}


def _coco_file(tmp_path: Path, change: Callable[[dict], Any] | None = None) -> Path:
    for name, (w, h) in {"a.png": (40, 30), "b.png": (20, 20)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / name)
    data = copy.deepcopy(GOOD)
    if change is not None:
        data = change(data) or data
    path = tmp_path / "ann.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def at(path: tuple, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def error_or_skipped(change: Callable[[dict], Any], *fragments: str):
    """An error naming the file and the fragments; with skip_bad_images skipped, counted,
    and what is kept is intact."""

    def check(tmp_path: Path) -> None:
        path = _coco_file(tmp_path, change)
        with raises(DatasetError, str(path), "skip_bad_images", *fragments):
            CocoDetection(path, tmp_path)
        kept = CocoDetection(path, tmp_path, skip_bad_images=True)
        assert 1 <= len(kept.report.skipped) <= 2 and fragments[0] in kept.report.skipped[0]
        assert all(np.isfinite(r.boxes).all() for r in kept.records)

    return check


def always_error(change: Callable[[dict], Any], *fragments: str):
    """An error even with skip_bad_images: no choice of what to keep is safe."""

    def check(tmp_path: Path) -> None:
        path = _coco_file(tmp_path, change)
        for skip in (False, True):
            with raises(DatasetError, str(path), *fragments):
                CocoDetection(path, tmp_path, skip_bad_images=skip)

    return check


def counted(change: Callable[[dict], Any], field: str, boxes: int):
    """Not an error: handled as COCO does and counted in the summary."""

    def check(tmp_path: Path) -> None:
        source = CocoDetection(_coco_file(tmp_path, change), tmp_path)
        assert getattr(source.report, field) == 1 and source.report.boxes == boxes

    return check


def _not_json(data: dict) -> str:
    return '{"images": ['


def _without_images(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "images"}


COCO = [
    Case("COCO", "NaN in bbox", "error naming annotation and 'four finite numbers' / skipped", error_or_skipped(at(("annotations", 0, "bbox"), [1, 2, float("nan"), 5]), "annotation 0", "four finite")),
    Case("COCO", "inf in bbox", "error / skipped", error_or_skipped(at(("annotations", 0, "bbox"), [1, 2, float("inf"), 5]), "annotation 0", "four finite")),
    Case("COCO", "string in bbox", "error / skipped", error_or_skipped(at(("annotations", 0, "bbox"), [1, "2", 10, 5]), "annotation 0", "four finite")),
    Case("COCO", "bbox of 3 numbers", "error / skipped", error_or_skipped(at(("annotations", 1, "bbox"), [1, 2, 3]), "annotation 1", "[x, y, width, height]")),
    Case("COCO", "image_id as numeric string", "error naming the field / skipped", error_or_skipped(at(("annotations", 0, "image_id"), "7"), "'image_id' is '7'")),
    Case("COCO", "category_id as float", "error / skipped", error_or_skipped(at(("annotations", 1, "category_id"), 3.0), "'category_id' is 3.0")),
    Case("COCO", "image id as numeric string", "error / skipped (was: every box silently dropped)", error_or_skipped(at(("images", 0, "id"), "7"), "'id' is '7'")),
    Case("COCO", "image id as word", "error / skipped (was: a traceback)", error_or_skipped(at(("images", 1, "id"), "img1"), "'id' is 'img1'")),
    Case("COCO", "image width 0", "error / skipped", error_or_skipped(at(("images", 0, "width"), 0), "'width' is 0")),
    Case("COCO", "image height as string", "error / skipped", error_or_skipped(at(("images", 0, "height"), "30"), "'height' is '30'")),
    Case("COCO", "image without file_name", "error / skipped", error_or_skipped(lambda d: d["images"][1].pop("file_name") and None, "image entry 1", "lacks file_name")),
    Case("COCO", "image entry not a mapping", "error / skipped", error_or_skipped(at(("images", 1), 9), "image entry 1 is not a mapping")),
    Case("COCO", "annotation not a mapping", "error / skipped", error_or_skipped(at(("annotations", 1), [1]), "annotation 1 is not a mapping")),
    Case("COCO", "annotation naming an unknown image", "error / skipped", error_or_skipped(at(("annotations", 0, "image_id"), 8), "names image_id 8")),
    Case("COCO", "annotation naming an unknown category", "error / skipped", error_or_skipped(at(("annotations", 0, "category_id"), 4), "names category_id 4")),
    Case("COCO", "image file missing", "error / skipped", error_or_skipped(at(("images", 0, "file_name"), "gone.png"), "gone.png does not exist")),
    Case("COCO", "two images with one id", "always an error (was: boxes on the wrong picture)", always_error(at(("images", 1, "id"), 7), "images 0 and 1 share the id 7")),
    Case("COCO", "category without id", "always an error (was: a traceback)", always_error(at(("categories", 0), {"name": "x"}), "category 0 needs an integer 'id'")),
    Case("COCO", "category id as string", "always an error", always_error(at(("categories", 1, "id"), "3"), "category 1 needs")),
    Case("COCO", "two categories with one id", "always an error", always_error(at(("categories", 1, "id"), 90), "share the id 90")),
    Case("COCO", "not JSON", "error naming file, line and column", always_error(_not_json, "is not valid JSON (line 1")),
    Case("COCO", "no 'images' list", "error naming the key", always_error(_without_images, "a list under 'images'")),
    Case("COCO", "no categories", "error", always_error(at(("categories",), []), "'categories' is empty")),
    Case("COCO", "box partly outside its image", "clipped and counted", counted(at(("annotations", 0, "bbox"), [30, 20, 20, 20]), "clipped", 2)),
    Case("COCO", "box of width 0", "dropped as degenerate and counted", counted(at(("annotations", 0, "bbox"), [1, 2, 0, 5]), "degenerate", 1)),
    Case("COCO", "crowd box", "kept out of training and counted", counted(at(("annotations", 0, "iscrowd"), 1), "crowd", 1)),
]  # fmt: skip


def _voc(tmp_path: Path, obj: str = "", split: str = "a", xml: str | None = None) -> Path:
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "JPEGImages" / "a.jpg")
    body = (
        xml
        if xml is not None
        else (
            "<annotation><filename>a.jpg</filename><size><width>50</width><height>40</height>"
            f"</size>{obj}</annotation>"
        )
    )
    (tmp_path / "Annotations" / "a.xml").write_text(body)
    (tmp_path / "ImageSets/Main/train.txt").write_text(split + "\n")
    return tmp_path


def _object(name="dog", difficult="0", box=("5", "5", "20", "30")) -> str:
    x0, y0, x1, y1 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}"
        f"</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


def voc_error(*fragments: str, classes: list[str] | None = None, **layout: str):
    def check(tmp_path: Path) -> None:
        root = _voc(tmp_path, **layout)
        with raises(DatasetError, *fragments):
            voc_to_coco(root, "train", classes)

    return check


def voc_reads(obj: str, difficult: list[int]):
    def check(tmp_path: Path) -> None:
        annotations = voc_to_coco(_voc(tmp_path, obj), "train")["annotations"]
        assert [a["difficult"] for a in annotations] == difficult

    return check


VOC = [
    Case("VOC", "<difficult>true</difficult>", "read as difficult (was: a traceback)", voc_reads(_object(difficult="true"), [1])),
    Case("VOC", "<difficult>False</difficult>", "read as not difficult", voc_reads(_object(difficult="False"), [0])),
    Case("VOC", "<difficult>yes</difficult>", "error naming XML, object and text", voc_error("a.xml", "object 0 <difficult> must be 0 or 1, got 'yes'", obj=_object(difficult="yes"))),
    Case("VOC", "coordinate '8.5px'", "error naming XML, object, element, text", voc_error("a.xml", "object 0 <bndbox/xmin> must be a number, got '8.5px'", obj=_object(box=("8.5px", "5", "20", "30")))),
    Case("VOC", "coordinate 'nan'", "error", voc_error("object 0 <bndbox/xmax> must be a number, got 'nan'", obj=_object(box=("5", "5", "nan", "30")))),
    Case("VOC", "object without <name>", "error naming the element", voc_error("a.xml", "no <name> element", obj="<object><bndbox/></object>")),
    Case("VOC", "class not in the given list", "error naming class and list", voc_error("class 'dog' is not one of ['cat']", classes=["cat"], obj=_object())),
    Case("VOC", "broken XML", "error naming the file", voc_error("a.xml is not valid XML", xml="<annotation><size>")),
    Case("VOC", "split names a missing XML", "error naming the file", voc_error("b.xml does not exist", split="b")),
    Case("VOC", "size 'big'", "error naming the element", voc_error("<size/width> must be a number, got 'big'", xml="<annotation><size><width>big</width><height>4</height></size></annotation>")),
]  # fmt: skip


@pytest.mark.parametrize("case", COCO + VOC, ids=str)
def test_annotations(case: Case, tmp_path: Path) -> None:
    case.check(tmp_path)
