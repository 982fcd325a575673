"""YOLOv3 neck and head over any backbone with three taps at strides 8, 16 and 32.

As GluonCV's `YOLOV3` (the Bag of Freebies model, docs/design.md §3): from the deepest tap
up, a detection block of five alternating 1x1/3x3 convs (head channels 512/256/128 for
ResNet-50, scaled by the width multiplier), a 3x3 "tip" conv and a 1x1 output conv per
level; a 1x1 transition conv, 2x nearest upsampling and a concatenation with the next
tap. Every conv but the outputs is Conv-BN-LeakyReLU(0.1).

The model returns raw logits per level, `(B, 3, H, W, 5 + C)`: `tx, ty, tw, th,
objectness, classes`. Target assignment, loss and decoding live in `yolo/assign.py`,
`yolo/loss.py` and `yolo/postprocess.py`.

One deviation from GluonCV, for stable starts from random heads: the objectness bias
starts at `log(0.01 / 0.99)` (the prior of Lin et al. 2017, also used by YOLOv5), so
the first steps do not see ~10,000 negatives per image at probability 0.5.

PP-YOLO's head changes (Long et al. 2020; PaddleDetection `necks/yolo_fpn.py`,
`heads/yolo_head.py`), each one switch of `HeadOptions`, all off by default (the model is
then exactly GluonCV's, parameter for parameter):

- `spp`: spatial pyramid pooling on the deepest level, after the block's second 1x1 conv:
  `[x, maxpool5(x), maxpool9(x), maxpool13(x)]` (stride 1), then a 1x1 conv back to its
  channels (YOLOv3-SPP; PP-YOLO);
- `dropblock`: DropBlock (Ghiasi et al. 2018; torchvision `drop_block2d`), block 3, drop
  rate 0.1 (PP-YOLO's keep_prob 0.9), after the first 3x3 conv of the two upper levels'
  blocks and after the second 3x3 conv (behind SPP) of the deepest; training only;
- `coord_conv`: CoordConv (Liu et al. 2018) on the first conv of each detection block and
  on each level's tip conv: two channels of x and y in [-1, 1] joined to the input
  (PaddleDetection's code makes them run from -1 to -0.5, an operator-precedence slip;
  we take the paper's range);
- `iou_aware`: one more output per anchor, after the class logits, predicting the IoU of
  its box with its ground truth; the score becomes `obj^(1 - a) * iou^a * cls`
  (`yolo/postprocess.py`, a = `iou_aware_factor`, PP-YOLO's 0.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import drop_block2d

from detect_tricks.core.config import COCO_ANCHORS
from detect_tricks.models.resnet import ResNet

STRIDES = (8, 16, 32)
OBJECTNESS_PRIOR = 0.01
SPP_POOLS = (5, 9, 13)
DROPBLOCK_SIZE, DROPBLOCK_RATE = 3, 0.1  # PP-YOLO: block_size 3, keep_prob 0.9


@dataclass(frozen=True)
class HeadOptions:
    """PP-YOLO's head switches (module docstring); all off is GluonCV's head."""

    spp: bool = False
    dropblock: bool = False
    coord_conv: bool = False
    iou_aware: bool = False


class ConvBNLeaky(nn.Sequential):
    """Conv (no bias) + BatchNorm + LeakyReLU(0.1), "same" padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(0.1, inplace=True),
        )


class CoordConvBNLeaky(ConvBNLeaky):
    """`ConvBNLeaky` on the input joined with two coordinate channels, x and y, each
    running from -1 to 1 across the feature map (CoordConv, Liu et al. 2018)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int) -> None:
        super().__init__(in_ch + 2, out_ch, kernel)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        grid_x = xs.view(1, 1, 1, w).expand(b, 1, h, w)
        grid_y = ys.view(1, 1, h, 1).expand(b, 1, h, w)
        return super().forward(torch.cat([x, grid_x, grid_y], dim=1))


class SpatialPyramidPooling(nn.Module):
    """`[x, maxpool_k(x) for k in SPP_POOLS]` (stride 1, same size), then a 1x1 conv back
    to `channels` (YOLOv3-SPP, PP-YOLO)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in SPP_POOLS)
        self.conv = ConvBNLeaky(channels * (1 + len(SPP_POOLS)), channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([x, *(pool(x) for pool in self.pools)], dim=1))


class DropBlock(nn.Module):
    """DropBlock (Ghiasi et al. 2018) in training, the identity in evaluation: torchvision's
    `drop_block2d`, whose seed rate is `p / b^2 * H W / ((H - b + 1)(W - b + 1))`."""

    def __init__(self, rate: float = DROPBLOCK_RATE, block_size: int = DROPBLOCK_SIZE) -> None:
        super().__init__()
        self.rate, self.block_size = rate, block_size

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        # on maps smaller than a block (a 2 x 2 level of a 64 px input), the largest odd
        # block that fits: torchvision takes odd sizes only
        fits = min(self.block_size, x.shape[-2], x.shape[-1])
        return drop_block2d(x, self.rate, fits - (fits + 1) % 2, training=True)


class DetectionBlock(nn.Module):
    """Five alternating 1x1/3x3 convs (`route`, fed to the next level) and a 3x3 `tip`;
    `deepest` marks the stride-32 block, where SPP and a later DropBlock go."""

    def __init__(
        self, in_ch: int, channels: int, options: HeadOptions = HeadOptions(), deepest: bool = False
    ) -> None:
        super().__init__()
        first = CoordConvBNLeaky if options.coord_conv else ConvBNLeaky
        convs = [
            first(in_ch, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
            ConvBNLeaky(channels, channels * 2, 3),
            ConvBNLeaky(channels * 2, channels, 1),
        ]
        layers: list[nn.Module] = []
        for position, conv in enumerate(convs):
            layers.append(conv)
            if options.spp and deepest and position == 2:
                layers.append(SpatialPyramidPooling(channels))
            if options.dropblock and position == (3 if deepest else 1):
                layers.append(DropBlock())
        self.body = nn.Sequential(*layers)
        self.tip = (CoordConvBNLeaky if options.coord_conv else ConvBNLeaky)(
            channels, channels * 2, 3
        )

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
        options: PP-YOLO's head switches.
        grid_alpha: the grid sensitivity its outputs are decoded with
            (`assign.centre_offset`), kept with the model for inference.
        iou_aware_factor: `a` of the IoU-aware score (with `options.iou_aware`).
    """

    def __init__(
        self,
        backbone: ResNet,
        num_classes: int,
        head_channels: tuple[int, int, int] = (512, 256, 128),
        anchors: list[list[list[float]]] = COCO_ANCHORS,
        options: HeadOptions = HeadOptions(),
        grid_alpha: float = 1.0,
        iou_aware_factor: float = 0.4,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.register_buffer("anchors", torch.tensor(anchors, dtype=torch.float32))
        self.strides = STRIDES
        self.options = options
        self.grid_alpha = grid_alpha
        self.iou_aware_factor = iou_aware_factor if options.iou_aware else None
        self.per_anchor = 5 + num_classes + int(options.iou_aware)
        outputs = 3 * self.per_anchor
        taps = list(reversed(backbone.out_channels))  # strides 32, 16, 8
        blocks, heads, transitions = [], [], []
        in_ch = taps[0]
        for level, channels in enumerate(head_channels):
            blocks.append(DetectionBlock(in_ch, channels, options, deepest=level == 0))
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
            bias = head.bias.detach().view(3, self.per_anchor)
            bias.zero_()
            bias[:, 4] = prior

    def forward(self, images: Tensor) -> list[Tensor]:
        """Raw predictions per level, strides 8, 16, 32: `(B, 3, H, W, 5 + C)` each (one
        more, the IoU logit, with `iou_aware`)."""
        taps = self.backbone.forward_features(images)[::-1]  # strides 32, 16, 8
        outputs = []
        x = taps[0]
        for level in range(3):
            route, tip = self.blocks[level](x)
            out = self.heads[level](tip)
            b, _, h, w = out.shape
            outputs.append(out.view(b, 3, self.per_anchor, h, w).permute(0, 1, 3, 4, 2))
            if level < 2:
                x = torch.cat([self.upsample(self.transitions[level](route)), taps[level + 1]], 1)
        return outputs[::-1]
