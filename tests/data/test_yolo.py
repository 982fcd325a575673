"""YOLO txt labels to COCO: boxes back in pixels, sizes from the pixels, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detect_tricks.commands.yolo2coco import read_names
from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.yolo import yolo_to_coco


def _split(tmp_path: Path, labels: dict[str, str], sizes=(("a.jpg", 200, 100), ("b.png", 64, 48))):
    images, label_dir = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    label_dir.mkdir()
    for name, w, h in sizes:
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(images / name)
    for stem, text in labels.items():
        (label_dir / f"{stem}.txt").write_text(text)
    return images, label_dir


def test_boxes_come_back_in_pixels_with_class_index_plus_one(tmp_path):
    # a.jpg is 200 x 100: a box centred at (50, 25), 40 x 20 px, class 1 (banana)
    images, labels = _split(tmp_path, {"a": "1 0.25 0.25 0.2 0.2\n\n0 0.5 0.5 1.0 1.0\n"})
    coco = yolo_to_coco(images, labels, ["apple", "banana"])
    assert [(i["file_name"], i["width"], i["height"]) for i in coco["images"]] == [
        ("a.jpg", 200, 100),
        ("b.png", 64, 48),  # no label file: no boxes
    ]
    first, whole = coco["annotations"]
    assert first["category_id"] == 2 and first["bbox"] == pytest.approx([30, 15, 40, 20])
    assert whole["bbox"] == pytest.approx([0, 0, 200, 100]) and whole["area"] == pytest.approx(
        20000
    )
    assert coco["categories"] == [{"id": 1, "name": "apple"}, {"id": 2, "name": "banana"}]
    path = tmp_path / "ann.json"
    import json

    path.write_text(json.dumps(coco))
    source = CocoDetection(path, images)
    np.testing.assert_allclose(
        source.records[0].boxes, [[30, 15, 70, 35], [0, 0, 200, 100]], atol=1e-4
    )


def test_an_exif_rotated_photo_gets_its_upright_size(tmp_path):
    images, labels = _split(tmp_path, {}, sizes=())
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    Image.fromarray(np.zeros((30, 80, 3), np.uint8)).save(images / "r.jpg", exif=exif)
    coco = yolo_to_coco(images, labels, ["x"])
    assert (coco["images"][0]["width"], coco["images"][0]["height"]) == (30, 80)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0 0.5 0.5 0.2", "line 2: expected 'class cx cy w h'"),
        ("two 0.5 0.5 0.2 0.2", "line 2: expected an integer class and four numbers"),
        ("3 0.5 0.5 0.2 0.2", "line 2: class 3 is not one of the 2 names given"),
        ("0 1.5 0.5 0.2 0.2", "line 2: centre and size must be fractions of the image"),
        ("0 nan 0.5 0.2 0.2", "line 2: centre and size must be fractions"),
    ],
)
def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path, line, message):
    images, labels = _split(tmp_path, {"a": f"0 0.5 0.5 0.1 0.1\n{line}\n"})
    with pytest.raises(
        DatasetError,
        match=str(labels / "a.txt").replace(".", r"\.") + ", " + message.replace("(", r"\("),
    ):
        yolo_to_coco(images, labels, ["apple", "banana"])


def test_names_from_data_yaml_or_a_list_file(tmp_path):
    (tmp_path / "data.yaml").write_text("names: {0: apple, 1: banana}\n")
    (tmp_path / "list.yaml").write_text("names: [apple, banana]\n")
    (tmp_path / "classes.txt").write_text("apple\nbanana\n")
    for name in ("data.yaml", "list.yaml", "classes.txt"):
        assert read_names(tmp_path / name) == ["apple", "banana"]
