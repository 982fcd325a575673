"""Images of every kind: decoded by content to RGB, or an error naming the file."""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from detect_tricks.core.errors import ImageReadError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.detection import DetectionEvalSet
from detect_tricks.data.image import read_rgb
from detect_tricks.data.sampling import SampleKey
from detect_tricks.engine.cli import user_message
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


def _huge_png_header(tmp_path: Path) -> Path:
    """A valid PNG header claiming 100000 x 100000 pixels, with a tiny body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def decodes_gif(tmp_path: Path) -> None:
    Image.fromarray(PIXELS).save(tmp_path / "a.gif")
    assert read_rgb(tmp_path / "a.gif").shape == (40, 60, 3)


def reduced_jpeg(tmp_path: Path) -> None:
    big = np.kron(PIXELS, np.ones((9, 9, 1), np.uint8))  # 360 x 540
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    assert read_rgb(tmp_path / "big.jpg", reduce=4).shape == (90, 135, 3)
    assert read_rgb(tmp_path / "big.jpg", reduce=8).shape == (45, 68, 3)  # rounds up
    Image.fromarray(big).save(tmp_path / "big.png")
    assert read_rgb(tmp_path / "big.png", reduce=4).shape == (360, 540, 3)  # whole: not a JPEG


class _Unreadable(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        raise ImageReadError(f"cannot decode image photo_{index}.jpg: not an image, or damaged")


def worker_error_is_one_line(tmp_path: Path) -> None:
    """An error in a DataLoader worker reaches the main process carrying the worker's
    traceback; the tools print its own message alone."""
    loader = torch.utils.data.DataLoader(_Unreadable(), batch_size=2, num_workers=2)
    with pytest.raises(ImageReadError) as caught:
        next(iter(loader))
    assert "Original Traceback" in str(caught.value)  # what torch hands back
    assert user_message(caught.value) == "cannot decode image photo_0.jpg: not an image, or damaged"


def classification_folder_with_a_bad_file(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(4):
                Image.fromarray(PIXELS).save(folder / f"{i}.png")
    (tmp_path / "val" / "dog" / "3.png").write_bytes(b"broken")
    config = tmp_path / "cls.yaml"
    config.write_text(
        f"model: {{arch: resnet18_d, width: 0.125, num_classes: 2}}\n"
        f"data: {{root: {tmp_path}, train_size: 32, eval_size: 32}}\n"
        "train: {epochs: 1, batch_size: 4}\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "tools/train_cls.py",
            "--config",
            str(config),
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "dog/3.png" in lines[0] and "before training" in lines[0], lines


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
    Case("images", "GIF", "its first frame, RGB (was: passed over without a word)", decodes_gif),
    Case("images", ".jfif (a JPEG)", "decoded", decodes("jpeg", "a.jfif", (40, 60, 3), False)),
    Case("images", "PNG header of 100000 x 100000 px", "ImageReadError naming it (was: a cv2 assertion --skip-bad-images did not skip)", fails(_huge_png_header, "too large or damaged")),
    Case("images", "a JPEG read at a quarter of its size", "the size rounded up; other formats whole", reduced_jpeg),
    Case("images", "an unreadable image in a loader worker", "its own message on one line (was: 17-20 lines of worker traceback)", worker_error_is_one_line),
    Case("images", "train_cls over a folder with a broken file", "one error line naming it, before training", classification_folder_with_a_bad_file),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_image(case: Case, tmp_path: Path) -> None:
    case.check(tmp_path)
