"""Precise BN sets BN statistics to the plain averages over the given batches."""

from __future__ import annotations

import pytest
import torch
from tiny_task import make_trainer, tiny_config
from torch import nn

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.data.sampling import spread_indices
from detect_tricks.engine.precise_bn import recompute_bn_stats
from detect_tricks.tasks.detection import precise_bn_enabled


def conv_bn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())


def test_statistics_equal_the_mean_of_the_batch_means_and_variances():
    model = conv_bn()
    bn = model[1]
    bn.running_mean.fill_(5.0)  # stale statistics, as after training at other sizes
    bn.running_var.fill_(9.0)
    weights_before = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k}
    model.eval()
    generator = torch.Generator().manual_seed(1)
    # Batches of different sizes and scales: a cumulative average of batch statistics,
    # not an EMA and not the statistics of the concatenation.
    batches = [
        torch.randn(2, 3, 8, 8, generator=generator) * 3 + 1,
        torch.randn(5, 3, 8, 8, generator=generator),
        torch.randn(3, 3, 8, 8, generator=generator) - 2,
    ]
    with torch.no_grad():
        features = [model[0](b) for b in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(dim=1) for f in features])

    assert recompute_bn_stats(model, batches) == 3

    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=0, atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # restored
    for key, value in weights_before.items():
        if key.endswith("num_batches_tracked"):
            continue
        assert torch.equal(model.state_dict()[key], value), key


def test_no_batches_is_an_error_not_reset_statistics():
    with pytest.raises(ValueError, match="at least one batch"):
        recompute_bn_stats(conv_bn(), [])


def test_auto_turns_precise_bn_on_exactly_with_random_shapes():
    def resolved(**sections) -> bool:
        return precise_bn_enabled(config_from_dict(sections, DetConfig))

    assert resolved(tricks={"random_shapes": True})
    assert not resolved(tricks={"random_shapes": False})
    assert resolved(tricks={"random_shapes": False}, eval={"precise_bn": True})
    assert not resolved(tricks={"random_shapes": True}, eval={"precise_bn": False})


def test_spread_indices_cover_the_set_evenly_and_share_equally():
    assert spread_indices(10, 5) == [0, 2, 4, 6, 8]
    assert spread_indices(4, 100) == [0, 1, 2, 3]
    assert spread_indices(7, 100, multiple_of=2) == [0, 1, 2, 3, 4, 5]
    assert spread_indices(1, 8, multiple_of=2) == []


def test_the_trainer_calls_precise_bn_on_the_evaluated_model_before_each_evaluation(tmp_path):
    calls = []
    trainer, loader, sampler = make_trainer(tmp_path, tiny_config(epochs=3, ema=True))
    evaluate = trainer.evaluation.evaluate

    def record(model: nn.Module) -> None:
        calls.append(("precise_bn", trainer.state.epoch, model))

    def evaluate_after(model: nn.Module) -> dict[str, float]:
        calls.append(("evaluate", trainer.state.epoch, model))
        return evaluate(model)

    trainer.evaluation.before, trainer.evaluation.evaluate = record, evaluate_after
    trainer.fit(loader, sampler)
    assert [(name, epoch) for name, epoch, _ in calls] == [
        ("precise_bn", 1),
        ("evaluate", 1),
        ("precise_bn", 2),
        ("evaluate", 2),
        ("precise_bn", 3),
        ("evaluate", 3),
    ]
    assert all(model is trainer.parts.ema.module for _, _, model in calls)


def test_precise_bn_takes_its_first_batches_from_the_loader_in_the_memory_format():
    """PreciseBN itself (not a mock): the first `num_batches` (images, meta) batches of
    its loader, moved to the device in channels_last, give the mean of their batch means;
    a later batch is never read."""
    from detect_tricks.engine.precise_bn import PreciseBN
    from detect_tricks.utils.distributed import DistContext
    from detect_tricks.utils.runtime import Runtime

    model = conv_bn()
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randn(2, 3, 8, 8, generator=generator) + shift for shift in (0.0, 3.0)]
    seen_formats = []
    model[0].register_forward_pre_hook(
        lambda m, args: seen_formats.append(
            args[0].is_contiguous(memory_format=torch.channels_last)
        )
    )

    def loader():
        yield from ((b, {"meta": i}) for i, b in enumerate(batches))
        raise AssertionError("a third batch was read")

    with torch.no_grad():
        expected = torch.stack([model[0](b).mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    seen_formats.clear()
    runtime = Runtime(torch.device("cpu"), channels_last=True)
    PreciseBN(loader(), num_batches=2, ctx=DistContext(), runtime=runtime)(model)
    torch.testing.assert_close(model[1].running_mean, expected, rtol=0, atol=1e-5)
    assert seen_formats == [True, True]
