"""Where and how tensors run: one object for the device, the autocast dtype and the
images' memory format, decided once (`engine/setup.py: build_runtime`) and handed to
everything that runs the model: the training step, evaluation, precise BN, the
distillation teacher, `detect_batch`."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Runtime:
    """The device, the autocast dtype (None: full fp32) and whether images go in
    channels_last (faster convolutions on CPUs and recent GPUs)."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> AbstractContextManager:
        """The autocast context of `amp_dtype`; a no-op in fp32."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of images on the device, in the memory format (a batch of another
        rank, e.g. of tokens, only moved)."""
        if images.ndim != 4:
            return images.to(self.device, non_blocking=True)
        return images.to(self.device, non_blocking=True, memory_format=self.memory_format)
