"""COCO evaluation: the reference numbers of the COCO API's fixtures, edge cases."""

from __future__ import annotations

import pytest
import torch
from shared_data import SHARED_DATA, needs_shared_data
from tiny_coco import one_box_ground_truth

from detect_tricks.core.errors import DatasetError
from detect_tricks.metrics.coco_eval import (
    STAT_NAMES,
    detections_to_results,
    evaluate_results,
    load_ground_truth,
    read_results,
)

# ../shared/data/coco_eval_fixtures/README: pycocotools on the 100-image fixture.
REFERENCE = [
    0.5045806987249628,
    0.6969727247299577,
    0.5729816669904824,
    0.5856257209410443,
    0.5193996948036719,
    0.5013978986347466,
    0.38681277964578054,
    0.5936795762842003,
    0.595352982877607,
    0.6398109626113442,
    0.5664205978994309,
    0.5642905982905982,
]
FIXTURES = SHARED_DATA / "coco_eval_fixtures"


@needs_shared_data("coco_eval_fixtures")
@pytest.mark.parametrize("backend", ["pycocotools", "faster_coco_eval"])
def test_reproduces_the_twelve_reference_stats(backend):
    if backend == "faster_coco_eval":
        pytest.importorskip("faster_coco_eval", reason="optional extra fast-eval not installed")
    gt = load_ground_truth(FIXTURES / "instances_val2014_100.json", backend)
    results = read_results(FIXTURES / "instances_val2014_fakebbox100_results.json")
    stats = evaluate_results(gt, results, backend)
    for name, expected in zip(STAT_NAMES, REFERENCE, strict=True):
        assert abs(stats[name] - expected) < 1e-6, name
    assert len(stats["per_class"]) == 80


def test_a_perfect_detection_scores_one_and_empty_detections_zero():
    gt = load_ground_truth(one_box_ground_truth())
    results = detections_to_results(
        5, torch.tensor([[10.0, 10, 40, 30]]), torch.tensor([0.9]), torch.tensor([0]), [17]
    )
    assert results == [
        {"image_id": 5, "category_id": 17, "bbox": [10.0, 10.0, 30.0, 20.0], "score": 0.9}
    ]
    stats = evaluate_results(gt, results)
    assert stats["AP"] == pytest.approx(1.0) and stats["per_class"] == {"cat": pytest.approx(1.0)}
    empty = evaluate_results(gt, [])
    assert all(empty[name] == 0.0 for name in STAT_NAMES)


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"image_id": 6, "category_id": 17, "bbox": [0, 0, 1, 1], "score": 1}, "image_id 6"),
        ({"image_id": 5, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}, "category_id 3"),
        ({"image_id": 5, "category_id": 17, "score": 1}, "result 0 lacks bbox"),
    ],
)
def test_results_naming_unknown_images_or_categories_are_clear_errors(result, message):
    with pytest.raises(DatasetError, match=message):
        evaluate_results(load_ground_truth(one_box_ground_truth()), [result], source="dets.json")


def test_results_file_errors_name_the_file(tmp_path):
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(DatasetError, match="r.json: a COCO results file is a JSON list"):
        read_results(tmp_path / "r.json")


@needs_shared_data("coco_eval_fixtures")
def test_a_nan_score_in_the_reference_results_is_caught_not_evaluated(tmp_path):
    """Issue 12: one NaN score in the fixtures' results moved AP from 0.5046 to 0.5078."""
    results = read_results(FIXTURES / "instances_val2014_fakebbox100_results.json")
    results[0]["score"] = float("nan")
    gt = load_ground_truth(FIXTURES / "instances_val2014_100.json")
    with pytest.raises(DatasetError, match="result 0 has score nan"):
        evaluate_results(gt, results, source="fake.json")


@needs_shared_data("coco_eval_fixtures")
def test_both_backends_print_cocoevals_table():
    """faster_coco_eval logs its summary instead of printing it: the table is ours, the
    same lines pycocotools prints."""
    pytest.importorskip("faster_coco_eval")
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    gt = load_ground_truth(FIXTURES / "instances_val2014_100.json")
    results = read_results(FIXTURES / "instances_val2014_fakebbox100_results.json")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    reference = [line for line in printed.getvalue().splitlines() if line.startswith(" Average")]
    for backend in ("pycocotools", "faster_coco_eval"):
        table = evaluate_results(
            load_ground_truth(FIXTURES / "instances_val2014_100.json", backend), results, backend
        )["table"]
        assert table.splitlines() == reference, backend
