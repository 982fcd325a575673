"""SGD (or AdamW) with the Bag of Tricks §3.1 "efficient training" switches.

- Linear LR scaling: `lr = base_lr * batch / reference_batch` (Goyal et al. 2017), with
  `batch` the global batch over all processes.
- No bias decay: weight decay only on conv and linear weights; every bias and every
  normalisation-layer parameter goes to a group with `weight_decay = 0`. Parameters are
  chosen by module type and shape, never by name (names change with wrappers such as
  DDP or torch.compile, and "bn" in a name matches too much or too little).
"""

from __future__ import annotations

import torch
from torch import nn

from detect_tricks.core.config import OptimConfig

NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """The peak learning rate for a global batch, linearly scaled when switched on."""
    if cfg.linear_scaling:
        return cfg.lr * global_batch / cfg.reference_batch
    return cfg.lr


def parameter_groups(
    model: nn.Module, weight_decay: float, no_bias_decay: bool
) -> list[dict[str, object]]:
    """Trainable parameters split into a decayed and (optionally) an undecayed group.

    Each trainable parameter appears in exactly one group, even when shared by modules.
    With `no_bias_decay`, parameters of normalisation layers and every parameter with
    fewer than 2 dimensions (biases) get `weight_decay = 0`.
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        is_norm = isinstance(module, NORM_LAYERS)
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if no_bias_decay and (is_norm or param.ndim <= 1):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig, global_batch: int) -> torch.optim.Optimizer:
    """SGD (Nesterov when asked) or AdamW over `parameter_groups`, at the scaled peak LR.

    AdamW is for short from-scratch runs (the demo), where SGD on YOLOv3's summed loss
    must keep its rate low to stay finite and then learns too slowly; the papers' recipes
    use SGD. Its first-moment decay is `momentum`, so one key means the same in both.
    """
    groups = parameter_groups(model, cfg.weight_decay, cfg.no_bias_decay)
    lr = scaled_lr(cfg, global_batch)
    # torch's fused kernels (a few launches for all parameters) are for CUDA tensors;
    # elsewhere torch picks its own path (None).
    fused = True if all(p.is_cuda for p in model.parameters()) else None
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, 0.999), fused=fused)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
