"""COCO results and ground-truth files given to evaluation: a detection that would move AP
without a word (NaN, a string) is an error naming the file and its index, or left out and
counted with skip_bad."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from tiny_coco import one_box_ground_truth

from detect_tricks.core.errors import DatasetError
from detect_tricks.metrics.coco_eval import evaluate_results, load_ground_truth, read_results
from robustness.case import Case, raises

TRUTH = one_box_ground_truth()
GOOD = {"image_id": 5, "category_id": 17, "bbox": [10, 10, 30, 20], "score": 0.5}


def rejected(bad: Any, *fragments: str, skippable: bool = True):
    """An error naming the file and result 1; with skip_bad the AP of the good one alone."""

    def check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        truth = load_ground_truth(TRUTH)
        with raises(DatasetError, "dets.json: result 1", *fragments):
            evaluate_results(truth, [GOOD, bad], source="dets.json")
        if skippable:
            with caplog.at_level(logging.WARNING):
                kept = evaluate_results(truth, [GOOD, bad], source="dets.json", skip_bad=True)
            assert kept["AP"] == pytest.approx(1.0)
            assert "left out 1 bad result(s) (first: result 1" in caplog.text

    return check


def file_error(content: str, *fragments: str, reader=read_results):
    def check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        path = tmp_path / "file.json"
        path.write_text(content)
        with raises(DatasetError, str(path), *fragments):
            reader(path)

    return check


def empty_results(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stats = evaluate_results(load_ground_truth(TRUTH), [])
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0


CASES = [
    Case("results", "NaN score", "error naming file and index / left out and counted (was: AP 0.5046 -> 0.5078 silently)", rejected({**GOOD, "score": float("nan")}, "has score nan")),
    Case("results", "infinite score", "error / left out", rejected({**GOOD, "score": float("inf")}, "has score inf")),
    Case("results", "score as string", "error / left out (was: a traceback)", rejected({**GOOD, "score": "0.9"}, "has score '0.9'")),
    Case("results", "score as bool", "error / left out", rejected({**GOOD, "score": True}, "has score True")),
    Case("results", "NaN in bbox", "error / left out", rejected({**GOOD, "bbox": [0, float("nan"), 1, 1]}, "has bbox [0, nan, 1, 1]")),
    Case("results", "negative width", "error / left out", rejected({**GOOD, "bbox": [0, 0, -1, 1]}, "has bbox [0, 0, -1, 1]")),
    Case("results", "string in bbox", "error / left out", rejected({**GOOD, "bbox": [0, 0, "1", 1]}, "has bbox")),
    Case("results", "bbox of 3 numbers", "error / left out", rejected({**GOOD, "bbox": [0, 0, 1]}, "has bbox [0, 0, 1]")),
    Case("results", "result without score", "error naming the missing key / left out", rejected({k: v for k, v in GOOD.items() if k != "score"}, "lacks score")),
    Case("results", "unknown image id", "error naming the id / left out", rejected({**GOOD, "image_id": 6}, "names image_id 6")),
    Case("results", "unknown category", "error naming the id and the known ones / left out", rejected({**GOOD, "category_id": 3}, "names category_id 3", "[17]")),
    Case("results", "result not a mapping", "error / left out", rejected([1, 2], "is not a mapping")),
    Case("results", "no detections", "every stat 0, no crash", empty_results),
    Case("results", "results file not JSON", "error naming the file", file_error("[{", "is not valid JSON")),
    Case("results", "results file a mapping", "error: a results file is a list", file_error("{}", "a COCO results file is a JSON list")),
    Case("results", "ground truth not JSON (eval_det --ann)", "error naming file, line and column (was: unnamed)", file_error("not json", "is not valid JSON (line 1, column 1", reader=load_ground_truth)),
    Case("results", "ground truth a list", "error: not a COCO annotation file", file_error("[1, 2]", "not a COCO annotation file", reader=load_ground_truth)),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_results(case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    case.check(tmp_path, caplog)
