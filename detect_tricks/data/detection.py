"""Detection datasets as the engine sees them: keyed training samples and evaluation images.

A source (`CocoDetection`, also what `read_voc` returns) reads annotations and images;
these wrappers add mixup, the transforms and the handling of unreadable images, and
take every random choice from the sampler's `SampleKey`: its seed, its epoch (mixup
stops for the last epochs) and its size (random shapes give a batch one size).
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from detect_tricks.data.coco import ImageRecord
from detect_tricks.data.det_transforms import (
    GLUONCV_EXPAND_RATIO,
    MIN_CROP_SCALE,
    DetectionEvalTransform,
    DetectionTrainTransform,
    Target,
    limit_size,
)
from detect_tricks.data.mixup import blend_detection_samples, draw_mixup_lambda
from detect_tricks.data.sampling import SampleKey
from detect_tricks.errors import DatasetError, ImageReadError

logger = logging.getLogger(__name__)


class DetectionSource(Protocol):
    """What the wrappers need of an annotation reader."""

    source: str
    records: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    skip_bad_images: bool

    def __len__(self) -> int: ...

    def subset(self, indices: list[int]) -> DetectionSource: ...

    def evaluation_ground_truth(self) -> dict: ...

    def load(self, index: int) -> tuple[np.ndarray, ImageRecord]: ...


class _SkipsUnreadable:
    """Reads images of a source; with `skip_bad_images` an unreadable one is logged once,
    counted, and (in training) replaced by the next readable record."""

    def __init__(self, source: DetectionSource) -> None:
        self.source = source
        self.bad = torch.zeros(len(source), dtype=torch.bool).share_memory_()

    @property
    def num_skipped(self) -> int:
        return int(self.bad.sum())

    def _mark_bad(self, index: int, err: ImageReadError) -> None:
        if not self.source.skip_bad_images:
            raise ImageReadError(f"{err} (data.skip_bad_images: true skips such images)") from None
        if not self.bad[index]:
            self.bad[index] = True
            logger.warning("skipping unreadable image: %s", err)

    def _read(self, index: int) -> tuple[np.ndarray, Target]:
        for offset in range(len(self.source)):
            position = (index + offset) % len(self.source)
            try:
                image, record = self.source.load(position)
            except ImageReadError as err:
                self._mark_bad(position, err)
                continue
            target = {
                "boxes": record.boxes.copy(),
                "labels": record.labels.copy(),
                "weights": np.ones(len(record.boxes), np.float32),
            }
            return image, target
        raise DatasetError(f"no image of {self.source.source} could be decoded")


class DetectionTrainSet(_SkipsUnreadable, Dataset):
    """Training samples: mixup with a random partner (until `mixup_until_epoch`), then the
    GluonCV training transform at the batch's size.

    Args:
        source: the annotation reader.
        size: the input size when the key carries none (no random shapes).
        mixup_alpha: Beta(alpha, alpha) of detection mixup, or None without mixup.
        mixup_until_epoch: the first epoch without mixup.
        largest_size: the largest input size of any batch; photos, and the canvases of
            random expand, are shrunk to `largest_size / 0.3` pixels per side, the most the
            transforms can use.
        expand_ratio: random expand's largest canvas side over the image's; 1 turns it off.
        hue: the hue jitter, `ssd` or `gluoncv` (`DetectionTrainTransform`).
    """

    def __init__(
        self,
        source: DetectionSource,
        size: int,
        mixup_alpha: float | None = None,
        mixup_until_epoch: int = 0,
        largest_size: int | None = None,
        expand_ratio: float = GLUONCV_EXPAND_RATIO,
        hue: str = "ssd",
    ) -> None:
        super().__init__(source)
        self.size = size
        self.max_side = math.ceil((largest_size or size) / MIN_CROP_SCALE)
        self.mixup_alpha = mixup_alpha
        self.mixup_until_epoch = mixup_until_epoch
        self.transform = DetectionTrainTransform(expand_ratio, self.max_side, hue)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng(key.seed)
        image, target = limit_size(*self._read(key.index), self.max_side)
        if self.mixup_alpha and key.epoch < self.mixup_until_epoch:
            lam = draw_mixup_lambda(self.mixup_alpha, rng)
            if lam < 1.0:
                partner = self._read(int(rng.integers(len(self.source))))
                partner = limit_size(*partner, self.max_side)
                image, target = blend_detection_samples((image, target), partner, lam)
        return self.transform(image, target, key.size or self.size, rng)


class DetectionEvalSet(_SkipsUnreadable, Dataset):
    """Evaluation images resized to `size`, with the image id and original size.

    An unreadable image (with `skip_bad_images`) comes back black and flagged `skipped`:
    it gets no detections, and counts as missed in the COCO metric.
    """

    def __init__(self, source: DetectionSource, size: int) -> None:
        super().__init__(source)
        self.transform = DetectionEvalTransform(size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, dict[str, object]]:
        record = self.source.records[key.index]
        meta = {"image_id": record.image_id, "orig_size": (record.height, record.width)}
        try:
            image, _ = self.source.load(key.index)
        except ImageReadError as err:
            self._mark_bad(key.index, err)
            size = self.transform.size
            return torch.zeros(3, size, size), {**meta, "skipped": True}
        return self.transform(image), {**meta, "skipped": False}


def collate_detection(samples: list[tuple[torch.Tensor, object]]) -> tuple[torch.Tensor, list]:
    """Stack the images (all of one size) and keep the targets as a list."""
    images, targets = zip(*samples, strict=True)
    return torch.stack(images), list(targets)
