"""Convert a Pascal VOC split (XML annotations) to a COCO-format JSON.

    python tools/voc2coco.py --root VOCdevkit/VOC2007 --split trainval --out voc07_trainval.json

Classes default to the sorted names found in the split (pass --classes to fix the order,
e.g. to share it between splits). `difficult` objects become `iscrowd: 1` regions
(ignored by COCO evaluation) unless --use-difficult; the flag is kept as `difficult`.
Images are referred to by their file names under <root>/JPEGImages.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from detect_tricks.data.coco import write_coco_file
from detect_tricks.data.voc import voc_to_coco
from detect_tricks.engine.cli import run_tool
from detect_tricks.utils.outputs import refuse_inside, writable_file
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, required=True, help="holds Annotations/, JPEGImages/")
    parser.add_argument("--split", required=True, help="ImageSets/Main/<split>.txt, or a path")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--classes", nargs="+", help="class names in label order")
    parser.add_argument("--use-difficult", action="store_true")
    args = parser.parse_args()
    setup_logging(None, is_main=True)
    if args.out.exists():  # a file of the VOC tree (a split file, an XML) is never replaced
        refuse_inside(args.out, [args.root])
    writable_file(args.out)
    data = voc_to_coco(args.root, args.split, args.classes, args.use_difficult)
    logger.info(write_coco_file(data, args.out))


def main() -> None:
    """`detect-tricks voc2coco` and `python tools/voc2coco.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
