"""Images of every kind: decoded by content to RGB, or an error naming the file."""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.detection import DetectionEvalSet
from detect_tricks.data.image import read_rgb
from detect_tricks.data.sampling import SampleKey
from detect_tricks.errors import ImageReadError
from robustness.case import Case, raises

PIXELS = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)


def _write(path: Path, kind: str) -> Path:
    """An image file of `kind` at `path`."""
    if kind == "jpeg":
        Image.fromarray(PIXELS).save(path, format="JPEG", quality=95)
    elif kind in ("png", "bmp", "webp", "tiff"):
        Image.fromarray(PIXELS).save(path, format=kind.upper())
    elif kind == "grey":
        Image.fromarray(PIXELS[..., 0]).save(path, format="PNG")
    elif kind == "rgba":
        Image.fromarray(np.dstack([PIXELS, np.full((40, 60), 9, np.uint8)])).save(path, "PNG")
    elif kind == "palette":
        Image.fromarray(PIXELS).convert("P").save(path, format="PNG")
    elif kind == "16-bit":
        cv2.imwrite(str(path.with_suffix(".png")), PIXELS[..., ::-1].astype(np.uint16) * 257)
        path.with_suffix(".png").rename(path)
    elif kind == "cmyk":
        Image.fromarray(PIXELS).convert("CMYK").save(path, format="JPEG", quality=95)
    elif kind == "1x1":
        Image.fromarray(PIXELS[:1, :1]).save(path, format="PNG")
    elif kind == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
        Image.fromarray(PIXELS).save(path, format="JPEG", quality=95, exif=exif)
    return path


def decodes(kind: str, name: str, shape: tuple[int, int, int], exact: bool):
    def check(tmp_path: Path) -> None:
        image = read_rgb(_write(tmp_path / name, kind))
        assert image.shape == shape and image.dtype == np.uint8
        if exact:
            np.testing.assert_array_equal(image, PIXELS)

    return check


def fails(make, *fragments: str):
    def check(tmp_path: Path) -> None:
        path = make(tmp_path)
        with raises(ImageReadError, str(path), *fragments):
            read_rgb(path)

    return check


def _truncated(tmp_path: Path) -> Path:
    whole = _write(tmp_path / "whole.jpg", "jpeg").read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(whole[: len(whole) // 2])
    return path


def decodes_truncated(tmp_path: Path) -> None:
    path = _truncated(tmp_path)
    with _warnings_of("detect_tricks.data.image") as warned:
        image = read_rgb(path)
    assert image.shape == (40, 60, 3)
    assert any(f"{path} is truncated" in message for message in warned)


@contextmanager
def _warnings_of(logger_name: str):
    """The messages `logger_name` logs at WARNING inside the block."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger(logger_name).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(logger_name).removeHandler(handler)


def _bytes(name: str, data: bytes):
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    return make


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "folder.jpg").mkdir()
    return tmp_path / "folder.jpg"


def _coco_with(tmp_path: Path, declared: tuple[int, int], file_bytes: bytes | None = None):
    _write(tmp_path / "a.png", "png")
    if file_bytes is not None:
        (tmp_path / "a.png").write_bytes(file_bytes)
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": declared[0], "height": declared[1]}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path / "ann.json"


def size_mismatch(tmp_path: Path) -> None:
    source = CocoDetection(_coco_with(tmp_path, (61, 40)), tmp_path)
    with raises(ImageReadError, "a.png is 60x40 pixels", "says 61x40", "image id 1"):
        source.load(0)


def skipped_in_evaluation(tmp_path: Path) -> None:
    source = CocoDetection(_coco_with(tmp_path, (60, 40), b"broken"), tmp_path, True)
    dataset = DetectionEvalSet(source, 32)
    image, meta = dataset[SampleKey(0, 0)]
    assert meta["skipped"] and image.abs().sum() == 0 and dataset.num_skipped == 1


CASES = [
    Case("images", "JPEG", "decoded, (40, 60, 3) uint8", decodes("jpeg", "a.jpg", (40, 60, 3), False)),
    Case("images", "PNG named .jpg", "decoded by content, pixels exact", decodes("png", "a.jpg", (40, 60, 3), True)),
    Case("images", "BMP", "decoded, pixels exact", decodes("bmp", "a.bmp", (40, 60, 3), True)),
    Case("images", "WebP", "decoded to RGB", decodes("webp", "a.webp", (40, 60, 3), False)),
    Case("images", "TIFF", "decoded, pixels exact", decodes("tiff", "a.tiff", (40, 60, 3), True)),
    Case("images", "greyscale PNG", "3 channels", decodes("grey", "a.png", (40, 60, 3), False)),
    Case("images", "RGBA PNG", "alpha dropped, RGB exact", decodes("rgba", "a.png", (40, 60, 3), True)),
    Case("images", "palette PNG", "3 channels", decodes("palette", "a.png", (40, 60, 3), False)),
    Case("images", "16-bit PNG", "scaled to uint8, RGB exact", decodes("16-bit", "a.png", (40, 60, 3), True)),
    Case("images", "CMYK JPEG", "converted to RGB", decodes("cmyk", "a.jpg", (40, 60, 3), False)),
    Case("images", "1x1 image", "decoded, (1, 1, 3)", decodes("1x1", "a.png", (1, 1, 3), False)),
    Case("images", "JPEG with EXIF rotation", "turned upright, (60, 40, 3)", decodes("exif-rotated", "a.jpg", (60, 40, 3), False)),
    Case("images", "zero-byte file", "ImageReadError naming the file", fails(_bytes("e.jpg", b""), "cannot decode")),
    Case("images", "text named .jpg", "ImageReadError naming the file", fails(_bytes("t.jpg", b"hello"), "cannot decode")),
    Case("images", "JPEG cut in half", "decoded, the lost rows grey, with a warning naming it (as ultralytics restores them)", decodes_truncated),
    Case("images", "PNG header, garbage body", "ImageReadError naming the file", fails(_bytes("g.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64), "cannot decode")),
    Case("images", "missing file", "ImageReadError naming file and cause", fails(lambda p: p / "nope.jpg", "No such file")),
    Case("images", "a folder named .jpg", "ImageReadError naming file and cause", fails(_folder, "Is a directory")),
    Case("images", "size differs from the COCO entry", "ImageReadError naming both sizes and the id", size_mismatch),
    Case("images", "unreadable with skip_bad_images", "black, flagged skipped, counted", skipped_in_evaluation),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_image(case: Case, tmp_path: Path) -> None:
    case.check(tmp_path)
