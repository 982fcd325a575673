"""The generated demo dataset: shapes with colours and textures on cluttered scenes.

A COCO-format detection set that needs no download and gives the tricks something to
do: four object classes told apart by shape (not colour), each drawn at a random size
(from a fifth to half of the image's short side), colour and texture (solid, stripes, checks,
speckles), on backgrounds of gradients, noise and distractor scribbles, with objects
occluding one another. A box is the extent of the object's visible pixels; objects
less than 30% visible are not annotated. The same seed gives the same bytes.

    python -m detect_tricks.data.synthetic --out data/demo --num-images 600
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np

from detect_tricks.utils.progress import setup_logging

CLASSES = ("circle", "square", "triangle", "cross")
MIN_VISIBLE = 0.3
GENERATOR_VERSION = 2  # bump when the drawing changes: written sets are then redrawn
logger = logging.getLogger(__name__)


def _shape_mask(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) uint8 mask of one object of class `name`, randomly rotated."""
    mask = np.zeros((size, size), np.uint8)
    c, r = size / 2, size / 2 - 1
    angle = rng.uniform(0, 2 * np.pi)
    if name == "circle":
        axes = (int(r), int(r * rng.uniform(0.75, 1.0)))
        cv2.ellipse(mask, (int(c), int(c)), axes, np.degrees(angle), 0, 360, 255, -1)
        return mask
    if name == "square":
        corners = [angle + np.pi / 4 + k * np.pi / 2 for k in range(4)]
        radii = [r] * 4
    elif name == "triangle":
        corners = [angle + k * 2 * np.pi / 3 for k in range(3)]
        radii = [r] * 3
    else:  # cross: a plus sign of two bars
        arm = r * 0.35
        points = np.array(
            [
                (-arm, -r),
                (arm, -r),
                (arm, -arm),
                (r, -arm),
                (r, arm),
                (arm, arm),
                (arm, r),
                (-arm, r),
                (-arm, arm),
                (-r, arm),
                (-r, -arm),
                (-arm, -arm),
            ]
        )
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        cv2.fillPoly(mask, [(points @ rotation.T + c).round().astype(np.int32)], 255)
        return mask
    points = [
        (c + rad * np.cos(a), c + rad * np.sin(a)) for a, rad in zip(corners, radii, strict=True)
    ]
    cv2.fillPoly(mask, [np.array(points).round().astype(np.int32)], 255)
    return mask


def _texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) coloured texture: solid, stripes, checks or speckles."""
    base = rng.integers(30, 256, 3)
    other = np.clip(base + rng.integers(-90, 91, 3), 0, 255)
    kind = rng.integers(4)
    yy, xx = np.mgrid[:size, :size]
    period = max(2, int(rng.integers(3, 9)))
    if kind == 0:
        pattern = np.zeros((size, size), bool)
    elif kind == 1:
        pattern = ((xx + yy * rng.integers(0, 2)) // period) % 2 == 0
    elif kind == 2:
        pattern = ((xx // period) + (yy // period)) % 2 == 0
    else:
        pattern = rng.random((size, size)) < 0.25
    return np.where(pattern[..., None], other, base).astype(np.uint8)


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A gradient with noise and distractor scribbles (lines and blobs of no class)."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1)
    image = image + rng.normal(0, 12, (height, width, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        p0 = (int(rng.integers(width)), int(rng.integers(height)))
        p1 = (int(rng.integers(width)), int(rng.integers(height)))
        if rng.random() < 0.6:
            cv2.line(image, p0, p1, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            axes = (int(rng.integers(3, width // 6)), int(rng.integers(3, height // 6)))
            cv2.ellipse(image, p0, axes, float(rng.uniform(0, 180)), 0, 360, colour, 1, cv2.LINE_AA)
    return image


def render_scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One image and its objects as (class index, [x, y, w, h] of the visible pixels)."""
    height, width = int(rng.integers(192, 289)), int(rng.integers(192, 289))
    image = _background(height, width, rng)
    owner = np.full((height, width), -1, np.int32)  # which object shows at each pixel
    drawn = []
    for index in range(int(rng.integers(1, 5))):
        label = int(rng.integers(len(CLASSES)))
        size = int(min(height, width) * rng.uniform(0.2, 0.5))
        x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
        mask = _shape_mask(CLASSES[label], size, rng) > 0
        region = image[y : y + size, x : x + size]
        region[mask] = _texture(size, rng)[mask]
        owner[y : y + size, x : x + size][mask] = index
        drawn.append((label, int(mask.sum())))
    objects = []
    for index, (label, area) in enumerate(drawn):
        ys, xs = np.nonzero(owner == index)
        if len(xs) < MIN_VISIBLE * area:
            continue
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        objects.append((label, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]))
    return image, objects


def generate(out: str | Path, num_images: int, seed: int = 0, val_fraction: float = 0.2) -> Path:
    """Write `images/*.jpg` and `annotations/instances_{train,val}.json` under `out`.

    Returns `out`. The last `val_fraction` of the images form the validation split.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(CLASSES)]
    num_val = max(1, round(num_images * val_fraction))
    splits = {"train": {"images": [], "annotations": []}, "val": {"images": [], "annotations": []}}
    for image_id in range(1, num_images + 1):
        rng = np.random.default_rng([seed, image_id])
        image, objects = render_scene(rng)
        file_name = f"{image_id:06d}.jpg"
        cv2.imwrite(
            str(out / "images" / file_name),
            cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        split = splits["val" if image_id > num_images - num_val else "train"]
        split["images"].append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": image.shape[1],
                "height": image.shape[0],
            }
        )
        for label, bbox in objects:
            split["annotations"].append(
                {
                    "id": len(split["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
    for name, split in splits.items():
        data = {
            **split,
            "categories": categories,
            "info": {"description": f"detect_tricks synthetic, seed {seed}"},
        }
        (out / "annotations" / f"instances_{name}.json").write_text(json.dumps(data))
    logger.info(
        "wrote %d images (%d val) with %d objects to %s",
        num_images,
        num_val,
        sum(len(s["annotations"]) for s in splits.values()),
        out,
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    args = parser.parse_args()
    setup_logging(None, is_main=True)
    generate(args.out, args.num_images, args.seed, args.val_fraction)


if __name__ == "__main__":
    main()
