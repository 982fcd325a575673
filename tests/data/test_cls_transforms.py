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


def test_pca_lighting_adds_the_same_rgb_offset_to_every_pixel():
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    offset = pca_lighting_offset(0.1, np.random.default_rng(1))
    alpha = np.random.default_rng(1).normal(0.0, 0.1, size=3).astype(np.float32)
    np.testing.assert_allclose(offset, PCA_EIGVEC @ (alpha * PCA_EIGVAL), atol=1e-7)
    expected = (image / 255.0 + offset - IMAGENET_MEAN) / IMAGENET_STD
    out = to_normalized_tensor(image, offset)
    assert out.shape == (3, 4, 5) and out.dtype == torch.float32 and out.is_contiguous()
    np.testing.assert_allclose(out.numpy(), expected.transpose(2, 0, 1), atol=1e-5)


def test_normalising_a_uint8_image_uses_the_imagenet_statistics():
    image = np.array([[[0, 255, 128]]], np.uint8)
    out = to_normalized_tensor(image).flatten().numpy()
    expected = (np.array([0, 1, 128 / 255]) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out, expected, atol=1e-6)  # -2.118, 2.429, 0.009


def test_eval_preset_resizes_the_short_side_then_centre_crops(image):
    transform = ClassificationEvalTransform(56, crop_ratio=0.875)  # short side to 64
    out = transform(image)
    assert out.shape == (3, 56, 56)
    flat = np.full((64, 128, 3), 255, np.uint8)
    flat[:, 32:96] = 0  # the centre 64 columns are black
    centre = transform(flat)
    expected = (0 - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(centre[:, :, 0], torch.from_numpy(expected)[:, None].expand(3, 56))
