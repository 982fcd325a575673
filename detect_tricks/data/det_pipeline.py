"""The detection training sample as an ordered list of operations, built from the config
in one place (`build_det_train_pipeline`), as ultralytics' `v8_transforms` and YOLOX's
`MosaicDetection` compose theirs (docs/design.md §3).

A sample starts as a decoded photo and its boxes; each operation maps
`(sample, context) -> sample`, where the context carries the sample's generator (seeded
by the sampler's `SampleKey`, so resume stays bit-exact), its epoch, the batch's input
size and a way to read random partner photos. The list, in order:

1. mosaic (`tricks.mosaic`), until the last `tricks.mosaic_off_epochs` epochs: four photos
   become one input-size image (`data/mosaic.py`), its geometry done;
2. mixup (`tricks.mixup`, Bag of Freebies §3.1), until the last `tricks.mixup_off_epochs`
   epochs: a partner photo blended in, boxes weighted (after mosaic, the partner is first
   resized to the input size, as YOLOX mixes a mosaic);
3. the GluonCV transform: colour jitter, random expand, SSD crop, resize, flip; on a
   mosaic, whose geometry is done, the colour jitter and the flip only.

With mosaic off, the operations draw exactly what `limit_size`, mixup and the GluonCV
transform drew when they were called in that order by the dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from detect_tricks.core.config import DetConfig
from detect_tricks.data.det_transforms import DetectionTrainTransform, Target
from detect_tricks.data.mixup import blend_detection_samples, draw_mixup_lambda
from detect_tricks.data.mosaic import draw_geometry, mosaic, resize_long_side

Photo = tuple[np.ndarray, Target]


@dataclass(frozen=True)
class Sample:
    """A training sample between operations: RGB uint8 pixels and their boxes."""

    image: np.ndarray
    target: Target
    placed: bool = False  # the geometry is done (a mosaic at the input size)


@dataclass(frozen=True)
class SampleContext:
    """What an operation may draw on besides the sample."""

    rng: np.random.Generator
    epoch: int
    size: int  # the batch's input size
    read_partner: Callable[[np.random.Generator], Photo]  # a random photo of the set


class SampleOperation(Protocol):
    def __call__(self, sample: Sample, context: SampleContext) -> Sample: ...


@dataclass(frozen=True)
class Mosaic:
    """Four photos as one (`data/mosaic.py`) with probability `probability`, until
    `until_epoch`."""

    probability: float
    scale_range: tuple[float, float]
    until_epoch: int

    def __call__(self, sample: Sample, context: SampleContext) -> Sample:
        rng = context.rng
        if context.epoch >= self.until_epoch or rng.uniform() >= self.probability:
            return sample
        photos = [(sample.image, sample.target)] + [context.read_partner(rng) for _ in range(3)]
        geometry = draw_geometry(context.size, rng, self.scale_range)
        image, target = mosaic(photos, context.size, geometry)
        return Sample(image, target, placed=True)


@dataclass(frozen=True)
class Mixup:
    """Bag of Freebies §3.1: blend a partner photo in with `lam ~ Beta(alpha, alpha)`
    (`data/mixup.py`), until `until_epoch`."""

    alpha: float
    until_epoch: int

    def __call__(self, sample: Sample, context: SampleContext) -> Sample:
        if context.epoch >= self.until_epoch:
            return sample
        lam = draw_mixup_lambda(self.alpha, context.rng)
        if lam >= 1.0:
            return sample
        partner = context.read_partner(context.rng)
        if sample.placed:  # keep the mosaic's size: the partner fits inside it
            partner = resize_long_side(*partner, context.size)
        image, target = blend_detection_samples((sample.image, sample.target), partner, lam)
        return replace(sample, image=image, target=target)


@dataclass(frozen=True)
class GluonCVTransform:
    """GluonCV's YOLOv3 training transform (`DetectionTrainTransform`) to the input size;
    on a placed sample, its colour jitter and flip only."""

    transform: DetectionTrainTransform

    def __call__(self, sample: Sample, context: SampleContext) -> Sample:
        apply = self.transform.jitter_and_flip if sample.placed else self.transform.apply
        image, target = apply(sample.image, sample.target, context.size, context.rng)
        return Sample(image, target, placed=True)


def build_det_train_pipeline(cfg: DetConfig, max_side: int) -> list[SampleOperation]:
    """The operations of a training sample, in order, from the config's `data` and
    `tricks` sections (the module docstring); `max_side` bounds the canvases of random
    expand (`DetectionTrainTransform`)."""
    tricks, epochs = cfg.tricks, cfg.train.epochs
    operations: list[SampleOperation] = []
    if tricks.mosaic:
        scale_range = (tricks.mosaic_scale[0], tricks.mosaic_scale[1])
        operations.append(
            Mosaic(tricks.mosaic_prob, scale_range, epochs - tricks.mosaic_off_epochs)
        )
    if tricks.mixup:
        operations.append(Mixup(tricks.mixup_alpha, epochs - tricks.mixup_off_epochs))
    transform = DetectionTrainTransform(cfg.data.expand_ratio, max_side, cfg.data.hue)
    operations.append(GluonCVTransform(transform))
    return operations
