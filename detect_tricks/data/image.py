"""Image decoding by content, always to 3-channel RGB uint8.

Real data names PNGs `.jpg`, holds greyscale, RGBA and palette images, and has the odd
truncated file; OpenCV decodes from the bytes (not the name), applies the EXIF
orientation (as detectron2 does) and returns 3 channels for every colour type.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detect_tricks.errors import ImageReadError


def read_rgb(path: str | Path) -> np.ndarray:
    """The image at `path` as an (H, W, 3) uint8 RGB array."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(f"cannot read image {path}: {err.strerror}") from err
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image {path}: not an image, or damaged")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
