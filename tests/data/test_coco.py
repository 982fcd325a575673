"""COCO-format reading: id mapping, crowd and degenerate boxes, clear errors, skipping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shared_data import SHARED_DATA, needs_shared_data

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.coco import CocoDetection


def _write(tmp_path: Path, data: dict, sizes=((40, 30), (20, 20))) -> Path:
    for i, (w, h) in enumerate(sizes, start=1):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / f"im{i}.png")
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def _data(annotations: list[dict]) -> dict:
    return {
        "images": [
            {"id": 7, "file_name": "im1.png", "width": 40, "height": 30},
            {"id": 9, "file_name": "im2.png", "width": 20, "height": 20},
        ],
        "categories": [{"id": 90, "name": "zebra"}, {"id": 3, "name": "cat"}],
        "annotations": annotations,
    }


def _ann(i: int, image_id: int, category_id: int, bbox: list[float], crowd: int = 0) -> dict:
    return {
        "id": i,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "iscrowd": crowd,
        "area": bbox[2] * bbox[3],
    }


def test_ids_map_to_contiguous_labels_in_id_order(tmp_path):
    path = _write(tmp_path, _data([_ann(1, 7, 90, [1, 2, 10, 5]), _ann(2, 7, 3, [0, 0, 4, 4])]))
    dataset = CocoDetection(path, tmp_path)
    assert dataset.class_names == ["cat", "zebra"] and dataset.category_ids == [3, 90]
    record = dataset.records[0]
    assert record.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(record.boxes, [[1, 2, 11, 7], [0, 0, 4, 4]])
    assert len(dataset.records[1].boxes) == 0  # an image without boxes is kept
    image, _ = dataset.load(0)
    assert image.shape == (30, 40, 3)


def test_crowd_clipped_and_degenerate_boxes(tmp_path):
    annotations = [
        _ann(1, 7, 3, [30, 20, 20, 20]),  # runs off the image: clipped to [30, 20, 40, 30]
        _ann(2, 7, 3, [5, 5, 0, 10]),  # zero width: dropped
        _ann(3, 7, 3, [50, 5, 5, 5]),  # entirely outside: dropped
        _ann(4, 9, 90, [1, 1, 5, 5], crowd=1),  # crowd: not a training box
    ]
    dataset = CocoDetection(_write(tmp_path, _data(annotations)), tmp_path)
    np.testing.assert_array_equal(dataset.records[0].boxes, [[30, 20, 40, 30]])
    assert len(dataset.records[1].boxes) == 0
    report = dataset.report
    assert (report.clipped, report.degenerate, report.crowd, report.boxes) == (1, 2, 1, 1)
    assert "1 clipped to their image, 2 degenerate dropped, 1 crowd" in report.summary("x", 2)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (_ann(1, 8, 3, [0, 0, 1, 1]), "annotation 0 (id 1) names image_id 8, not in 'images'"),
        (_ann(1, 7, 4, [0, 0, 1, 1]), "annotation 0 (id 1) names category_id 4, not one of"),
        ({**_ann(1, 7, 3, [0, 0, 1, 1]), "bbox": [1, 2]}, "'bbox' must be [x, y, width, height]"),
    ],
)
def test_bad_entries_are_errors_naming_file_and_entry(tmp_path, annotation, message):
    path = _write(tmp_path, _data([annotation]))
    with pytest.raises(DatasetError) as err:
        CocoDetection(path, tmp_path)
    assert str(path) in str(err.value) and message in str(err.value)
    skipped = CocoDetection(path, tmp_path, skip_bad_images=True)
    assert len(skipped.report.skipped) == 1


def test_missing_image_file_and_broken_json(tmp_path):
    data = _data([])
    data["images"].append({"id": 11, "file_name": "gone.png", "width": 5, "height": 5})
    path = _write(tmp_path, data)
    with pytest.raises(DatasetError, match="image 11: file .*gone.png does not exist"):
        CocoDetection(path, tmp_path)
    assert len(CocoDetection(path, tmp_path, skip_bad_images=True)) == 2
    path.write_text('{"images": [}')
    with pytest.raises(DatasetError, match=r"ann.json is not valid JSON \(line 1, column 13"):
        CocoDetection(path, tmp_path)


def test_image_whose_size_differs_from_the_annotation(tmp_path):
    data = _data([])
    data["images"][0]["width"] = 41
    dataset = CocoDetection(_write(tmp_path, data), tmp_path)
    with pytest.raises(ImageReadError, match="im1.png is 40x30 pixels but .* says 41x30"):
        dataset.load(0)


@needs_shared_data("fruit")
def test_real_fruit_data_with_png_named_jpg_and_rgba_images():
    fruit = SHARED_DATA / "fruit"
    dataset = CocoDetection(fruit / "annotations/instances_train.json", fruit / "images")
    assert dataset.class_names == ["apple", "banana", "orange"]
    assert len(dataset) == 240
    for index in range(0, 240, 7):
        image, record = dataset.load(index)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
        assert image.shape[:2] == (record.height, record.width)


def test_evaluation_reads_the_checked_records_not_the_raw_file(tmp_path):
    """Duplicate and missing annotation ids, a missing `area` or `iscrowd`, and degenerate
    boxes cannot change what COCOeval scores: it gets the records training reads."""
    annotations = [
        {"id": 5, "image_id": 7, "category_id": 3, "bbox": [1, 2, 10, 5]},  # no area, iscrowd
        {"id": 5, "image_id": 7, "category_id": 90, "bbox": [30, 20, 20, 20], "area": 99.0},
        {"image_id": 9, "category_id": 3, "bbox": [5, 5, 0, 10]},  # no id, degenerate
        _ann(8, 9, 90, [1, 1, 5, 5], crowd=1),
    ]
    dataset = CocoDetection(_write(tmp_path, _data(annotations)), tmp_path)
    truth = dataset.evaluation_ground_truth()
    assert [a["id"] for a in truth["annotations"]] == [1, 2, 3]
    first, clipped, crowd = truth["annotations"]
    assert first == {
        "id": 1,
        "image_id": 7,
        "category_id": 3,
        "bbox": [1.0, 2.0, 10.0, 5.0],
        "area": 50.0,
        "iscrowd": 0,
    }
    assert clipped["bbox"] == [30.0, 20.0, 10.0, 10.0] and clipped["area"] == 99.0
    assert crowd["iscrowd"] == 1 and crowd["category_id"] == 90 and crowd["image_id"] == 9
    assert truth["categories"] == [{"id": 3, "name": "cat"}, {"id": 90, "name": "zebra"}]
    assert [i["id"] for i in truth["images"]] == [7, 9]
    assert [i["id"] for i in dataset.subset([1]).evaluation_ground_truth()["images"]] == [9]
