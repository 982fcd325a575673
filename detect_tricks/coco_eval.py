"""COCO box evaluation: detections -> COCO results JSON -> the twelve COCOeval stats.

Results use the dataset's own category ids and `[x, y, w, h]` boxes in original-image
pixels (DESIGN.md §2). pycocotools' `COCOeval` is the reference; `faster_coco_eval`
(an optional extra) gives the same twelve numbers several times faster on large sets.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect_tricks.data.errors import DatasetError

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


def detections_to_results(
    image_id: int,
    boxes: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    category_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """One image's detections (xyxy original pixels, contiguous labels) in COCO results form.

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
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(ann, dict):
            gt = coco_cls()
            gt.dataset = ann
            gt.createIndex()
            return gt
        return coco_cls(str(ann))


def check_results(gt: Any, results: list[dict[str, Any]], source: str) -> None:
    """A clear error for results naming images or categories the ground truth lacks."""
    images, categories = set(gt.getImgIds()), set(gt.getCatIds())
    for i, r in enumerate(results):
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in r]
        if missing:
            raise DatasetError(f"{source}: result {i} lacks {', '.join(missing)}")
        if r["image_id"] not in images:
            raise DatasetError(
                f"{source}: result {i} names image_id {r['image_id']}, which the ground truth "
                f"does not have ({len(images)} images)"
            )
        if r["category_id"] not in categories:
            raise DatasetError(
                f"{source}: result {i} names category_id {r['category_id']}, not one of the "
                f"ground truth's {sorted(categories)}"
            )


def evaluate_results(
    gt: Any,
    results: list[dict[str, Any]],
    backend: str = "pycocotools",
    source: str = "detections",
) -> dict[str, Any]:
    """The twelve COCO stats (names of DESIGN.md §2), `per_class` AP and the printed table.

    Empty results give zeros, not a crash.
    """
    check_results(gt, results, source)
    category_names = {c["id"]: c["name"] for c in gt.loadCats(gt.getCatIds())}
    if not results:
        return {
            **dict.fromkeys(STAT_NAMES, 0.0),
            "per_class": dict.fromkeys(category_names.values(), 0.0),
            "table": "no detections: every stat is 0",
        }
    _, eval_cls = _backend(backend)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        detections = gt.loadRes(results)
        evaluator = eval_cls(gt, detections, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats, strict=True)}
    return {
        **stats,
        "per_class": _per_class_ap(evaluator, category_names),
        "table": printed.getvalue(),
    }


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
