"""ResNet and the Bag of Tricks model tweaks (He et al. 2019, §4, Figure 2), as flags.

- original (He et al. 2016): the bottleneck's stride sits on its first 1x1 conv,
  which then reads only a quarter of the input pixels;
- ResNet-B: the stride moves to the 3x3 conv (`stride_in_1x1=False`), so no input is
  skipped (torchvision's `resnet50` is this variant);
- ResNet-C: the 7x7 stem becomes three 3x3 convs of 32, 32, 64 channels (`deep_stem`);
- ResNet-D: downsampling shortcuts average-pool 2x2 before a stride-1 1x1 conv
  (`avg_down`), instead of a strided 1x1 conv that drops 3/4 of the shortcut's input.

B, C and D stack (D has all three tweaks). Module names follow torchvision and timm
(`conv1`, `bn1`, `layer1.0.downsample.1`, ...), so their state dicts load directly
(`weights.py`). `width` scales every channel count for small CPU models.
"""

from __future__ import annotations

from torch import Tensor, nn


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); the stride is on the first."""

    expansion = 1

    def __init__(
        self, in_ch: int, width: int, stride: int, downsample: nn.Module | None, **_: bool
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero-gamma (Bag of Tricks §3.1): the block starts as the identity of its shortcut."""
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (ResNet-50/101/152).

    `stride_in_1x1` puts the stride on the first 1x1 conv as the original ResNet did;
    ResNet-B puts it on the 3x3 conv, which then sees every input pixel.
    """

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        width: int,
        stride: int,
        downsample: nn.Module | None,
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = _conv1x1(in_ch, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride_3x3)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def zero_init_last(self) -> None:
        """Zero-gamma (Bag of Tricks §3.1): the block starts as the identity of its shortcut."""
        nn.init.zeros_(self.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


def _downsample(in_ch: int, out_ch: int, stride: int, avg_down: bool) -> nn.Sequential:
    """The projection shortcut: strided 1x1 conv, or (ResNet-D) 2x2 avg-pool + 1x1 conv."""
    if not avg_down:
        return nn.Sequential(_conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    pool = (
        nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)
        if stride > 1
        else nn.Identity()
    )
    return nn.Sequential(pool, _conv1x1(in_ch, out_ch), nn.BatchNorm2d(out_ch))


def _stem(stem_width: int, out_ch: int, deep: bool) -> nn.Module:
    """7x7/2 conv (the original), or (ResNet-C) three 3x3 convs, the first of stride 2.

    The final BN of either stem is the model's `bn1`.
    """
    if not deep:
        return nn.Conv2d(3, out_ch, 7, stride=2, padding=3, bias=False)
    return nn.Sequential(
        _conv3x3(3, stem_width, stride=2),
        nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True),
        _conv3x3(stem_width, stem_width),
        nn.BatchNorm2d(stem_width),
        nn.ReLU(inplace=True),
        _conv3x3(stem_width, out_ch),
    )


class ResNet(nn.Module):
    """A ResNet whose variant is chosen by flags.

    Args:
        block: `BasicBlock` or `Bottleneck`.
        layers: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
        num_classes: classifier outputs; 0 for a backbone without the pooling and fc.
        stride_in_1x1: the original bottleneck (False for ResNet-B/C/D).
        deep_stem: ResNet-C's three-conv stem.
        avg_down: ResNet-D's average-pool shortcut.
        stem_width: channels of the deep stem's first two convs (32 in the paper).
        width: multiplier on every channel count (1.0 for the paper's models).
        zero_gamma: initialise the last BN of every block to 0 (Bag of Tricks §3.1).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        stride_in_1x1: bool = False,
        deep_stem: bool = False,
        avg_down: bool = False,
        stem_width: int = 32,
        width: float = 1.0,
        zero_gamma: bool = False,
    ) -> None:
        super().__init__()
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = _stem(max(1, round(stem_width * width)), widths[0], deep_stem)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = widths[0]
        stages = []
        for index, (stage_width, blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if index == 0 else 2
            out_ch = stage_width * block.expansion
            downsample = None
            if stride != 1 or in_ch != out_ch:
                downsample = _downsample(in_ch, out_ch, stride, avg_down)
            stage = [block(in_ch, stage_width, stride, downsample, stride_in_1x1=stride_in_1x1)]
            stage += [
                block(out_ch, stage_width, 1, None, stride_in_1x1=stride_in_1x1)
                for _ in range(blocks - 1)
            ]
            stages.append(nn.Sequential(*stage))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = [w * block.expansion for w in widths[1:]]  # strides 8, 16, 32
        self.num_features = in_ch
        self.avgpool = nn.AdaptiveAvgPool2d(1) if num_classes else nn.Identity()
        self.fc = nn.Linear(in_ch, num_classes) if num_classes else nn.Identity()
        self._init_weights(zero_gamma)

    def _init_weights(self, zero_gamma: bool) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_gamma:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    module.zero_init_last()

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The outputs of stages 2, 3 and 4 (strides 8, 16, 32), for a detector to tap."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]

    def forward(self, x: Tensor) -> Tensor:
        features = self.forward_features(x)[-1]
        return self.fc(self.avgpool(features).flatten(1))


DEPTHS: dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}

VARIANTS: dict[str, dict[str, bool]] = {
    "": {"stride_in_1x1": True},
    "b": {},
    "c": {"deep_stem": True},
    "d": {"deep_stem": True, "avg_down": True},
}


def resnet_name(depth: int, variant: str) -> str:
    """The public name: resnet{depth} is the original, resnet{depth}_{b,c,d} the tweaks."""
    return f"resnet{depth}_{variant}" if variant else f"resnet{depth}"


def resnet(depth: int, variant: str = "d", **kwargs: object) -> ResNet:
    """ResNet-`depth` of `variant` ("" original, "b", "c" or "d"); kwargs go to `ResNet`."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth} is not one of {sorted(DEPTHS)}")
    if variant not in VARIANTS:
        raise ValueError(f"ResNet variant {variant!r} is not one of {sorted(VARIANTS)}")
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, **VARIANTS[variant], **kwargs)
