"""Image files: which files are images, and decoding by content to 3-channel RGB uint8.

Real data names PNGs `.jpg`, holds greyscale, RGBA and palette images, and has the odd
truncated file; OpenCV decodes from the bytes (not the name), applies the EXIF
orientation (as detectron2 does) and returns 3 channels for every colour type. What
OpenCV refuses, Pillow tries next: GIFs, and JPEGs cut short (a viewer shows them; their
missing rows are grey), which are read with a warning, as ultralytics restores them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from detect_tricks.core.errors import ImageReadError

IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".jfif",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".gif",
}
MAX_PIXELS = 20_000 * 20_000  # larger images are refused before their pixels are decoded
_PIL_TRUNCATED = threading.Lock()  # Pillow's truncated-image switch is process-wide
logger = logging.getLogger(__name__)


def is_image_file(path: Path) -> bool:
    """A regular file (not a folder, FIFO or link to nothing) with an image extension that
    is not a macOS AppleDouble companion (`._photo.jpg`)."""
    return (
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not path.name.startswith("._")
        and path.is_file()
    )


def list_image_files(folder: Path) -> tuple[list[Path], Counter[str]]:
    """The image files directly in `folder`, sorted, and what was passed over, counted by
    kind (`.txt`, `._* (macOS metadata)`, `not a regular file`), for the user to see."""
    images, passed_over = [], Counter()
    for path in sorted(folder.iterdir()):
        if is_image_file(path):
            images.append(path)
        elif path.is_dir():
            continue
        elif path.name.startswith("._"):
            passed_over["._* (macOS metadata)"] += 1
        elif not path.is_file():
            passed_over["not a regular file"] += 1
        else:
            passed_over[path.suffix.lower() or "(no extension)"] += 1
    return images, passed_over


REDUCED_DECODES = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def read_rgb(path: str | Path, reduce: int = 1) -> np.ndarray:
    """The image at `path` as an (H, W, 3) uint8 RGB array; `reduce` 2, 4 or 8 decodes a
    JPEG at that fraction of each side (libjpeg's scaled decoding, a fraction of the
    work; the size rounds up), other formats whole."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(f"cannot read image {path}: {err.strerror}") from err
    if not data.size:
        raise ImageReadError(f"cannot decode image {path}: the file is empty")
    flags = (
        dict(REDUCED_DECODES).get(reduce, cv2.IMREAD_COLOR) if _is_jpeg(data) else cv2.IMREAD_COLOR
    )
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error as err:  # OpenCV refuses images over its pixel limit this way
        raise ImageReadError(f"cannot decode image {path}: too large or damaged") from err
    if image is None:
        return _read_with_pillow(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def reduction_for(width: int, height: int, max_side: int) -> int:
    """The largest JPEG decoding reduction (1, 2, 4 or 8) that still leaves at least
    `max_side` pixels on the longer side."""
    for factor, _ in REDUCED_DECODES:
        if max(width, height) >= factor * max_side:
            return factor
    return 1


def _is_jpeg(data: np.ndarray) -> bool:
    return data.size > 2 and data[0] == 0xFF and data[1] == 0xD8


def _read_with_pillow(path: str | Path) -> np.ndarray:
    """What OpenCV could not decode: a GIF's first frame, or a truncated image (warned)."""
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    failure = ImageReadError(f"cannot decode image {path}: not an image, or damaged")
    try:
        with Image.open(path) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise ImageReadError(
                    f"cannot decode image {path}: {opened.width}x{opened.height} pixels is "
                    f"more than the {MAX_PIXELS:,} this reader accepts"
                )
            try:
                opened.load()
                truncated = False
            except OSError:
                with _PIL_TRUNCATED:
                    ImageFile.LOAD_TRUNCATED_IMAGES = True
                    try:
                        with Image.open(path) as again:
                            again.load()
                            opened = again.copy()
                    finally:
                        ImageFile.LOAD_TRUNCATED_IMAGES = False
                truncated = True
            image = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise failure from None
    if truncated:
        logger.warning("%s is truncated: decoded what it holds (missing rows are grey)", path)
    return image
