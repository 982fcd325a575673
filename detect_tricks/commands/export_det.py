"""Export a trained detector to ONNX and check it against PyTorch on real images.

    python tools/export_det.py --checkpoint runs/yolov3_r18d_fruit_bof/checkpoints/best.pt
    python tools/export_det.py --checkpoint best.pt --size 416 --dynamic --out model.onnx

The file holds the raw head outputs (decode and NMS stay outside, as in PyTorch) and the
class names, input size, anchors and NMS settings, so `Detector.from_onnx(path)` predicts
like `Detector.from_checkpoint`. After writing, the tool runs both on validation images
of the run's config (or --images) and prints the largest difference of the head outputs.
Needs the optional extra: pip install 'detect_tricks[export]'.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from detect_tricks.commands.infer_det import list_images
from detect_tricks.core.config import DetConfig
from detect_tricks.data.image import read_rgb
from detect_tricks.engine.cli import positive_int, run_tool
from detect_tricks.inference.detector import Detector
from detect_tricks.inference.export import (
    OPSET,
    OnnxYOLOv3,
    detector_metadata,
    export_onnx,
    largest_difference,
)
from detect_tricks.tasks.detection import build_sources
from detect_tricks.utils.outputs import refuse_to_replace, writable_file
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__name__)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="last.pt or best.pt")
    parser.add_argument("--format", choices=["onnx"], default="onnx")
    parser.add_argument("--size", type=int, help="input size (default: the training size)")
    parser.add_argument("--dynamic", action="store_true", help="any batch and input size")
    parser.add_argument("--out", type=Path, help="default: beside the checkpoint, .onnx")
    parser.add_argument("--images", type=Path, nargs="+", help="check on these (default: val)")
    parser.add_argument("--check-images", type=positive_int, default=8, help="how many to check on")
    args = parser.parse_args()
    if args.size is not None and args.size % 32:
        parser.error(f"--size must be a multiple of 32 (the coarsest stride), got {args.size}")
    return args


def check_images(args: argparse.Namespace, cfg: DetConfig) -> list:
    """RGB arrays to compare PyTorch and ONNX on: --images, else the run's validation set."""
    if args.images:
        return [read_rgb(p) for p in list_images(args.images)[: args.check_images]]
    _, val = build_sources(cfg.data)
    return [val.load(i)[0] for i in range(min(args.check_images, len(val)))]


def run() -> None:
    args = parse_args()
    setup_logging(None, is_main=True)
    out = args.out or args.checkpoint.with_suffix(".onnx")
    refuse_to_replace(out, [args.checkpoint, *(args.images or [])])
    writable_file(out)
    detector = Detector.from_checkpoint(args.checkpoint, device="cpu", size=args.size)
    metadata = detector_metadata(
        detector.model,
        detector.class_names,
        detector.category_ids,
        detector.size,
        detector.settings,
    )
    export_onnx(detector.model, out, detector.size, metadata, args.dynamic)
    exported = OnnxYOLOv3(out)
    images = check_images(args, detector.config)
    batch = torch.stack([detector.transform(image) for image in images])
    difference = largest_difference(detector.model, exported, batch, args.dynamic)
    logger.info(
        "wrote %s (%s opset %d, %d px%s); on %d images the head outputs differ from "
        "PyTorch's by at most %.2e",
        out,
        args.format,
        OPSET,
        detector.size,
        ", dynamic batch and size" if args.dynamic else "",
        len(images),
        difference,
    )


def main() -> None:
    """`detect-tricks export` and `python tools/export_det.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
