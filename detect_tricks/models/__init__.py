"""Model builders, chosen by name from explicit dicts (no registry)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detect_tricks.core.config import COCO_ANCHORS, ClsModelConfig, DetModelConfig, DetTricksConfig
from detect_tricks.core.errors import ConfigError, WeightsError
from detect_tricks.models.resnet import DEPTHS, VARIANTS, ResNet, resnet, resnet_name
from detect_tricks.models.weights import load_weights, read_state_dict, resolve_weights
from detect_tricks.models.yolov3 import HeadOptions, YOLOv3

logger = logging.getLogger(__name__)

# Every ResNet by name: resnet{18,34,50,101,152}{,_b,_c,_d}.
CLASSIFIERS: dict[str, Callable[..., ResNet]] = {
    resnet_name(depth, variant): functools.partial(resnet, depth, variant)
    for depth in DEPTHS
    for variant in VARIANTS
}


def build_classifier(cfg: ClsModelConfig) -> ResNet:
    """The classifier of `model.arch`, initialised from `model.weights` when given.

    A weight file whose classifier has another number of classes initialises all but
    the classifier (fine-tuning).
    """
    if cfg.arch not in CLASSIFIERS:
        raise ConfigError(f"'model.arch' must be one of {', '.join(CLASSIFIERS)}, got {cfg.arch!r}")
    model = CLASSIFIERS[cfg.arch](
        num_classes=cfg.num_classes, width=cfg.width, zero_gamma=cfg.zero_gamma
    )
    if cfg.weights:
        state = read_state_dict(resolve_weights(cfg.weights, "model.weights"))
        head = state.get("fc.weight")
        skip_head = head is None or head.shape != model.fc.weight.shape
        load_weights(model, state, cfg.weights, skip_head=skip_head)
    return model


def yolov3(
    backbone_arch: str,
    num_classes: int,
    width: float = 1.0,
    anchors: list[list[list[float]]] = COCO_ANCHORS,
    **head: Any,
) -> YOLOv3:
    """YOLOv3 over the ResNet `backbone_arch` (e.g. "resnet50_d"), channels scaled by `width`;
    `head` passes PP-YOLO's options and the decoding to `YOLOv3`.

    Head channels are 512/256/128 (GluonCV's, for ResNet-50 and Darknet-53) times `width`.
    """
    backbone = CLASSIFIERS[backbone_arch](num_classes=0, width=width)
    channels = tuple(max(8, round(c * width)) for c in (512, 256, 128))
    return YOLOv3(backbone, num_classes, head_channels=channels, anchors=anchors, **head)


# Every YOLOv3 backbone by name: yolov3_resnet{18,34,50,101}{,_b,_c,_d}.
DETECTORS: dict[str, Callable[..., YOLOv3]] = {
    f"yolov3_{arch}": functools.partial(yolov3, arch)
    for arch in CLASSIFIERS
    if not arch.startswith("resnet152")
}


def build_detector(cfg: DetModelConfig, tricks: DetTricksConfig | None = None) -> YOLOv3:
    """The detector of `model.arch` with the head switches of `tricks` (SPP, DropBlock,
    CoordConv, IoU-aware, grid sensitivity), its backbone initialised from
    `model.backbone_weights` (a classification checkpoint of ours, or timm / torchvision
    ResNet weights)."""
    if cfg.arch not in DETECTORS:
        raise ConfigError(f"'model.arch' must be one of {', '.join(DETECTORS)}, got {cfg.arch!r}")
    tricks = tricks or DetTricksConfig()
    options = HeadOptions(tricks.spp, tricks.dropblock, tricks.coord_conv, tricks.iou_aware)
    model = DETECTORS[cfg.arch](
        cfg.num_classes,
        width=cfg.width,
        anchors=cfg.anchors,
        options=options,
        grid_alpha=tricks.grid_alpha,
        iou_aware_factor=tricks.iou_aware_factor,
    )
    if cfg.backbone_weights:
        path = resolve_weights(cfg.backbone_weights, "model.backbone_weights")
        state = read_state_dict(path)
        if any(k.startswith("backbone.") for k in state):
            raise WeightsError(
                f"'model.backbone_weights': {path} holds a whole detector, not a backbone; "
                "start from a trained detector with model.init_from instead"
            )
        load_weights(model.backbone, state, str(path), skip_head=True)
        logger.info("backbone initialised from %s", path)
    if cfg.init_from:
        init_from_detector(model, resolve_weights(cfg.init_from, "model.init_from"))
    return model


def init_from_detector(model: YOLOv3, path: Path) -> None:
    """Fine-tuning: every weight of the detector checkpoint at `path` whose name and shape
    fit `model`; the output convs of another number of classes (or head switches) stay
    freshly initialised, and the log says which."""
    state = read_state_dict(path)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    if not any(k.startswith("backbone.") for k in fitting):
        raise WeightsError(f"'model.init_from': {path} is not a detector of this architecture")
    model.load_state_dict(fitting, strict=False)
    fresh = sorted(own.keys() - fitting.keys())
    logger.info(
        "initialised from the detector %s: %d of %d tensors%s",
        path,
        len(fitting),
        len(own),
        f"; freshly initialised (other classes or head): {', '.join(fresh)}" if fresh else "",
    )
