"""Detection datasets as the engine sees them: keyed training samples and evaluation images.

A source (`CocoDetection`, also what `read_voc` returns) reads annotations and images;
these wrappers add the training operations (`data/det_pipeline.py`) and the handling of
unreadable images, and take every random choice from the sampler's `SampleKey`: its
seed, its epoch (mosaic and mixup stop for the last epochs) and its size (random shapes
give a batch one size).
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from detect_tricks.core.errors import DatasetError, ImageReadError
from detect_tricks.data.det_pipeline import Sample, SampleContext, SampleOperation
from detect_tricks.data.det_transforms import (
    MIN_CROP_SCALE,
    DetectionEvalTransform,
    Target,
    limit_size,
    to_tensors,
)
from detect_tricks.data.image import reduction_for
from detect_tricks.data.records import DetectionSource
from detect_tricks.data.sampling import SampleKey

logger = logging.getLogger(__name__)


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

    def _read(self, index: int, max_side: int | None = None) -> tuple[np.ndarray, Target]:
        """The image of record `index` (or the next readable one) and its boxes; with
        `max_side`, a JPEG much larger is decoded at a reduced size (`read_rgb`)."""
        for offset in range(len(self.source)):
            position = (index + offset) % len(self.source)
            record = self.source.records[position]
            reduce = reduction_for(record.width, record.height, max_side) if max_side else 1
            try:
                image, record = self.source.load(position, reduce)
            except ImageReadError as err:
                self._mark_bad(position, err)
                continue
            boxes = record.boxes.copy()
            if image.shape[:2] != (record.height, record.width):
                h, w = image.shape[:2]
                boxes *= np.array([w / record.width, h / record.height] * 2, np.float32)
            target = {
                "boxes": boxes,
                "labels": record.labels.copy(),
                "weights": np.ones(len(record.boxes), np.float32),
            }
            return image, target
        raise DatasetError(f"no image of {self.source.source} could be decoded")


class DetectionTrainSet(_SkipsUnreadable, Dataset):
    """Training samples: a photo through the operations of `pipeline`
    (`data/det_pipeline.py`: mosaic, mixup, the GluonCV transform) at the batch's size.

    Args:
        source: the annotation reader.
        pipeline: the sample's operations, in order (`build_det_train_pipeline`).
        size: the input size when the key carries none (no random shapes).
        max_side: photos are shrunk to at most this many pixels per side when read
            (`largest input size / 0.3`, the most the SSD crop can use: `limit_size`).
        cache: keep every photo decoded and shrunk in memory (`data.cache: ram`).
    """

    def __init__(
        self,
        source: DetectionSource,
        pipeline: list[SampleOperation],
        size: int,
        max_side: int,
        cache: bool = False,
    ) -> None:
        super().__init__(source)
        self.pipeline = pipeline
        self.size = size
        self.max_side = max_side
        self.cache: dict[int, tuple[np.ndarray, Target]] | None = None
        if cache:
            self.cache = self._fill_cache()

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng(key.seed)
        image, target = self._read_limited(key.index)
        context = SampleContext(rng, key.epoch, key.size or self.size, self._read_partner)
        sample = Sample(image, target)
        for operation in self.pipeline:
            sample = operation(sample, context)
        return to_tensors(sample.image, sample.target)

    def _read_limited(self, index: int) -> tuple[np.ndarray, Target]:
        if self.cache is not None and index in self.cache:
            image, target = self.cache[index]
            return image, {key: value.copy() for key, value in target.items()}
        return limit_size(*self._read(index), self.max_side)

    def _fill_cache(self) -> dict[int, tuple[np.ndarray, Target]]:
        """`data.cache: ram`: every photo decoded once (a large JPEG at a reduced size) and
        shrunk to `max_side`, in threads; read-only, so that no operation can change a
        cached photo, and shared with the loader's worker processes (filled before they
        fork). An unreadable photo is left to `_read`'s handling."""

        def decode(index: int) -> tuple[np.ndarray, Target] | None:
            try:
                image, target = limit_size(*self._read(index, self.max_side), self.max_side)
            except ImageReadError:
                return None
            image.flags.writeable = False
            return image, target

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            decoded = list(pool.map(decode, range(len(self.source))))
        cache = {i: photo for i, photo in enumerate(decoded) if photo is not None}
        megabytes = sum(image.nbytes for image, _ in cache.values()) / 2**20
        logger.info(
            "data.cache ram: %d photos of %s decoded at up to %d px a side, %.0f MB, in %.1f s",
            len(cache),
            self.source.source,
            self.max_side,
            megabytes,
            time.perf_counter() - started,
        )
        return cache

    def _read_partner(self, rng: np.random.Generator) -> tuple[np.ndarray, Target]:
        return self._read_limited(int(rng.integers(len(self.source))))


def max_photo_side(largest_size: int) -> int:
    """The most pixels per side any training operation can use of a photo: the SSD crop
    keeps at least `MIN_CROP_SCALE` of a side, then resizes to at most `largest_size`."""
    return math.ceil(largest_size / MIN_CROP_SCALE)


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
