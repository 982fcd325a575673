"""COCO box evaluation: detections -> COCO results JSON -> the twelve COCOeval stats.

Results use the dataset's own category ids and `[x, y, w, h]` boxes in original-image
pixels (docs/design.md §2). pycocotools' `COCOeval` is the reference; `faster_coco_eval`
(an optional extra) gives the same twelve numbers several times faster on large sets.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import is_finite_number, read_json

STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
BACKENDS = ("pycocotools", "faster_coco_eval")

logger = logging.getLogger(__name__)


def detections_to_results(
    image_id: int,
    boxes: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    category_ids: Sequence[int | None],
) -> list[dict[str, Any]]:
    """One image's detections (xyxy original pixels, contiguous labels) in COCO results form;
    a label whose category id is None (a class the ground truth lacks) is left out.

    Takes tensors (the training loop's output) or arrays (the Detector's output).
    """
    xywh = torch.as_tensor(boxes).detach().cpu().double().clone()
    xywh[:, 2:] -= xywh[:, :2]
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[label]),
            "bbox": [round(v, 3) for v in box],
            "score": round(float(score), 5),
        }
        for box, score, label in zip(xywh.tolist(), scores.tolist(), labels.tolist(), strict=True)
        if category_ids[label] is not None
    ]


def _backend(name: str) -> tuple[Any, Any]:
    if name == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    if name == "faster_coco_eval":
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError as err:
            raise ImportError(
                "eval.backend=faster_coco_eval needs the package: pip install -e '.[fast-eval]'"
            ) from err
        return COCO, COCOeval_faster
    raise ValueError(f"unknown COCO evaluation backend {name!r}; use one of {BACKENDS}")


def load_ground_truth(ann: str | Path | dict, backend: str = "pycocotools") -> Any:
    """A COCO ground-truth object from a JSON file path or an already-parsed dict."""
    coco_cls, _ = _backend(backend)
    data = ann if isinstance(ann, dict) else read_json(ann)  # errors name the file
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(
            f"{ann if not isinstance(ann, dict) else 'ground truth'}: not a "
            "COCO annotation file (no 'annotations' list)"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()
        gt.dataset = data
        gt.createIndex()
        return gt


def check_results(
    gt: Any, results: list[dict[str, Any]], source: str, skip_bad: bool = False
) -> tuple[list[dict[str, Any]], list[str]]:
    """The results that are sound, and what was wrong with the others.

    A result names an image and a category of the ground truth, holds a finite `score`
    and a `bbox` of four finite numbers with width and height >= 0. A NaN score or box
    would otherwise be ranked anywhere and change AP without a word. A bad result is an
    error naming the file and its index, or with `skip_bad` left out and reported.
    """
    images, categories = set(gt.getImgIds()), set(gt.getCatIds())
    kept, problems = [], []
    for i, r in enumerate(results):
        problem = _result_problem(r, images, categories)
        if problem is None:
            kept.append(r)
            continue
        if not skip_bad:
            raise DatasetError(f"{source}: result {i} {problem} (--skip-bad leaves such out)")
        problems.append(f"result {i} {problem}")
    return kept, problems


def _result_problem(r: Any, images: set[int], categories: set[int]) -> str | None:
    if not isinstance(r, dict):
        return f"is not a mapping: {r!r}"
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
    if missing:
        return f"lacks {', '.join(missing)}"
    if r["image_id"] not in images:
        return (
            f"names image_id {r['image_id']!r}, which the ground truth does not have "
            f"({len(images)} images)"
        )
    if r["category_id"] not in categories:
        return (
            f"names category_id {r['category_id']!r}, not one of the ground truth's "
            f"{sorted(categories)}"
        )
    if not is_finite_number(r["score"]):
        return f"has score {r['score']!r}; expected a finite number"
    box = r["bbox"]
    if (
        not (isinstance(box, list) and len(box) == 4 and all(is_finite_number(v) for v in box))
        or box[2] < 0
        or box[3] < 0
    ):
        return f"has bbox {box!r}; expected [x, y, width, height], finite, width and height >= 0"
    return None


def evaluate_results(
    gt: Any,
    results: list[dict[str, Any]],
    backend: str = "pycocotools",
    source: str = "detections",
    skip_bad: bool = False,
) -> dict[str, Any]:
    """The twelve COCO stats (names of docs/design.md §2), `per_class` AP and the printed table.

    Empty results give zeros, not a crash. With `skip_bad`, unsound results are left out
    and a warning counts them (see `check_results`).
    """
    results, skipped = check_results(gt, results, source, skip_bad)
    if skipped:
        logger.warning(
            "%s: left out %d bad result(s) (first: %s)", source, len(skipped), skipped[0]
        )
    category_names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
    if not results:
        return {
            **dict.fromkeys(STAT_NAMES, 0.0),
            "per_class": dict.fromkeys(category_names.values(), 0.0),
            "table": "no detections: every stat is 0",
        }
    _, eval_cls = _backend(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        detections = gt.loadRes(results)
        evaluator = eval_cls(gt, detections, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats, strict=True)}
    return {**stats, "per_class": _per_class_ap(evaluator, category_names), "table": table(stats)}


# COCOeval's summary lines, in the order of STAT_NAMES: (AP or AR, IoU, area, maxDets).
SUMMARY_LINES = [
    ("Average Precision  (AP)", "0.50:0.95", "all", 100),
    ("Average Precision  (AP)", "0.50", "all", 100),
    ("Average Precision  (AP)", "0.75", "all", 100),
    ("Average Precision  (AP)", "0.50:0.95", "small", 100),
    ("Average Precision  (AP)", "0.50:0.95", "medium", 100),
    ("Average Precision  (AP)", "0.50:0.95", "large", 100),
    ("Average Recall     (AR)", "0.50:0.95", "all", 1),
    ("Average Recall     (AR)", "0.50:0.95", "all", 10),
    ("Average Recall     (AR)", "0.50:0.95", "all", 100),
    ("Average Recall     (AR)", "0.50:0.95", "small", 100),
    ("Average Recall     (AR)", "0.50:0.95", "medium", 100),
    ("Average Recall     (AR)", "0.50:0.95", "large", 100),
]


def table(stats: dict[str, float]) -> str:
    """The twelve stats as COCOeval's `summarize` prints them, whatever the backend (the
    faster_coco_eval backend logs its summary instead of printing it)."""
    return "".join(
        f" {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={dets:>3d} ] = {stats[name]:0.3f}\n"
        for (kind, iou, area, dets), name in zip(SUMMARY_LINES, STAT_NAMES, strict=True)
    )


def _per_class_ap(evaluator: Any, names: dict[int, str]) -> dict[str, float | None]:
    """AP@[.5:.95] per category (area all, 100 detections); None where it has no ground truth."""
    precision = np.asarray(evaluator.eval["precision"])  # (T, R, K, A, M)
    per_class = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        values = precision[:, :, k, 0, -1]
        valid = values[values > -1]
        per_class[names[category_id]] = float(valid.mean()) if valid.size else None
    return per_class


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """A COCO results JSON file (a list of detections), with errors naming the file."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except OSError as err:
        raise DatasetError(f"cannot read results file {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(results, list):
        raise DatasetError(f"{path}: a COCO results file is a JSON list of detections")
    return results
