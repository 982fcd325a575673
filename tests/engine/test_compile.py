"""`train.compile`: the compiled step trains like the eager one (inductor on the CPU)."""

from __future__ import annotations

import pytest
import torch
from tiny_task import make_trainer, tiny_config


@pytest.mark.slow
def test_the_compiled_step_gives_the_eager_losses_and_weights(tmp_path):
    runs = {}
    for compiled in (False, True):
        trainer, loader, sampler = make_trainer(
            tmp_path / str(compiled), tiny_config(compile=compiled), evaluate=False
        )
        sampler.set_epoch(0)
        batches = [batch for batch, _ in zip(loader, range(3), strict=False)]
        losses = [trainer.train_step(images, labels)[0]["loss"] for images, labels in batches]
        runs[compiled] = (trainer, losses)
    (eager, eager_losses), (compiled, compiled_losses) = runs[False], runs[True]
    assert isinstance(compiled.parts.model, torch._dynamo.eval_frame.OptimizedModule)
    assert not isinstance(eager.parts.model, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled_losses == pytest.approx(eager_losses, rel=1e-5)
    assert eager_losses[2] != eager_losses[0]  # the steps did change the weights
    for name, value in eager.parts.module.state_dict().items():
        torch.testing.assert_close(
            compiled.parts.module.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name
        )
