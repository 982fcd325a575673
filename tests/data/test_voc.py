"""Pascal VOC XML: layout, difficult boxes, sizes of 0, conversion to COCO."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_data import SHARED_DATA, needs_shared_data

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.voc import read_voc, voc_to_coco

XML = """<annotation><filename>{name}.jpg</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
OBJECT = """<object><name>{cls}</name><difficult>{difficult}</difficult>
<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"""


def _voc(root: Path, images: dict[str, tuple[int, int, list[tuple]]], declared_size=True) -> Path:
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, (w, h, objects) in images.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        body = "".join(
            OBJECT.format(cls=c, difficult=d, x0=b[0], y0=b[1], x1=b[2], y1=b[3])
            for c, d, b in objects
        )
        size = (w, h) if declared_size else (0, 0)
        (root / "Annotations" / f"{name}.xml").write_text(
            XML.format(name=name, w=size[0], h=size[1], objects=body)
        )
    (root / "ImageSets/Main/train.txt").write_text("\n".join(images) + "\n")
    return root


def test_difficult_boxes_are_left_out_of_training_and_ignored_in_evaluation(tmp_path):
    root = _voc(
        tmp_path,
        {
            "a": (50, 40, [("dog", 0, (5, 5, 20, 30)), ("cat", 1, (25, 5, 45, 35))]),
            "b": (30, 30, [("cat", 0, (1, 2, 10, 12))]),
        },
    )
    dataset = read_voc(root, "train")
    assert dataset.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(dataset.records[0].boxes, [[5, 5, 20, 30]])
    assert dataset.records[0].labels.tolist() == [1]
    crowd = [a["iscrowd"] for a in dataset.evaluation_ground_truth()["annotations"]]
    assert crowd == [0, 1, 0]
    with_difficult = read_voc(root, "train", use_difficult=True)
    assert len(with_difficult.records[0].boxes) == 2


def test_sizes_of_zero_are_read_from_the_image(tmp_path):
    root = _voc(tmp_path, {"a": (64, 48, [("dog", 0, (1, 1, 9, 9))])}, declared_size=False)
    image = voc_to_coco(root, "train")["images"][0]
    assert (image["width"], image["height"]) == (64, 48)


def test_errors_name_the_file(tmp_path):
    root = _voc(tmp_path, {"a": (10, 10, [("dog", 0, (1, 1, 5, 5))])})
    (root / "Annotations" / "a.xml").write_text("<annotation><filename>")
    with pytest.raises(DatasetError, match=r"a\.xml is not valid XML"):
        read_voc(root, "train")
    with pytest.raises(DatasetError, match="no split file .*val.txt"):
        read_voc(root, "val")


def test_class_list_is_shared_between_splits(tmp_path):
    root = _voc(tmp_path, {"a": (10, 10, [("dog", 0, (1, 1, 5, 5))])})
    with pytest.raises(DatasetError, match="class 'dog' is not one of"):
        voc_to_coco(root, "train", classes=["cat"])


@needs_shared_data("raccoon")
def test_voc2coco_reproduces_the_shared_raccoon_json(tmp_path):
    raccoon = SHARED_DATA / "raccoon"
    root = tmp_path / "voc"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").symlink_to(raccoon / "voc_xml")
    (root / "JPEGImages").symlink_to(raccoon / "images")
    ids = [line.rsplit(".", 1)[0] for line in (raccoon / "val.txt").read_text().split()]
    (root / "ImageSets/Main/val.txt").write_text("\n".join(ids))
    ours = voc_to_coco(root, "val")
    theirs = json.loads((raccoon / "annotations/instances_val.json").read_text())
    name_of = {i["id"]: i["file_name"] for i in theirs["images"]}
    expected = sorted((name_of[a["image_id"]], a["bbox"]) for a in theirs["annotations"])
    our_names = {i["id"]: i["file_name"] for i in ours["images"]}
    assert sorted((our_names[a["image_id"]], a["bbox"]) for a in ours["annotations"]) == expected
