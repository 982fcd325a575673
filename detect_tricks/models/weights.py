"""Load weights from files on disk: our checkpoints, torchvision and timm state dicts.

Our ResNet uses torchvision's and timm's module names, so a torchvision `resnet50` /
`resnet18` state dict fits our ResNet-B of the same depth and a timm `resnet50d` /
`resnet18d` / `resnet34d` state dict fits our ResNet-D, key for key. Files are `.pth`,
`.pt` (read with `weights_only=True`) or `.safetensors`; nothing is downloaded. A state
dict that does not fit is an error listing the missing and unexpected keys and the
shape mismatches, never a silent partial load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from detect_tricks.errors import WeightsError
from detect_tricks.utils.checkpoint import (
    evaluated_weights,
    is_training_checkpoint,
    load_checkpoint,
)

HEAD_PREFIX = "fc."
SHOWN = 8  # keys listed per kind of mismatch


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file or of a detect_tricks checkpoint (its EMA when on).

    Accepts a bare state dict, or a dict holding it under `state_dict` or `model` (most
    training scripts); strips the `module.` prefix that DataParallel/DDP add.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        if not path.is_file():
            raise WeightsError(f"no weight file at {path}")
        state = load_file(path)
    else:
        state = load_checkpoint(path)
        if is_training_checkpoint(state):
            state = evaluated_weights(state)
        elif isinstance(state.get("model"), dict):
            state = state["model"]
        elif isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, skip_head: bool = False
) -> None:
    """Load `state` into `model`, all keys and shapes matching.

    Args:
        model: the model to fill.
        state: its state dict, e.g. from `read_state_dict`.
        source: where `state` came from, for error messages.
        skip_head: leave out the source's classifier (`fc.*`), e.g. for a detector's
            backbone or a classifier with another number of classes.
    """
    if skip_head:
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    own = model.state_dict()
    if skip_head:
        own = {k: v for k, v in own.items() if not k.startswith(HEAD_PREFIX)}
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(own.keys() & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = [
            _listing("missing keys", missing),
            _listing("unexpected keys", unexpected),
            _listing("shape mismatches", mismatched),
        ]
        raise WeightsError(
            f"the weights in {source} do not fit {type(model).__name__}: "
            + "; ".join(p for p in problems if p)
        )
    model.load_state_dict(state, strict=not skip_head)


def _listing(kind: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return f"{len(items)} {kind} ({', '.join(items[:SHOWN])}{more})"


def load_weights_file(model: nn.Module, path: str | Path, skip_head: bool = False) -> None:
    """`read_state_dict` + `load_weights`."""
    load_weights(model, read_state_dict(path), str(path), skip_head=skip_head)
