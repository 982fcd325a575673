"""Classification training augmentation: albumentations (ours) vs torchvision transforms v2.

The same pipeline in both (RandomResizedCrop 8-100%, flip, colour jitter 0.4, PCA
lighting, normalise) on flowers5 images, one core, decode excluded; the faster library
is the one `detect_tricks/data/cls_transforms.py` uses. Without flowers5 (a clone with
no ../shared beside it) the images are the demo's generated scenes (gradients, shapes,
textures) shrunk to flowers5's 128 x 128, and the table says so.

    python benchmarks/cls_transforms.py [--data ../shared/data/flowers5/train] [--size 112]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import write_results
from torchvision.transforms import v2

from detect_tricks.data.cls_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PCA_EIGVAL,
    PCA_EIGVEC,
    ClassificationTrainTransform,
)
from detect_tricks.data.image import read_rgb
from detect_tricks.data.synthetic import render_scene

# ../shared beside the repository, whatever the working directory (make bench runs in benchmarks/)
SHARED_FLOWERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers5" / "train"


def torchvision_pipeline(size: int):
    augment = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.08, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.4, 0.4, 0.4),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    eigvec, eigval = torch.from_numpy(PCA_EIGVEC), torch.from_numpy(PCA_EIGVAL)
    normalize = v2.Normalize(IMAGENET_MEAN.tolist(), IMAGENET_STD.tolist())

    def run(image: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        out = augment(torch.from_numpy(image).permute(2, 0, 1))
        alpha = torch.randn(3, generator=generator) * 0.1
        return normalize(out + (eigvec @ (alpha * eigval))[:, None, None])

    return run


def images_per_second(transform, images, make_rng) -> float:
    start = time.perf_counter()
    for i, image in enumerate(images):
        transform(image, make_rng(i))
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_FLOWERS)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted(args.data.glob("*/*"))[: args.images]
    if files:
        images, source = [read_rgb(f) for f in files], str(args.data)
    else:
        print(f"no images under {args.data}: generated scenes at 128x128 instead")
        rng = np.random.default_rng(0)
        scenes = (render_scene(rng)[0] for _ in range(args.images))
        images = [cv2.resize(scene, (128, 128), interpolation=cv2.INTER_AREA) for scene in scenes]
        source = f"the demo's generated scenes ({args.data} has no images)"
    ours = ClassificationTrainTransform(args.size)
    theirs = torchvision_pipeline(args.size)
    rows = []
    for name, transform, make_rng in (
        ("albumentations (ours)", ours, np.random.default_rng),
        ("torchvision v2", theirs, lambda i: torch.Generator().manual_seed(i)),
    ):
        images_per_second(transform, images[:20], make_rng)  # warm-up
        rate = max(images_per_second(transform, images, make_rng) for _ in range(3))
        rows.append({"pipeline": name, "images_per_s_one_core": round(rate, 1)})
    shape = f"{images[0].shape[1]}x{images[0].shape[0]}"
    path = write_results(
        "cls_transforms",
        rows,
        notes=f"{len(images)} images of {shape} from {source} to {args.size} px; best of 3.",
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
