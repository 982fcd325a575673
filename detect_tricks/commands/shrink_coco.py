"""Copy a COCO-format set with its large photos shrunk once (faster loading, smaller set).

    python tools/shrink_coco.py --ann data/fruit/annotations/instances_train.json \
        --image-dir data/fruit/images --out data/fruit_1387 --max-side 1387

Training at size S never uses more than S / 0.3 pixels per side (1387 at 416 px, 854 at
256), and shrinks every larger photo to that at every load; the copy does it once. Boxes,
areas and polygons are scaled with their photo; RLE masks are dropped (detection reads
boxes). Point `data.train_ann`/`data.train_images` at the copy. Run it once per split
into the same --out.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from detect_tricks.data.shrink import shrink_coco_set
from detect_tricks.engine.cli import run_tool
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ann", type=Path, required=True, help="a COCO-format JSON file")
    parser.add_argument("--image-dir", type=Path, required=True, help="its images' folder")
    parser.add_argument("--out", type=Path, required=True, help="writes annotations/, images/")
    parser.add_argument("--max-side", type=int, required=True, help="longest side, pixels")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    args = parser.parse_args()
    if args.max_side < 32:
        parser.error(f"--max-side must be at least 32 pixels, got {args.max_side}")
    if not 0 <= args.jpeg_quality <= 100:
        parser.error(f"--jpeg-quality must be in [0, 100], got {args.jpeg_quality}")
    setup_logging(None, is_main=True)
    report = shrink_coco_set(args.ann, args.image_dir, args.out, args.max_side, args.jpeg_quality)
    logger.info(report.summary(args.out))


def main() -> None:
    """`detect-tricks shrink-coco` and `python tools/shrink_coco.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
