"""Classification presets of the Bag of Tricks paper (§2.1), on albumentations + OpenCV.

Train: RandomResizedCrop (area 8%-100%, aspect ratio 3/4-4/3), horizontal flip, colour
jitter (brightness, contrast, saturation), AlexNet-style PCA lighting noise, normalise.
Eval: resize the short side to `size / crop_ratio`, centre crop `size`, normalise.

albumentations was measured against torchvision transforms v2 on flowers5 images here
(`benchmarks/cls_transforms.py`): 2-3x faster, so it is the one used. Every random
choice comes from the generator passed in (seeded per sample by the sampler).
"""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# Principal components of ImageNet RGB pixels in [0, 1] (Krizhevsky et al. 2012, as used
# by fb.resnet.torch and GluonCV's RandomLighting).
PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], dtype=np.float32)
PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]],
    dtype=np.float32,
)


def pca_lighting(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Add `eigvec @ (alpha * eigval)`, alpha ~ N(0, std), to every pixel of a [0, 1] image."""
    alpha = rng.normal(0.0, std, size=3).astype(np.float32)
    return image + PCA_EIGVEC @ (alpha * PCA_EIGVAL)


def to_normalized_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) RGB in [0, 1] -> (3, H, W) float32 normalised with the ImageNet statistics."""
    return torch.from_numpy(((image - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy())


class ClassificationTrainTransform:
    """The training preset; call with an RGB uint8 image and a generator."""

    def __init__(
        self,
        size: int,
        color_jitter: float = 0.4,
        lighting: float = 0.1,
        crop_area: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        steps = [
            A.RandomResizedCrop(size=(size, size), scale=tuple(crop_area), ratio=(3 / 4, 4 / 3)),
            A.HorizontalFlip(p=0.5),
        ]
        if color_jitter > 0:
            jitter = color_jitter
            steps.append(A.ColorJitter(jitter, jitter, jitter, hue=0.0, p=1.0))
        self.augment = A.Compose(steps)
        self.lighting = lighting

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        self.augment.set_random_seed(int(rng.integers(2**31)))
        out = self.augment(image=image)["image"].astype(np.float32) / 255.0
        if self.lighting > 0:
            out = pca_lighting(out, self.lighting, rng)
        return to_normalized_tensor(out)


class ClassificationEvalTransform:
    """The evaluation preset: short side to `size / crop_ratio`, centre crop `size`."""

    def __init__(self, size: int, crop_ratio: float = 0.875) -> None:
        self.resize = A.Compose(
            [A.SmallestMaxSize(max_size=round(size / crop_ratio)), A.CenterCrop(size, size)]
        )

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return to_normalized_tensor(self.resize(image=image)["image"].astype(np.float32) / 255.0)
