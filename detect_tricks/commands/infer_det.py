"""Detect objects in images with a trained detector; write pictures and COCO-style JSON.

    python tools/infer_det.py --checkpoint runs/yolov3_r18d_fruit_bof/checkpoints/best.pt \
        --images photos/ --out predictions/ --score-thr 0.3

--images takes folders (their image files, not recursively) and files. For each image,
<out>/<name>.png (or .jpg for JPEG inputs) shows its boxes with class names and scores
(inputs that share a name get <name>_2, <name>_3, ...); --out may not hold the inputs.
<out>/detections.json lists every detection in the COCO results format: `file_name` and
`path` name the image, `category_id` is the training set's category id, and `image_id`
is the image's position in the sorted input list, or, with --ann, the id that annotation
file gives the image of that file name (then `eval_det.py --results <out>/detections.json
--ann <the same file>` scores them).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tqdm import tqdm

from detect_tricks.core.errors import DatasetError, ImageReadError, UsageError
from detect_tricks.data.coco import read_json
from detect_tricks.data.image import IMAGE_EXTENSIONS, list_image_files, read_rgb
from detect_tricks.engine.cli import input_size, probability, run_tool
from detect_tricks.inference.detector import Detector
from detect_tricks.inference.visualize import draw_detections, save_rgb
from detect_tricks.metrics.coco_eval import detections_to_results
from detect_tricks.utils.outputs import writable_folder
from detect_tricks.utils.progress import setup_logging

logger = logging.getLogger(__spec__.name)  # not __name__: "__main__" under python -m


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--images", type=Path, nargs="+", required=True, help="files or folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for pictures and JSON")
    parser.add_argument(
        "--score-thr", type=probability, default=0.3, help="keep detections above it (0-1)"
    )
    parser.add_argument(
        "--size", type=input_size, help="input size, a multiple of 32 (default: the training size)"
    )
    parser.add_argument(
        "--ann", type=Path, help="a COCO file naming the images: its image and category ids"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out folder that holds other files (same names are replaced)",
    )
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip (and count) unreadable images instead of stopping at the first",
    )
    return parser.parse_args()


def list_images(inputs: list[Path]) -> list[Path]:
    """The image files named or found (not recursively) in the named folders, sorted; what
    a folder holds besides images is counted in a log line."""
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            images, passed_over = list_image_files(item)
            found += images
            if passed_over:
                counts = ", ".join(f"{n} {kind}" for kind, n in sorted(passed_over.items()))
                logger.info("%s: passed over %s (not read as images)", item, counts)
        elif item.is_file():
            found.append(item)
        else:
            raise FileNotFoundError(f"--images: {item} is neither a regular file nor a folder")
    if not found:
        raise FileNotFoundError(
            f"--images: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in "
            f"{', '.join(map(str, inputs))}"
        )
    return sorted(set(found))


def picture_names(paths: list[Path], out: Path, overwrite: bool = False) -> list[Path]:
    """Where each input's annotated picture goes: `<out>/<stem>.jpg|.png`, numbered when
    inputs share a name. An output that would replace an input, an `--out` that is an
    input folder, or one that holds files of its own (not a previous run's: that has a
    detections.json) without --overwrite, is an error: a user's files are never written
    over."""
    inputs = {p.resolve() for p in paths}
    if any(p.resolve().parent == out.resolve() for p in paths):
        raise UsageError(
            f"--out {out} holds input images: the annotated pictures would be written beside "
            "(or over) them; choose another folder"
        )
    writable_folder(out)
    others = [p.name for p in out.iterdir()] if not (out / "detections.json").is_file() else []
    if others and not overwrite:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise UsageError(
            f"--out {out} already holds files ({shown}); choose a new or empty folder, or "
            "--overwrite to write beside them"
        )
    pictures, taken = [], set()
    for path in paths:
        suffix = ".jpg" if path.suffix.lower() in {".jpg", ".jpeg", ".jfif"} else ".png"
        name, number = f"{path.stem}{suffix}", 1
        while name in taken:
            number += 1
            name = f"{path.stem}_{number}{suffix}"
        taken.add(name)
        picture = out / name
        if picture.resolve() in inputs:
            raise UsageError(f"--out {out}: {picture} is an input image; choose another folder")
        if picture.is_dir():
            raise UsageError(f"--out {out}: {picture} is a folder; choose another --out")
        pictures.append(picture)
    return pictures


def ids_from_annotations(
    ann: Path, paths: list[Path], class_names: list[str]
) -> tuple[list[int], list[int]]:
    """The image id of each input (by file name) and the category id of each of the
    model's classes (by name) in the COCO file `ann`."""
    data = read_json(ann)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError(f"--ann {ann}: not a COCO annotation file (no list under 'images')")
    by_name: dict[str, int] = {}
    for entry in data["images"]:
        if isinstance(entry, dict) and isinstance(entry.get("file_name"), str):
            by_name.setdefault(Path(entry["file_name"]).name, entry.get("id"))
    names = [p.name for p in paths]
    shared = sorted({n for n in names if names.count(n) > 1})
    if shared:
        raise UsageError(
            f"--ann {ann}: inputs from different folders share the name {shared[0]}; a COCO "
            "file names an image by its file name, so give one folder at a time"
        )
    missing = [p.name for p in paths if p.name not in by_name]
    if missing:
        raise DatasetError(
            f"--ann {ann} has no image named {missing[0]}"
            + (f" (nor {len(missing) - 1} other inputs)" if len(missing) > 1 else "")
        )
    categories = {
        c.get("name"): c.get("id") for c in data.get("categories", []) if isinstance(c, dict)
    }
    absent = [name for name in class_names if name not in categories]
    if absent:
        raise DatasetError(
            f"--ann {ann} has no category named {', '.join(absent)} (the model's classes: "
            f"{', '.join(class_names)})"
        )
    return [by_name[p.name] for p in paths], [categories[name] for name in class_names]


def run() -> None:
    args = parse_args()
    setup_logging(None, is_main=True)
    paths = list_images(args.images)
    pictures = picture_names(paths, args.out, args.overwrite)
    detector = Detector.from_checkpoint(
        args.checkpoint, device=args.device, size=args.size, score_threshold=args.score_thr
    )
    image_ids, category_ids = list(range(1, len(paths) + 1)), detector.category_ids
    if args.ann is not None:
        image_ids, category_ids = ids_from_annotations(args.ann, paths, detector.class_names)
    args.out.mkdir(parents=True, exist_ok=True)
    output = args.out / "detections.json"
    results, skipped = [], []
    for done, (path, picture, image_id) in enumerate(
        zip(tqdm(paths, desc="detect"), pictures, image_ids, strict=True)
    ):
        try:
            image = read_rgb(path)
        except ImageReadError as err:
            if not args.skip_bad_images:
                write_results(output, results)  # what was done is kept
                raise ImageReadError(
                    f"{err}; the detections of the {done} images before it are in "
                    f"{output} (--skip-bad-images goes on past unreadable images)"
                ) from err
            logger.warning("skipped %s", err)
            skipped.append(path)
            continue
        found = detector.predict(image)[0]
        drawn = draw_detections(
            image, found["boxes"], found["labels"], found["scores"], detector.class_names
        )
        save_rgb(picture, drawn)
        for result in detections_to_results(
            image_id, found["boxes"], found["scores"], found["labels"], category_ids
        ):
            results.append({**result, "file_name": path.name, "path": str(path)})
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
