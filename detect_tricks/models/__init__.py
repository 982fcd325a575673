"""Model builders, chosen by name from one explicit dict (no registry)."""

from __future__ import annotations

from collections.abc import Callable

from detect_tricks.models.resnet import (
    ResNet,
    resnet18,
    resnet18_b,
    resnet18_c,
    resnet18_d,
    resnet34,
    resnet34_b,
    resnet34_c,
    resnet34_d,
    resnet50,
    resnet50_b,
    resnet50_c,
    resnet50_d,
    resnet101,
    resnet101_b,
    resnet101_c,
    resnet101_d,
    resnet152,
    resnet152_b,
    resnet152_c,
    resnet152_d,
)

CLASSIFIERS: dict[str, Callable[..., ResNet]] = {
    "resnet18": resnet18,
    "resnet18_b": resnet18_b,
    "resnet18_c": resnet18_c,
    "resnet18_d": resnet18_d,
    "resnet34": resnet34,
    "resnet34_b": resnet34_b,
    "resnet34_c": resnet34_c,
    "resnet34_d": resnet34_d,
    "resnet50": resnet50,
    "resnet50_b": resnet50_b,
    "resnet50_c": resnet50_c,
    "resnet50_d": resnet50_d,
    "resnet101": resnet101,
    "resnet101_b": resnet101_b,
    "resnet101_c": resnet101_c,
    "resnet101_d": resnet101_d,
    "resnet152": resnet152,
    "resnet152_b": resnet152_b,
    "resnet152_c": resnet152_c,
    "resnet152_d": resnet152_d,
}


def classifier_builder(arch: str) -> Callable[..., ResNet]:
    """The builder of `arch`, or an error listing the known names."""
    if arch not in CLASSIFIERS:
        raise ValueError(f"unknown classifier '{arch}'; known: {', '.join(CLASSIFIERS)}")
    return CLASSIFIERS[arch]
