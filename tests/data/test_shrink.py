"""shrink_coco_set: photos over the limit shrunk once, boxes, areas and polygons with them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.image import read_rgb
from detect_tricks.data.shrink import shrink_coco_set
from detect_tricks.data.synthetic import generate


@pytest.fixture
def demo_set(tmp_path):
    root = generate(tmp_path / "src", 8, seed=3, val_fraction=0.0)
    ann = root / "annotations" / "instances_train.json"
    data = json.loads(ann.read_text())
    first = data["annotations"][0]
    x, y, w, h = first["bbox"]
    first["segmentation"] = [[x, y, x + w, y, x + w, y + h]]  # a triangle in the box
    data["annotations"][1]["segmentation"] = {"size": [1, 1], "counts": "abc"}  # RLE
    data["info"] = {"description": "kept as it was"}
    ann.write_text(json.dumps(data))
    return ann, root / "images", data


def test_large_photos_shrink_and_their_annotations_follow(demo_set, tmp_path):
    ann, images, before = demo_set
    max_side = 150  # the demo's photos are about 200-300 px a side
    report = shrink_coco_set(ann, images, tmp_path / "out", max_side)
    after = json.loads((tmp_path / "out" / "annotations" / ann.name).read_text())
    assert after["info"] == {"description": "kept as it was"}
    old_images = {e["id"]: e for e in before["images"]}
    assert report.shrunk + report.copied == len(before["images"]) == 7 and report.shrunk >= 5
    for entry in after["images"]:
        old = old_images[entry["id"]]
        photo = read_rgb(tmp_path / "out" / "images" / entry["file_name"])
        assert photo.shape[:2] == (entry["height"], entry["width"])
        assert max(entry["width"], entry["height"]) == min(
            max_side, max(old["width"], old["height"])
        )
    for old, new in zip(before["annotations"], after["annotations"], strict=True):
        o, n = (
            old_images[old["image_id"]],
            next(e for e in after["images"] if e["id"] == old["image_id"]),
        )
        fx, fy = n["width"] / o["width"], n["height"] / o["height"]
        np.testing.assert_allclose(new["bbox"], np.array(old["bbox"]) * [fx, fy, fx, fy], rtol=1e-9)
        assert new["area"] == pytest.approx(old["area"] * fx * fy)
    x, y, w, h = after["annotations"][0]["bbox"]
    np.testing.assert_allclose(
        after["annotations"][0]["segmentation"], [[x, y, x + w, y, x + w, y + h]]
    )
    assert "segmentation" not in after["annotations"][1] and report.dropped_masks == 1
    # the copy is a set that training reads, every photo at its annotated size
    copy = CocoDetection(tmp_path / "out" / "annotations" / ann.name, tmp_path / "out" / "images")
    for index in range(len(copy)):
        copy.load(index)


def test_photos_within_the_limit_are_copied_byte_for_byte(demo_set, tmp_path):
    ann, images, data = demo_set
    report = shrink_coco_set(ann, images, tmp_path / "out", 1000)
    assert (report.shrunk, report.copied) == (0, 7)
    for entry in data["images"]:
        name = entry["file_name"]
        assert (tmp_path / "out" / "images" / name).read_bytes() == (images / name).read_bytes()


def test_bad_input_is_refused_before_anything_is_written(demo_set, tmp_path):
    ann, images, data = demo_set
    with pytest.raises(DatasetError, match="would be written over its source"):
        shrink_coco_set(ann, images, images.parent, 100)
    data["images"][2]["file_name"] = "missing.jpg"
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"image 3: file .*missing\.jpg does not exist"):
        shrink_coco_set(ann, images, tmp_path / "out", 100)
    data["annotations"][0]["bbox"] = [0, 0, -5, 4]
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="instances_train.json"):
        shrink_coco_set(ann, images, tmp_path / "out2", 100)
    assert not (tmp_path / "out2").exists()
