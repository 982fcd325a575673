"""COCO box evaluation of a trained detector (at one or more sizes) or of a results file.

    python tools/eval_det.py --checkpoint runs/yolov3_r18d_fruit_bof/checkpoints/best.pt
    python tools/eval_det.py --checkpoint best.pt --sizes 320 416 608
    python tools/eval_det.py --checkpoint best.pt --ann val.json --images val_images/
    python tools/eval_det.py --ann instances_val2017.json --results detections.json

Prints the COCOeval table and per-class AP, and writes the twelve stats (AP, AP50, AP75,
APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl) and per-class AP as JSON to --out
(default: beside the checkpoint or the results file), per size when several are given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.detection import DetectionEvalSet, collate_detection
from detect_tricks.engine.cli import input_size, non_negative_int, positive_int, run_tool
from detect_tricks.engine.setup import build_eval_loader, configure_device
from detect_tricks.inference.detector import Detector
from detect_tricks.metrics.coco_eval import (
    BACKENDS,
    STAT_NAMES,
    evaluate_results,
    load_ground_truth,
    read_results,
)
from detect_tricks.tasks.detection import build_sources, collect_results, nms_settings
from detect_tricks.utils.distributed import DistContext
from detect_tricks.utils.outputs import refuse_to_replace, writable_file
from detect_tricks.utils.progress import setup_logging
from detect_tricks.yolo.postprocess import NMS_METHODS

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of tools/train_det.py")
    parser.add_argument("--results", type=Path, help="a COCO results JSON to evaluate instead")
    parser.add_argument("--ann", type=Path, help="ground-truth COCO JSON (default: the run's val)")
    parser.add_argument("--images", type=Path, help="images of --ann (with --checkpoint)")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="with --results: leave out (and count) detections with a NaN score or box, "
        "instead of stopping at the first",
    )
    parser.add_argument(
        "--sizes",
        type=input_size,
        nargs="+",
        help="input sizes, multiples of 32 (default: data.size)",
    )
    parser.add_argument(
        "--nms",
        choices=NMS_METHODS,
        help="with --checkpoint: the NMS (default: eval.nms of its run)",
    )
    parser.add_argument("--out", type=Path, help="JSON file for the stats")
    parser.add_argument("--backend", choices=BACKENDS, default="pycocotools")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--workers", type=non_negative_int, default=2)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    if (args.checkpoint is None) == (args.results is None):
        parser.error("give either --checkpoint or --results (with --ann)")
    if args.results is not None and args.ann is None:
        parser.error("--results needs --ann, the ground truth it is evaluated against")
    if (args.ann is None) != (args.images is None) and args.checkpoint is not None:
        parser.error("with --checkpoint, --ann and --images go together")
    return args


def categories_by_name(model_classes: list[str], source: CocoDetection) -> list[int | None]:
    """The ground truth's category id of each of the model's classes, matched by name (not
    by position: another file may give the same classes other ids or another order); None
    for a class the file lacks, whose detections are left out. Categories the model does
    not know stay in the metric as missed."""
    doubled = sorted({n for n in source.class_names if source.class_names.count(n) > 1})
    if doubled:
        raise DatasetError(
            f"{source.source}: several categories are named {doubled[0]}, so the model's "
            "classes cannot be matched to them by name"
        )
    by_name = dict(zip(source.class_names, source.category_ids, strict=True))
    missing = [name for name in model_classes if name not in by_name]
    unknown = [name for name in source.class_names if name not in model_classes]
    if len(missing) == len(model_classes):
        raise DatasetError(
            f"{source.source} has none of the model's classes ({', '.join(model_classes)}); "
            f"it has {', '.join(source.class_names)}"
        )
    if missing:
        logger.warning(
            "%s lacks the model's classes %s: their detections are left out",
            source.source,
            ", ".join(missing),
        )
    if unknown:
        logger.warning(
            "the model was not trained on %s of %s: they count as missed",
            ", ".join(unknown),
            source.source,
        )
    return [by_name.get(name) for name in model_classes]


def report(title: str, stats: dict) -> None:
    logger.info("%s\n%s", title, stats["table"].rstrip())
    per_class = [f"{name} {ap:.3f}" for name, ap in stats["per_class"].items() if ap is not None]
    logger.info("per-class AP: %s", ", ".join(per_class))


def evaluate_checkpoint(args: argparse.Namespace) -> dict[str, dict]:
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device)
    cfg = detector.config
    ctx = DistContext(device=detector.device)
    configure_device(ctx.device)
    if args.ann is not None:
        source = CocoDetection(args.ann, args.images).checked()
    else:
        _, source = build_sources(cfg.data)
    category_ids = categories_by_name(detector.class_names, source)
    gt = load_ground_truth(source.evaluation_ground_truth(), args.backend)
    settings = nms_settings(cfg.eval)
    if args.nms is not None:
        settings = dataclasses.replace(settings, method=args.nms)
    by_size = {}
    for size in args.sizes or [detector.size]:
        dataset = DetectionEvalSet(source, size)
        loader = build_eval_loader(dataset, args.batch_size, args.workers, collate_detection, ctx)
        results = collect_results(detector.model, loader, ctx, category_ids, settings)
        stats = evaluate_results(gt, results, args.backend, source=str(args.checkpoint))
        report(f"{args.checkpoint} at {size} px on {source.source}:", stats)
        by_size[str(size)] = stats
    return by_size


def run() -> None:
    args = parse_args()
    setup_logging(None, is_main=True)
    out = args.out or (
        args.results.with_name(f"{args.results.stem}_stats.json")
        if args.results is not None
        else args.checkpoint.with_name(f"eval_{args.checkpoint.stem}.json")
    )
    refuse_to_replace(out, [args.checkpoint, args.results, args.ann])
    writable_file(out)
    if args.results is not None:
        # the annotations as training reads them (checked; no image is read)
        gt = load_ground_truth(
            CocoDetection(args.ann, None).evaluation_ground_truth(), args.backend
        )
        results = read_results(args.results)
        stats = evaluate_results(gt, results, args.backend, str(args.results), args.skip_bad)
        report(f"{args.results} against {args.ann}:", stats)
        by_size = {"results": stats}
    else:
        by_size = evaluate_checkpoint(args)
    summary = {
        key: {**{name: stats[name] for name in STAT_NAMES}, "per_class": stats["per_class"]}
        for key, stats in by_size.items()
    }
    if len(summary) == 1:
        summary = next(iter(summary.values()))
    out.write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("wrote %s", out)


def main() -> None:
    """`detect-tricks eval-det` and `python tools/eval_det.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
