"""Detection training samples: milliseconds per sample on one core, and where they go.

A sample is what one loader worker makes for `DetectionTrainSet`: decode, (mosaic of four
decoded photos, mixup with another), GluonCV's colour jitter, random expand, SSD crop,
resize, flip and normalise; each with photos decoded per sample and with `data.cache:
ram` (decoded and shrunk once, filled in threads before timing: its fill time and size
are columns). By default on the generated demo shapes (written to a temporary folder, so no
data is needed); the demo's model steps take ~10 ms per 128 px image on 2 cores, so loading
must stay well under that to leave the cores to training. With `--ann`/`--image-dir`, on
real photos of a COCO-format set at a GPU recipe's size, where the question is whether
one core makes the 100 samples/s that lets 8 workers feed a GPU at 800 images/s.

    python benchmarks/det_loading.py [--images 200] [--size 128]
    python benchmarks/det_loading.py --size 416 --name det_loading_fruit_416 \
        --ann ../../shared/data/fruit/annotations/instances_train.json \
        --image-dir ../../shared/data/fruit/images
    # the same photos shrunk once to the 1387 px that training at 416 can use
    python tools/shrink_coco.py --ann ../shared/data/fruit/annotations/instances_train.json \
        --image-dir ../shared/data/fruit/images --out /tmp/fruit_1387 --max-side 1387
    python benchmarks/det_loading.py --size 416 --name det_loading_fruit_416_shrunk \
        --ann /tmp/fruit_1387/annotations/instances_train.json --image-dir /tmp/fruit_1387/images
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_results

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.det_transforms import ssd_crop_window
from detect_tricks.data.sampling import SampleKey
from detect_tricks.data.synthetic import generate
from detect_tricks.tasks.detection import build_train_set


def ms_per_call(function, count: int) -> float:
    """Best of 3 passes over `count` calls of `function(i)`, in milliseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for i in range(count):
            function(i)
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200, help="generated images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--ann", type=Path, help="a COCO annotation file of real photos")
    parser.add_argument("--image-dir", type=Path, help="the folder of --ann's images")
    parser.add_argument("--name", default="det_loading", help="results/<name>.{json,md}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with contextlib.ExitStack() as stack:
        if args.ann is not None:
            source = CocoDetection(args.ann, args.image_dir)
            what = f"{len(source)} photos of {args.ann}"
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            root = generate(tmp, args.images, seed=0, val_fraction=0.0)
            source = CocoDetection(root / "annotations" / "instances_train.json", root / "images")
            what = f"{len(source)} generated demo images (about 200-300 px a side)"
        count = len(source)
        records = source.records
        rows = [
            {
                "step": "SSD crop windows (6 constraints x 50 trials)",
                "ms_per_sample": ms_per_call(
                    lambda i: ssd_crop_window(
                        records[i].boxes,
                        records[i].height,
                        records[i].width,
                        np.random.default_rng(i),
                    ),
                    count,
                ),
            }
        ]
        for name, tricks in (
            ("GluonCV preset (expand 4x)", {}),
            ("GluonCV preset + mixup", {"mixup": True}),
            ("mosaic (then the colour jitter and flip)", {"mosaic": True}),
            ("mosaic + mixup", {"mosaic": True, "mixup": True}),
        ):
            for cache in ("none", "ram"):
                cfg = config_from_dict(
                    {"data": {"size": args.size, "cache": cache}, "tricks": tricks}, DetConfig
                )
                started = time.perf_counter()
                dataset = build_train_set(cfg, source)
                filled = time.perf_counter() - started
                ms = ms_per_call(lambda i, d=dataset: d[SampleKey(i, i, args.size, 0)], count)
                step = f"sample, {name}" + (", RAM cache" if cache == "ram" else "")
                row = {"step": step, "ms_per_sample": ms}
                if cache == "ram":
                    cached = sum(image.nbytes for image, _ in dataset.cache.values())
                    row["cache_MB"] = round(cached / 2**20)
                    row["cache_fill_s"] = round(filled, 1)
                rows.append(row)
    for row in rows:
        row["samples_per_s_per_core"] = round(1000 / row["ms_per_sample"], 1)
        row["ms_per_sample"] = round(row["ms_per_sample"], 2)
    path = write_results(
        args.name,
        rows,
        notes=(
            f"{what} to {args.size} px, one core, decode included in the sample rows; "
            "best of 3 passes."
        ),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
