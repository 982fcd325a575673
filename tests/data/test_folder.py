"""ImageFolder dataset: decoding by content, RGB always, class lists, bad images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.folder import ImageFolderDataset
from detect_tricks.data.image import read_rgb
from detect_tricks.data.sampling import SampleKey


def _identity(image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(image)


def _write_images(folder: Path) -> None:
    """One image of each colour type real data holds, some with misleading names."""
    (folder / "cat").mkdir(parents=True)
    (folder / "dog").mkdir()
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(folder / "cat" / "a_png_named.jpg", format="PNG")
    Image.fromarray(rgb[..., 0]).save(folder / "cat" / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((10, 12), 128, np.uint8)])).save(
        folder / "dog" / "rgba.png"
    )
    Image.fromarray(rgb).convert("P").save(folder / "dog" / "palette.png")
    Image.fromarray(rgb).save(folder / "dog" / "real.JPEG", format="JPEG")
    (folder / "dog" / "notes.txt").write_text("not an image")


def test_every_colour_type_loads_as_rgb(tmp_path):
    _write_images(tmp_path)
    dataset = ImageFolderDataset(tmp_path, _identity)
    assert dataset.classes == ["cat", "dog"]
    assert len(dataset) == 5  # notes.txt is not an image file
    for index in range(len(dataset)):
        image, _ = dataset[SampleKey(index, 0)]
        assert image.shape == (10, 12, 3) and image.dtype == torch.uint8
    first, _ = dataset[SampleKey(0, 0)]  # the PNG named .jpg, red
    assert first[0, 0].tolist() == [200, 0, 0]
    assert [dataset[SampleKey(i, 0)][1] for i in range(5)] == [0, 0, 1, 1, 1]


def test_validation_uses_the_training_classes(tmp_path):
    _write_images(tmp_path / "train")
    (tmp_path / "val" / "dog").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "val" / "dog" / "x.png")
    train = ImageFolderDataset(tmp_path / "train", _identity)
    val = ImageFolderDataset(tmp_path / "val", _identity, classes=train.classes)
    assert val.samples[0][1] == 1  # "dog" keeps its training label
    (tmp_path / "val" / "bird").mkdir()
    with pytest.raises(DatasetError, match="class folders the training split lacks: bird"):
        ImageFolderDataset(tmp_path / "val", _identity, classes=train.classes)


def test_missing_or_empty_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match=f"no folder at {tmp_path / 'nope'}"):
        ImageFolderDataset(tmp_path / "nope", _identity)
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no image files"):
        ImageFolderDataset(tmp_path / "empty", _identity)


def test_unreadable_image_is_an_error_naming_the_file(tmp_path):
    _write_images(tmp_path)
    bad = tmp_path / "cat" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    dataset = ImageFolderDataset(tmp_path, _identity)
    index = [p for p, _ in dataset.samples].index(str(bad))
    with pytest.raises(ImageReadError, match=f"cannot decode image {bad}.*skip_bad_images"):
        dataset[SampleKey(index, 0)]


def test_skip_bad_images_substitutes_and_counts(tmp_path):
    _write_images(tmp_path)
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"")
    dataset = ImageFolderDataset(tmp_path, _identity, skip_bad_images=True)
    images = [dataset[SampleKey(i, 0)][0] for i in range(len(dataset))]
    assert all(image.shape == (10, 12, 3) for image in images)
    dataset[SampleKey(0, 1)]  # the same bad file met again is counted once
    assert dataset.num_skipped == 1


def test_read_rgb_names_a_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="cannot read image .*absent.png"):
        read_rgb(tmp_path / "absent.png")
