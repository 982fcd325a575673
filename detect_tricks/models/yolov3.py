"""YOLOv3 neck and head over any backbone with three taps at strides 8, 16 and 32.

As GluonCV's `YOLOV3` (the Bag of Freebies model, docs/design.md §3): from the deepest tap
up, a detection block of five alternating 1x1/3x3 convs (head channels 512/256/128 for
ResNet-50, scaled by the width multiplier), a 3x3 "tip" conv and a 1x1 output conv per
level; a 1x1 transition conv, 2x nearest upsampling and a concatenation with the next
tap. Every conv but the outputs is Conv-BN-LeakyReLU(0.1).

The model returns raw logits per level, `(B, 3, H, W, 5 + C)`: `tx, ty, tw, th,
objectness, classes`. Target assignment, loss and decoding live in `assign.py`,
`losses.py` and `postprocess.py`.

One deviation from GluonCV, for stable starts from random heads: the objectness bias
starts at `log(0.01 / 0.99)` (the prior of Lin et al. 2017, also used by YOLOv5), so
the first steps do not see ~10,000 negatives per image at probability 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from detect_tricks.config import COCO_ANCHORS
from detect_tricks.models.resnet import ResNet

STRIDES = (8, 16, 32)
OBJECTNESS_PRIOR = 0.01


class ConvBNLeaky(nn.Sequential):
    """Conv (no bias) + BatchNorm + LeakyReLU(0.1), "same" padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.1, inplace=True),
        )


class DetectionBlock(nn.Module):
    """Five alternating 1x1/3x3 convs (`route`, fed to the next level) and a 3x3 `tip`."""

    def __init__(self, in_ch: int, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNLeaky(in_ch, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
        )
        self.tip = ConvBNLeaky(channels, channels * 2, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        route = self.body(x)
        return route, self.tip(route)


class YOLOv3(nn.Module):
    """YOLOv3 over a backbone whose `forward_features` returns strides 8, 16, 32.

    Args:
        backbone: e.g. a `ResNet` with `num_classes=0`; its `out_channels` are read.
        num_classes: C.
        head_channels: detection-block channels for strides 32, 16, 8.
        anchors: 3 levels x 3 anchors x (w, h) in pixels, for strides 8, 16, 32.
    """

    def __init__(
        self,
        backbone: ResNet,
        num_classes: int,
        head_channels: tuple[int, int, int] = (512, 256, 128),
        anchors: list[list[list[float]]] = COCO_ANCHORS,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))
        self.strides = STRIDES
        outputs = 3 * (5 + num_classes)
        taps = list(reversed(backbone.out_channels))  # strides 32, 16, 8
        blocks, heads, transitions = [], [], []
        in_ch = taps[0]
        for level, channels in enumerate(head_channels):
            blocks.append(DetectionBlock(in_ch, channels))
            heads.append(nn.Conv2d(channels * 2, outputs, 1))
            if level < 2:
                transitions.append(ConvBNLeaky(channels, head_channels[level + 1], 1))
                in_ch = head_channels[level + 1] + taps[level + 1]
        self.blocks = nn.ModuleList(blocks)
        self.heads = nn.ModuleList(heads)
        self.transitions = nn.ModuleList(transitions)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self._init_heads()

    def _init_heads(self) -> None:
        prior = math.log(OBJECTNESS_PRIOR / (1 - OBJECTNESS_PRIOR))
        for head in self.heads:
            nn.init.normal_(head.weight, std=0.01)
            bias = head.bias.detach().view(3, 5 + self.num_classes)
            bias.zero_()
            bias[:, 4] = prior

    def forward(self, images: Tensor) -> list[Tensor]:
        """Raw predictions per level, strides 8, 16, 32: `(B, 3, H, W, 5 + C)` each."""
        taps = self.backbone.forward_features(images)[::-1]  # strides 32, 16, 8
        outputs = []
        x = taps[0]
        for level in range(3):
            route, tip = self.blocks[level](x)
            out = self.heads[level](tip)
            b, _, h, w = out.shape
            outputs.append(out.view(b, 3, 5 + self.num_classes, h, w).permute(0, 1, 3, 4, 2))
            if level < 2:
                x = torch.cat([self.upsample(self.transitions[level](route)), taps[level + 1]], 1)
        return outputs[::-1]
