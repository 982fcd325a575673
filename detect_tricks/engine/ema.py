"""Exponential moving average of model weights, evaluated in place of the raw weights.

The decay ramps up as `decay * (1 - exp(-updates / 2000))` (the YOLOv5/YOLOX form), so
the average follows the fast-changing early weights instead of the random init.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from detect_tricks.utils.checkpoint import EMA_WEIGHTS_KEY

RAMP_UPDATES = 2000.0


class ModelEma:
    """A frozen copy of a model whose floating-point state tracks the model's average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    def current_decay(self) -> float:
        """The decay used by the next update."""
        return self.decay * (1 - math.exp(-(self.updates + 1) / RAMP_UPDATES))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """`ema = d * ema + (1 - d) * model` on floats; integer buffers are copied."""
        d = self.current_decay()
        self.updates += 1
        averaged, copied = [], []
        model_state = model.state_dict()
        for name, ema_value in self.module.state_dict().items():
            value = model_state[name].detach()
            if ema_value.is_floating_point():
                averaged.append((ema_value, value))
            else:
                copied.append((ema_value, value))
        if averaged:
            ema_values, values = zip(*averaged, strict=True)
            torch._foreach_lerp_(list(ema_values), list(values), 1 - d)
        for ema_value, value in copied:
            ema_value.copy_(value)

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged weights, the ones evaluated and saved as the run's result."""
        return self.module.state_dict()

    def state_dict(self) -> dict[str, object]:
        return {EMA_WEIGHTS_KEY: self.weights(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.module.load_state_dict(state[EMA_WEIGHTS_KEY])
        self.updates = int(state["updates"])
