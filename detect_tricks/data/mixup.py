"""Mixup (Zhang et al. 2018) in its two forms.

Classification (Bag of Tricks §5.4): one `lam ~ Beta(alpha, alpha)` per batch, each
image mixed with its partner in the reversed batch, targets mixed alike. Any batch size
works; with an odd one the middle image is its own partner and stays as it is.

Detection (Bag of Freebies §3.1, GluonCV `data/mixup/detection.py`): per sample, a
second image blended in without resizing, both box sets kept with per-box weights that
scale the loss; applied to the raw samples, before every other augmentation.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from detect_tricks.data.det_transforms import Target


def sample_lambda(alpha: float) -> float:
    """`lam ~ Beta(alpha, alpha)` from torch's global generator (saved in checkpoints)."""
    concentration = torch.tensor([alpha])
    return float(torch.distributions.Beta(concentration, concentration).sample())


def mix_batch(
    images: torch.Tensor, targets: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`lam * x_i + (1 - lam) * x_j` for images and (soft) targets, j the reversed batch."""
    mixed_images = images.mul(lam).add_(images.flip(0), alpha=1 - lam)
    mixed_targets = targets.mul(lam).add_(targets.flip(0), alpha=1 - lam)
    return mixed_images, mixed_targets


def blend_detection_samples(
    first: tuple[np.ndarray, Target], second: tuple[np.ndarray, Target], lam: float
) -> tuple[np.ndarray, Target]:
    """Bag of Freebies §3.1, "visually coherent" mixup of two detection samples.

    Both images sit at the top-left of a `max(h) x max(w)` canvas of zeros, without
    resizing (so no geometric distortion), blended `lam * first + (1 - lam) * second`.
    Both box sets are kept, their weights scaled by `lam` and `1 - lam`.
    """
    (image1, target1), (image2, target2) = first, second
    height = max(image1.shape[0], image2.shape[0])
    width = max(image1.shape[1], image2.shape[1])
    mixed = np.zeros((height, width, 3), np.uint8)
    # The two images overlap in the top-left h x w; each is alone in the strips to the right
    # of and under it. Blending region by region (`x * weight + x * 0` where one image is
    # alone: the same float sum as with zeros) gives the pixels of blending two zero-padded
    # canvases, without making them.
    h, w = min(image1.shape[0], image2.shape[0]), min(image1.shape[1], image2.shape[1])
    mixed[:h, :w] = cv2.addWeighted(image1[:h, :w], lam, image2[:h, :w], 1 - lam, 0.0)
    for image, weight in ((image1, lam), (image2, 1 - lam)):
        image_h, image_w = image.shape[:2]
        if image_w > w:
            right = image[:, w:]
            mixed[:image_h, w:image_w] = cv2.addWeighted(right, weight, right, 0.0, 0.0)
        if image_h > h:
            under = image[h:, :w]
            mixed[h:image_h, :w] = cv2.addWeighted(under, weight, under, 0.0, 0.0)
    target = {
        "boxes": np.concatenate([target1["boxes"], target2["boxes"]]),
        "labels": np.concatenate([target1["labels"], target2["labels"]]),
        "weights": np.concatenate([target1["weights"] * lam, target2["weights"] * (1 - lam)]),
    }
    return mixed, target


def draw_mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    """`lam ~ Beta(alpha, alpha)` clipped to [0, 1] (GluonCV draws Beta(1.5, 1.5))."""
    return float(np.clip(rng.beta(alpha, alpha), 0.0, 1.0))
