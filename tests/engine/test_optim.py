"""Parameter groups for no bias decay, linear LR scaling, Nesterov SGD."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from detect_tricks.core.config import OptimConfig
from detect_tricks.engine.optim import build_optimizer, parameter_groups, scaled_lr


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)  # has a bias
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.shared = self.fc  # the same parameters reached twice
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _ids(params) -> list[int]:
    return sorted(id(p) for p in params)


def test_every_trainable_parameter_in_exactly_one_group():
    net = _Net()
    for no_bias_decay in (True, False):
        groups = parameter_groups(net, 1e-4, no_bias_decay)
        grouped = [id(p) for g in groups for p in g["params"]]
        assert len(grouped) == len(set(grouped))
        assert sorted(grouped) == _ids(p for p in net.parameters() if p.requires_grad)


def test_no_bias_decay_puts_biases_and_norm_parameters_in_the_zero_group():
    net = _Net()
    decay, no_decay = parameter_groups(net, 5e-4, no_bias_decay=True)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    expected_no_decay = [
        net.bn.weight,
        net.bn.bias,
        net.conv2.bias,
        net.gn.weight,
        net.gn.bias,
        net.ln.weight,
        net.ln.bias,
        net.fc.bias,
    ]
    assert _ids(no_decay["params"]) == _ids(expected_no_decay)
    assert _ids(decay["params"]) == _ids([net.conv.weight, net.conv2.weight, net.fc.weight])


def test_without_the_switch_everything_decays():
    groups = parameter_groups(_Net(), 1e-4, no_bias_decay=False)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 1e-4


def test_linear_scaling():
    cfg = OptimConfig(lr=0.1, reference_batch=256, linear_scaling=True)
    assert scaled_lr(cfg, 1024) == pytest.approx(0.4)
    assert scaled_lr(cfg, 64) == pytest.approx(0.025)
    assert scaled_lr(OptimConfig(lr=0.1, linear_scaling=False), 1024) == 0.1


def test_build_optimizer_nesterov_and_groups():
    cfg = OptimConfig(
        lr=1e-3,
        reference_batch=64,
        linear_scaling=True,
        nesterov=True,
        weight_decay=5e-4,
        no_bias_decay=True,
    )
    opt = build_optimizer(_Net(), cfg, global_batch=16)
    assert isinstance(opt, torch.optim.SGD)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in opt.param_groups)
    assert all(g["lr"] == pytest.approx(2.5e-4) for g in opt.param_groups)


def test_adamw_keeps_the_groups_and_takes_momentum_as_beta1():
    cfg = OptimConfig(name="adamw", lr=2e-3, momentum=0.9, weight_decay=0.05, no_bias_decay=True)
    opt = build_optimizer(_Net(), cfg, global_batch=16)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["betas"] == (0.9, 0.999) and opt.param_groups[0]["lr"] == 2e-3


def test_nesterov_with_adamw_is_a_config_error():
    with pytest.raises(ValueError, match="optim.nesterov"):
        OptimConfig(name="adamw", nesterov=True)
