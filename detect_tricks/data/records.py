"""What a detection source is: its records, one per image, and the protocol every
annotation reader (`data/sources.py`'s table) follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class ImageRecord:
    """One image and its training boxes (xyxy pixels, contiguous labels)."""

    image_id: int
    path: str
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32
    labels: np.ndarray  # (n,) int64
    # What evaluation needs beyond the training boxes: each box's area as the file gives
    # it (COCO's is the mask's; the box's when absent), and the crowd regions (xyxy,
    # with their labels), which COCOeval ignores rather than counting as misses.
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    crowd_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    crowd_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


class DetectionSource(Protocol):
    """What the wrappers need of an annotation reader."""

    source: str
    records: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    skip_bad_images: bool

    def __len__(self) -> int: ...

    def subset(self, indices: list[int]) -> DetectionSource: ...

    def checked(self) -> DetectionSource: ...

    def evaluation_ground_truth(self) -> dict: ...

    def load(self, index: int, reduce: int = 1) -> tuple[np.ndarray, ImageRecord]: ...
