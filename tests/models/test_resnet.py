"""ResNet variants: fidelity to torchvision/timm, the B/C/D tweaks, zero-gamma, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detect_tricks.models import CLASSIFIERS
from detect_tricks.models.resnet import Bottleneck, ResNet


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_torchvision_and_timm():
    assert _count(CLASSIFIERS["resnet50_b"]()) == 25_557_032  # torchvision resnet50
    assert _count(CLASSIFIERS["resnet50_d"]()) == 25_576_264  # timm resnet50d
    assert _count(CLASSIFIERS["resnet50"]()) == 25_557_032  # the stride moves, no parameter does
    assert _count(CLASSIFIERS["resnet50_c"]()) == 25_576_264  # D adds pooling, no parameters


def test_stride_placement_original_vs_b():
    original, b = CLASSIFIERS["resnet50"]().layer2[0], CLASSIFIERS["resnet50_b"]().layer2[0]
    assert (original.conv1.stride, original.conv2.stride) == ((2, 2), (1, 1))
    assert (b.conv1.stride, b.conv2.stride) == ((1, 1), (2, 2))


def test_c_has_the_deep_stem_and_d_the_average_pool_shortcut():
    c, d = CLASSIFIERS["resnet50_c"](), CLASSIFIERS["resnet50_d"]()
    convs = [m for m in c.conv1 if isinstance(m, nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        (3, 32, (3, 3), (2, 2)),
        (32, 32, (3, 3), (1, 1)),
        (32, 64, (3, 3), (1, 1)),
    ]
    assert isinstance(c.layer2[0].downsample[0], nn.Conv2d)
    assert c.layer2[0].downsample[0].stride == (2, 2)
    pool, conv = d.layer2[0].downsample[0], d.layer2[0].downsample[1]
    assert isinstance(pool, nn.AvgPool2d) and pool.ceil_mode and not pool.count_include_pad
    assert conv.stride == (1, 1)
    assert isinstance(d.layer1[0].downsample[0], nn.Identity)  # stride 1: nothing to pool


def test_zero_gamma_makes_every_block_the_identity_of_its_shortcut():
    torch.manual_seed(0)
    model = CLASSIFIERS["resnet50_d"](zero_gamma=True, width=0.25).eval()
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    for block in blocks:
        x = torch.randn(2, block.conv1.in_channels, 8, 8)
        shortcut = x if block.downsample is None else block.downsample(x)
        assert torch.equal(block(x), torch.relu(shortcut))
    assert all(b.bn3.weight.abs().sum() == 0 for b in blocks)
    assert all(
        b.bn3.weight.abs().sum() > 0
        for b in CLASSIFIERS["resnet50_d"](width=0.25).modules()
        if isinstance(b, Bottleneck)
    )


def test_features_at_strides_8_16_32_with_channels_read_from_the_model():
    model = CLASSIFIERS["resnet50_d"](width=0.25, num_classes=0)
    features = model.forward_features(torch.randn(1, 3, 96, 128))
    assert [tuple(f.shape[2:]) for f in features] == [(12, 16), (6, 8), (3, 4)]
    assert [f.shape[1] for f in features] == model.out_channels == [128, 256, 512]
    assert CLASSIFIERS["resnet18_d"]().out_channels == [128, 256, 512]


def test_odd_input_sizes_work_with_ceil_mode_pooling():
    logits = CLASSIFIERS["resnet18_d"](num_classes=3, width=0.25)(torch.randn(2, 3, 75, 93))
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("arch", ["resnet18_d", "resnet50_d", "resnet34", "resnet101_c"])
def test_every_parameter_gets_a_finite_gradient(arch):
    torch.manual_seed(0)
    model: ResNet = CLASSIFIERS[arch](num_classes=4, width=0.125)
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    assert torch.isfinite(loss)


def test_every_named_builder_exists_for_every_depth():
    assert sorted(CLASSIFIERS) == sorted(
        f"resnet{d}{v}" for d in (18, 34, 50, 101, 152) for v in ("", "_b", "_c", "_d")
    )
