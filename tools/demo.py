"""`make demo`: train, evaluate and show a detector in minutes, on a fresh machine.

    python tools/demo.py                      # the generated shapes dataset (data/demo)
    python tools/demo.py --data path/to/coco  # your COCO-format data instead
    python tools/demo.py --set train.epochs=20 # any config key changed, as in train_det

--data is a folder holding `annotations/instances_train*.json` and
`annotations/instances_val*.json`, with the images in `images/` (or `train2017/` and
`val2017/`). Trains configs/det/yolov3_r18d_demo.yaml (Bag of Freebies on), evaluates
with pycocotools, and prints where the run directory and its pictures are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from detect_tricks.core.errors import DatasetError
from detect_tricks.data.synthetic import GENERATOR_VERSION, generate
from detect_tricks.utils.progress import format_duration

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "det" / "yolov3_r18d_demo.yaml"
DEMO_DATA = ROOT / "data" / "demo"
DEMO_IMAGES, DEMO_SEED = 500, 0


def demo_data() -> Path:
    """The generated dataset, written once and reused (rewritten if its recipe changed)."""
    stamp = DEMO_DATA / "recipe.json"
    recipe = {"num_images": DEMO_IMAGES, "seed": DEMO_SEED, "generator": GENERATOR_VERSION}
    if not stamp.is_file() or json.loads(stamp.read_text()) != recipe:
        print(f"Generating the demo dataset ({DEMO_IMAGES} images) in {DEMO_DATA} ...", flush=True)
        generate(DEMO_DATA, DEMO_IMAGES, DEMO_SEED)
        stamp.write_text(json.dumps(recipe))
    return DEMO_DATA


def user_data(root: Path) -> list[str]:
    """Overrides pointing the demo config at a COCO-format folder."""

    def one(pattern: str) -> Path:
        found = sorted((root / "annotations").glob(pattern))
        if not found:
            raise DatasetError(f"--data {root}: no annotations/{pattern}")
        return found[0]

    train_ann, val_ann = one("instances_train*.json"), one("instances_val*.json")
    if (root / "images").is_dir():
        train_images = val_images = root / "images"
    else:
        train_images, val_images = root / "train2017", root / "val2017"
    classes = len(json.loads(train_ann.read_text())["categories"])
    return [
        f"data.train_ann={train_ann}",
        f"data.train_images={train_images}",
        f"data.val_ann={val_ann}",
        f"data.val_images={val_images}",
        f"model.num_classes={classes}",
    ]


def readme_picture(grid: Path, out: Path, tiles: int = 3, cell: int = 256) -> None:
    """A few-KB PNG of the first tiles of the prediction grid, in 24 colours."""
    image = Image.open(grid).convert("RGB")
    width = min(image.width, tiles * cell)
    small = image.crop((0, 0, width, min(image.height, cell))).resize(
        (width * 5 // 8, cell * 5 // 8)
    )
    small.quantize(24).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, help="a COCO-format folder (default: generated shapes)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--readme-picture", type=Path, help="also write a small PNG for the README")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a key of the demo config, as tools/train_det.py --set does",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        overrides = user_data(args.data) if args.data else []
        data = args.data or demo_data()
    except DatasetError as err:
        sys.exit(f"error: {err}")
    command = [
        sys.executable,
        str(ROOT / "tools" / "train_det.py"),
        "--config",
        str(CONFIG),
        "--out",
        str(args.out),
        "--overwrite",
    ]
    for item in overrides + args.set:
        command += ["--set", item]
    print(f"Training {CONFIG.name} on {data} -> {args.out}", flush=True)
    trained = subprocess.run(command, cwd=ROOT)
    if trained.returncode:
        sys.exit(trained.returncode)
    summary = json.loads((args.out / "summary.json").read_text())
    final = summary["final"] or {}
    pictures = sorted((args.out / "plots").glob("*.png"))
    if args.readme_picture:
        readme_picture(args.out / "plots" / "val_predictions.png", args.readme_picture)
        pictures.append(args.readme_picture)
    print("\n" + "=" * 72)
    print(
        f"Demo finished in {format_duration(time.perf_counter() - started)} "
        f"(training {format_duration(summary['wall_seconds'])})"
    )
    print(f"Run directory:  {args.out}")
    ap, ap50 = final.get("AP", float("nan")), final.get("AP50", float("nan"))
    print(f"COCO AP:        {ap:.3f}   AP50: {ap50:.3f}   (validation, {summary['epochs']} epochs)")
    print("Pictures:")
    for picture in pictures:
        print(f"  {picture}")
    print("=" * 72)


if __name__ == "__main__":
    main()
