"""Detect objects in images with a trained detector; write pictures and COCO-style JSON.

    python tools/infer_det.py --checkpoint runs/yolov3_r18d_fruit_bof/checkpoints/best.pt \
        --images photos/ --out predictions/ --score-thr 0.3

--images takes folders and files. For each image, <out>/<name>.png (or .jpg for JPEG
inputs) shows its boxes with class names and scores; <out>/detections.json lists every
detection in the COCO results format (`image_id` is the image's position in the sorted
input list, `file_name` names it, `category_id` is the training set's category id).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm import tqdm

from detect_tricks.coco_eval import detections_to_results
from detect_tricks.data.folder import IMAGE_EXTENSIONS
from detect_tricks.data.image import read_rgb
from detect_tricks.detector import Detector
from detect_tricks.engine.cli import run_tool
from detect_tricks.errors import ImageReadError
from detect_tricks.utils.progress import setup_logging
from detect_tricks.visualize import draw_detections, save_rgb

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="files or folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for pictures and JSON")
    parser.add_argument("--score-thr", type=float, default=0.3, help="keep detections above it")
    parser.add_argument("--size", type=int, help="input size (default: the training size)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and count) unreadable images instead of stopping at the first",
    )
    return parser.parse_args()


def list_images(inputs: list[Path]) -> list[Path]:
    """The image files named or found (not recursively) in the named folders, sorted."""
    found = []
    for item in inputs:
        if item.is_dir():
            found += [p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"--images: {item} is neither a file nor a folder")
    if not found:
        raise FileNotFoundError(f"--images: no image files in {', '.join(map(str, inputs))}")
    return sorted(found)


def run() -> None:
    args = parse_args()
    setup_logging(None, is_main=True)
    detector = Detector.from_checkpoint(
        args.checkpoint, device=args.device, size=args.size, score_threshold=args.score_thr
    )
    args.out.mkdir(parents=True, exist_ok=True)
    output = args.out / "detections.json"
    results, skipped = [], []
    paths = list_images(args.images)
    for image_id, path in enumerate(tqdm(paths, desc="detect"), start=1):
        try:
            image = read_rgb(path)
        except ImageReadError as err:
            if not args.skip_bad_images:
                write_results(output, results)  # what was done is kept
                raise ImageReadError(
                    f"{err}; the detections of the {image_id - 1} images before it are in "
                    f"{output} (--skip-bad-images goes on past unreadable images)"
                ) from err
            logger.warning("skipped %s", err)
            skipped.append(path)
            continue
        found = detector.predict(image)[0]
        picture = draw_detections(
            image, found["boxes"], found["labels"], found["scores"], detector.class_names
        )
        suffix = ".jpg" if path.suffix.lower() in {".jpg", ".jpeg"} else ".png"
        save_rgb(args.out / f"{path.stem}{suffix}", picture)
        for result in detections_to_results(
            image_id, found["boxes"], found["scores"], found["labels"], detector.category_ids
        ):
            results.append({**result, "file_name": path.name})
    write_results(output, results)
    logger.info(
        "%d detections in %d images -> %s%s",
        len(results),
        len(paths) - len(skipped),
        args.out,
        f" ({len(skipped)} unreadable images skipped)" if skipped else "",
    )


def write_results(path: Path, results: list[dict]) -> None:
    path.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    """`detect-tricks infer-det` and `python tools/infer_det.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
