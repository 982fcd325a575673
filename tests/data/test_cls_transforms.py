"""Classification presets: shapes, determinism per seed, PCA lighting, centre crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detect_tricks.data.cls_transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PCA_EIGVAL,
    PCA_EIGVEC,
    ClassificationEvalTransform,
    ClassificationTrainTransform,
    pca_lighting_offset,
    to_normalized_tensor,
)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)


def test_train_preset_shape_and_determinism(image):
    transform = ClassificationTrainTransform(64)
    a = transform(image, np.random.default_rng(5))
    b = transform(image, np.random.default_rng(5))
    c = transform(image, np.random.default_rng(6))
    assert a.shape == (3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


# Written out here, from their sources, not read from the module under test: ImageNet's
# channel statistics (torchvision, timm) and the PCA of its RGB pixels (Krizhevsky et al.
# 2012; fb.resnet.torch's and GluonCV's RandomLighting).
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
EIGVAL = np.array([0.2175, 0.0188, 0.0045])
EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
)


def test_the_constants_are_the_sources():
    np.testing.assert_allclose(IMAGENET_MEAN, MEAN, atol=1e-7)
    np.testing.assert_allclose(IMAGENET_STD, STD, atol=1e-7)
    np.testing.assert_allclose(PCA_EIGVAL, EIGVAL, atol=1e-7)
    np.testing.assert_allclose(PCA_EIGVEC, EIGVEC, atol=1e-7)


def test_pca_lighting_adds_the_same_rgb_offset_to_every_pixel():
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    offset = pca_lighting_offset(0.1, np.random.default_rng(1))
    alpha = np.random.default_rng(1).normal(0.0, 0.1, size=3)
    np.testing.assert_allclose(offset, EIGVEC @ (alpha * EIGVAL), atol=1e-6)
    expected = (image / 255.0 + offset - MEAN) / STD
    out = to_normalized_tensor(image, offset)
    assert out.shape == (3, 4, 5) and out.dtype == torch.float32 and out.is_contiguous()
    np.testing.assert_allclose(out.numpy(), expected.transpose(2, 0, 1), atol=1e-5)


def test_normalising_a_uint8_image_uses_the_imagenet_statistics():
    image = np.array([[[0, 255, 128]]], np.uint8)
    out = to_normalized_tensor(image).flatten().numpy()
    # (0 - .485) / .229, (1 - .456) / .224, (128 / 255 - .406) / .225
    np.testing.assert_allclose(out, [-2.1179039, 2.4285715, 0.4264923], atol=1e-6)


def test_eval_preset_resizes_the_short_side_then_centre_crops(image):
    transform = ClassificationEvalTransform(56, crop_ratio=0.875)  # short side to 64
    out = transform(image)
    assert out.shape == (3, 56, 56)
    flat = np.full((64, 128, 3), 255, np.uint8)
    flat[:, 32:96] = 0  # the centre 64 columns are black
    centre = transform(flat)
    expected = (0 - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(centre[:, :, 0], torch.from_numpy(expected)[:, None].expand(3, 56))


def _crop_of(out: torch.Tensor) -> tuple[float, float]:
    """The source window's width and height, read from an image whose red channel is the
    column and green the row (the output's pixel centres span (size - 1) / size of it)."""
    pixels = out.permute(1, 2, 0).numpy() * STD + MEAN
    columns, rows = pixels[..., 0] * 255, pixels[..., 1] * 255
    size = out.shape[-1]
    span = size / (size - 1)
    return (columns.max() - columns.min()) * span, (rows.max() - rows.min()) * span


def test_the_random_crop_covers_8_to_100_percent_at_aspect_3_4_to_4_3():
    # Bag of Tricks §2.1: "randomly sample ... aspect ratio in [3/4, 4/3] and area in [8%, 100%]"
    grid = np.zeros((256, 256, 3), np.uint8)
    grid[..., 0] = np.arange(256)[None, :]
    grid[..., 1] = np.arange(256)[:, None]
    transform = ClassificationTrainTransform(64, color_jitter=0.0, lighting=0.0)
    areas, aspects = [], []
    for seed in range(200):
        width, height = _crop_of(transform(grid, np.random.default_rng(seed)))
        areas.append(width * height / 256**2)
        aspects.append(width / height)
    # a window is measured within about a pixel of each edge
    assert 0.08 * 0.9 <= min(areas) < 0.2 and 0.8 < max(areas) <= 1.0 + 1e-6
    assert 0.75 * 0.95 <= min(aspects) < 0.85 and 1.2 < max(aspects) <= 4 / 3 * 1.05


def test_colour_jitter_scales_brightness_by_0_6_to_1_4():
    # Bag of Tricks §2.1: brightness, contrast and saturation factors in [0.6, 1.4]; on a
    # grey photo contrast and saturation change nothing, so the pixel shows brightness
    grey = np.full((80, 80, 3), 100, np.uint8)
    transform = ClassificationTrainTransform(32, color_jitter=0.4, lighting=0.0)
    values = []
    for seed in range(200):
        pixels = transform(grey, np.random.default_rng(seed)).permute(1, 2, 0).numpy()
        values.append(float(((pixels * STD + MEAN) * 255).mean()))
    assert 60 - 1 <= min(values) < 70 and 130 < max(values) <= 140 + 1
