"""Convert a split in YOLO txt labels (ultralytics, darknet) to a COCO-format JSON.

    python tools/yolo2coco.py --images data/images/train --labels data/labels/train \
        --names apple banana orange --out instances_train.json
    python tools/yolo2coco.py --images ... --labels ... --names-file data.yaml --out ...

Labels are `class cx cy w h` per line, fractions of the image; sizes are read from the
pixels; category ids are the class index + 1. --names-file takes ultralytics' data.yaml
(its `names` list or mapping) or a text file of one name per line. Train with the JSON
as data.train_ann and the image folder as data.train_images.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from detect_tricks.core.config_loader import parse_yaml, yaml_problem
from detect_tricks.core.errors import ConfigError, DatasetError
from detect_tricks.data.coco import read_text, write_coco_file
from detect_tricks.data.yolo import yolo_to_coco
from detect_tricks.engine.cli import run_tool
from detect_tricks.utils.outputs import refuse_inside, refuse_to_replace, writable_file
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def read_names(path: Path) -> list[str]:
    """Class names from ultralytics' data.yaml (`names`: a list, or index -> name) or a
    text file with one name per line."""
    if not path.is_file():
        raise DatasetError(f"--names-file: no file at {path}")
    text = read_text(path, "a names file")
    if path.suffix not in (".yaml", ".yml"):
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        data = parse_yaml(text)
    except (yaml.YAMLError, ConfigError) as err:
        raise DatasetError(f"{path} is not valid YAML: {yaml_problem(err)}") from None
    names = data.get("names") if isinstance(data, dict) else None
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise DatasetError(
                f"{path}: 'names' must map the class indices 0..{len(names) - 1}, each once, "
                f"got {sorted(names, key=str)}"
            )
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: expected a 'names' list or a mapping of index to name")
    return [str(n) for n in names]


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, required=True, help="the split's image folder")
    parser.add_argument("--labels", type=Path, required=True, help="its labels/*.txt folder")
    names = parser.add_mutually_exclusive_group(required=True)
    names.add_argument("--names", nargs="+", help="class names in class-index order")
    names.add_argument("--names-file", type=Path, help="data.yaml or one name per line")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    setup_logging(None, is_main=True)
    refuse_to_replace(args.out, [args.names_file])
    refuse_inside(args.out, [args.images, args.labels])
    writable_file(args.out)
    class_names = args.names or read_names(args.names_file)
    data = yolo_to_coco(args.images, args.labels, class_names)
    logger.info(write_coco_file(data, args.out))


def main() -> None:
    """`detect-tricks yolo2coco` and `python tools/yolo2coco.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
