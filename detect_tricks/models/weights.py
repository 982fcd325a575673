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

from detect_tricks.core.errors import WeightsError
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


NAMED_SOURCES = ("timm/", "torchvision/")


def resolve_weights(spec: str, key: str) -> Path:
    """The weight file that `spec` names: a path, or `timm/<model>.<tag>` (e.g.
    `timm/resnet50d.ra2_in1k`) or `torchvision/<model>` (its default ImageNet weights),
    taken from that library's download cache, downloaded there when the network allows;
    offline, one error naming the file to fetch and where it goes. `key` names the config
    key in messages."""
    if not spec.startswith(NAMED_SOURCES):
        path = Path(spec)
        if not path.is_file():
            raise WeightsError(f"'{key}': no weight file at {path}{_how_to_make(path, key)}")
        return path
    library, name = spec.split("/", 1)
    try:
        return _torchvision_file(name) if library == "torchvision" else _timm_file(name)
    except ImportError as err:
        raise WeightsError(f"'{key}': {spec} needs {library} installed ({err})") from None


def _how_to_make(path: Path, key: str) -> str:
    """For a run's checkpoint of a committed config: the command that makes it."""
    parts = path.parts
    if len(parts) >= 4 and parts[0] == "runs" and parts[2] == "checkpoints":
        config = Path("configs") / "cls" / f"{parts[1]}.yaml"
        if config.is_file():
            return (
                f"; it is the classifier that `python tools/train_cls.py --config {config}` "
                f"trains (its config header gives the time), or start from scratch with "
                f"--set {key}="
            )
    return f"; or start from scratch with --set {key}="


def _torchvision_file(name: str) -> Path:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(weights.url, str(target), progress=False)
        except OSError as err:
            raise WeightsError(
                f"torchvision/{name}: cannot download {weights.url} ({err}); fetch it and "
                f"put it at {target}"
            ) from None
    return target


def _timm_file(name: str) -> Path:
    import timm
    from huggingface_hub import hf_hub_download

    config = timm.models.get_pretrained_cfg(name)
    if config is None or not config.hf_hub_id:
        raise WeightsError(f"timm/{name}: timm knows no pretrained weights of that name")
    try:
        return Path(hf_hub_download(config.hf_hub_id, "model.safetensors"))
    except Exception as err:  # offline, no cache entry: huggingface_hub's errors vary by version
        url = f"https://huggingface.co/{config.hf_hub_id}/resolve/main/model.safetensors"
        raise WeightsError(
            f"timm/{name}: not in the Hugging Face cache and cannot be downloaded "
            f"({type(err).__name__}); fetch {url} and give its path as the weights"
        ) from None
