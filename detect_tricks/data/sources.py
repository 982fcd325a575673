"""The annotation formats of detection data, by the name `data.format` gives: one table,
as `models/__init__.py` keeps its builders. A format is a function from the data section
to the training and validation sources; a format not in the table is a ConfigError (the
config's own check names the choices first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from detect_tricks.core.config import DetDataConfig
from detect_tricks.core.errors import ConfigError
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.records import DetectionSource
from detect_tricks.data.voc import read_voc

logger = logging.getLogger(__name__)


def read_coco(cfg: DetDataConfig) -> tuple[DetectionSource, DetectionSource]:
    """COCO JSON files and image folders; the validation file's categories should be
    the training file's (a warning when they differ: labels follow the training file)."""
    train = CocoDetection(cfg.train_ann, cfg.train_images, cfg.skip_bad_images)
    val = CocoDetection(cfg.val_ann, cfg.val_images, cfg.skip_bad_images)
    if val.class_names != train.class_names:
        logger.warning(
            "%s and %s list different categories; labels follow the training file",
            cfg.train_ann,
            cfg.val_ann,
        )
    return train, val


def read_voc_splits(cfg: DetDataConfig) -> tuple[DetectionSource, DetectionSource]:
    """Pascal VOC XML splits; the validation split takes the training split's classes."""
    options = {"use_difficult": cfg.voc_use_difficult, "skip_bad_images": cfg.skip_bad_images}
    train = read_voc(cfg.train_images, cfg.train_ann, **options)
    val = read_voc(cfg.val_images, cfg.val_ann, classes=train.class_names, **options)
    return train, val


SOURCES: dict[str, Callable[[DetDataConfig], tuple[DetectionSource, DetectionSource]]] = {
    "coco": read_coco,
    "voc": read_voc_splits,
}


def read_sources(cfg: DetDataConfig) -> tuple[DetectionSource, DetectionSource]:
    """The training and validation sources of `data.format`."""
    if cfg.format not in SOURCES:
        raise ConfigError(f"'data.format' must be one of {', '.join(SOURCES)}, got {cfg.format!r}")
    return SOURCES[cfg.format](cfg)
