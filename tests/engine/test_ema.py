"""EMA of weights: the exact update, its warm-up, integer buffers, state round trip."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from detect_tricks.engine.ema import ModelEma


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))


def test_update_is_lerp_with_ramped_decay():
    net = _net()
    ema = ModelEma(net, decay=0.999)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(4, 2, 5, 5))  # moves BN running stats and num_batches_tracked
    ema.update(net)
    d = 0.999 * (1 - math.exp(-1 / 2000))
    for name, value in ema.module.state_dict().items():
        model_value = net.state_dict()[name]
        if value.is_floating_point():
            torch.testing.assert_close(value, d * before[name] + (1 - d) * model_value)
        else:
            assert torch.equal(value, model_value), name
    assert ema.updates == 1
    assert ema.current_decay() == pytest.approx(0.999 * (1 - math.exp(-2 / 2000)))


def test_decay_approaches_the_configured_value():
    ema = ModelEma(_net(), decay=0.9998)
    ema.updates = 50_000
    assert ema.current_decay() == pytest.approx(0.9998, abs=1e-9)


def test_copy_is_frozen_and_state_round_trips():
    net = _net()
    ema = ModelEma(net, decay=0.99)
    assert not any(p.requires_grad for p in ema.module.parameters())
    assert not ema.module.training
    ema.update(net)
    other = ModelEma(_net(), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    for a, b in zip(
        other.module.state_dict().values(), ema.module.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
