"""Evaluate a classifier trained by tools/train_cls.py: top-1, top-5 and loss.

    python tools/eval_cls.py --checkpoint runs/resnet18_d_flowers5_tricks/checkpoints/best.pt
    python tools/eval_cls.py --checkpoint best.pt --data path/to/val --out val.json

Without --data, the validation split of the run's config is used. The model's evaluated
weights are used (the EMA when the run had one); the class list comes from the
checkpoint, so --data must hold the same class folders (or a subset).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from detect_tricks.data.cls_transforms import ClassificationEvalTransform
from detect_tricks.data.folder import ImageFolderDataset
from detect_tricks.engine.cli import non_negative_int, positive_int, run_tool
from detect_tricks.engine.setup import build_eval_loader, configure_device
from detect_tricks.tasks.classification import collate, evaluate_classifier, load_trained_classifier
from detect_tricks.utils.distributed import DistContext, resolve_device
from detect_tricks.utils.outputs import refuse_to_replace, writable_file
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="last.pt or best.pt")
    parser.add_argument("--data", type=Path, help="folder of class folders (default: val split)")
    parser.add_argument("--out", type=Path, help="JSON file (default: beside the checkpoint)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--workers", type=non_negative_int, default=2)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    return parser.parse_args()


def run() -> None:
    args = parse_args()
    setup_logging(None, is_main=True)
    ctx = DistContext(device=resolve_device(args.device))
    configure_device(ctx.device)
    model, cfg, metadata = load_trained_classifier(args.checkpoint)
    root = args.data or Path(cfg.data.root) / cfg.data.val_split
    out = args.out or args.checkpoint.with_name(f"eval_{args.checkpoint.stem}_{root.name}.json")
    refuse_to_replace(out, [args.checkpoint])
    writable_file(out)
    dataset = ImageFolderDataset(
        root,
        ClassificationEvalTransform(cfg.data.eval_size, cfg.data.eval_crop_ratio),
        classes=metadata["classes"],
    )
    loader = build_eval_loader(dataset, args.batch_size, args.workers, collate, ctx)
    metrics = evaluate_classifier(model.to(ctx.device), loader, ctx)
    result = {"checkpoint": str(args.checkpoint), "data": str(root), "images": len(dataset)}
    out.write_text(json.dumps({**result, **metrics}, indent=2) + "\n")
    logger.info(
        "%s on %s (%d images): top-1 %.4f  top-5 %.4f  loss %.4f  -> %s",
        args.checkpoint,
        root,
        len(dataset),
        metrics["top1"],
        metrics["top5"],
        metrics["loss"],
        out,
    )


def main() -> None:
    """`detect-tricks eval-cls` and `python tools/eval_cls.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
