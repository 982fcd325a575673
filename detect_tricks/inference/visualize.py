"""Pictures of detections: boxes with class names and scores drawn on images, grids."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Distinct colours (RGB) cycled over classes.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
]
GROUND_TRUTH = (255, 255, 255)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    names: list[str],
    ground_truth: np.ndarray | None = None,
) -> np.ndarray:
    """A copy of an RGB image with predicted boxes (coloured by class, "name score") and,
    when given, ground-truth boxes (thin white)."""
    out = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(out.shape[:2]) / 300))
    if ground_truth is not None:
        for box in np.asarray(ground_truth).reshape(-1, 4).round().astype(int):
            cv2.rectangle(out, tuple(box[:2]), tuple(box[2:]), GROUND_TRUTH, 1, cv2.LINE_AA)
    scale = max(0.35, max(out.shape[:2]) / 900)
    for box, label, score in zip(np.asarray(boxes).reshape(-1, 4), labels, scores, strict=True):
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        colour = PALETTE[int(label) % len(PALETTE)]
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
        text = f"{names[int(label)]} {float(score):.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y0 - th - base, 0)
        cv2.rectangle(out, (x0, top), (x0 + tw, top + th + base), colour, -1)
        cv2.putText(
            out, text, (x0, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return out


def image_grid(images: list[np.ndarray], columns: int = 4, cell: int = 256) -> np.ndarray:
    """Images letterboxed into `cell` x `cell` tiles, `columns` per row, on black."""
    rows = -(-len(images) // columns)
    grid = np.zeros((rows * cell, min(columns, len(images)) * cell, 3), np.uint8)
    for i, image in enumerate(images):
        scale = cell / max(image.shape[:2])
        h, w = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
        tile = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        grid[r * cell : r * cell + h, c * cell : c * cell + w] = tile
    return grid


def save_rgb(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB image (PNG or JPEG by the file's suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # encode in memory, write with Python: OpenCV's imwrite crashed (a segfault) on file
    # names that are not UTF-8
    ok, encoded = cv2.imencode(
        path.suffix.lower() or ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    )
    if not ok:
        raise OSError(f"could not encode image {path}: no format for its extension")
    path.write_bytes(encoded.tobytes())
    return path
