"""Exact learning rates: warmup, cosine, step boundaries, poly (Bag of Tricks §3.1, §5.1)."""

from __future__ import annotations

import math

import pytest

from detect_tricks.core.config import ScheduleConfig
from detect_tricks.engine.schedules import build_lr_schedule

# 10 iterations per epoch, 10 epochs: 100 iterations, peak lr 0.4.
ITERS, EPOCHS, LR = 10, 10, 0.4


def test_warmup_then_cosine_exact_values():
    lr_at = build_lr_schedule(ScheduleConfig(name="cosine", warmup_epochs=2), LR, ITERS, EPOCHS)
    assert lr_at(0) == 0.0
    assert lr_at(10) == pytest.approx(0.2, abs=1e-15)  # half-way through warmup
    assert lr_at(19) == pytest.approx(0.4 * 19 / 20, abs=1e-15)
    assert lr_at(20) == pytest.approx(0.4, abs=1e-15)  # end of warmup = start of cosine
    assert lr_at(60) == pytest.approx(0.2, abs=1e-15)  # t = T/2: (1 + cos(pi/2)) / 2
    assert lr_at(40) == pytest.approx(0.4 * (1 + math.cos(math.pi / 4)) / 2, abs=1e-15)
    assert lr_at(100) == 0.0
    assert lr_at(120) == 0.0  # past the end it stays at min_lr


def test_cosine_ends_at_min_lr():
    cfg = ScheduleConfig(name="cosine", min_lr=0.01)
    lr_at = build_lr_schedule(cfg, LR, ITERS, EPOCHS)
    assert lr_at(0) == pytest.approx(0.4)
    assert lr_at(50) == pytest.approx(0.01 + 0.39 / 2)
    assert lr_at(100) == pytest.approx(0.01)


def test_step_decay_at_each_boundary():
    cfg = ScheduleConfig(name="step", warmup_epochs=1, steps=[3, 6], factor=0.1)
    lr_at = build_lr_schedule(cfg, LR, ITERS, EPOCHS)
    assert lr_at(5) == pytest.approx(0.2)
    assert lr_at(10) == pytest.approx(0.4)
    assert lr_at(29) == pytest.approx(0.4)
    assert lr_at(30) == pytest.approx(0.04)
    assert lr_at(59) == pytest.approx(0.04)
    assert lr_at(60) == pytest.approx(0.004)
    assert lr_at(99) == pytest.approx(0.004)


def test_poly_decay():
    cfg = ScheduleConfig(name="poly", warmup_epochs=0, power=2.0)
    lr_at = build_lr_schedule(cfg, LR, ITERS, EPOCHS)
    assert lr_at(0) == pytest.approx(0.4)
    assert lr_at(50) == pytest.approx(0.4 * 0.25)
    assert lr_at(100) == 0.0


def test_fractional_warmup_epochs_round_to_iterations():
    lr_at = build_lr_schedule(ScheduleConfig(name="cosine", warmup_epochs=0.5), LR, ITERS, EPOCHS)
    assert lr_at(4) == pytest.approx(0.4 * 4 / 5)
    assert lr_at(5) == pytest.approx(0.4)


def test_warmup_longer_than_the_run_is_an_error():
    with pytest.raises(ValueError, match="warmup_epochs=10 covers the whole run of 10 epochs"):
        build_lr_schedule(ScheduleConfig(warmup_epochs=10), LR, ITERS, EPOCHS)
