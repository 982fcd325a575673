"""train.tensorboard: the numbers of metrics.jsonl and eval.jsonl, also as TensorBoard events."""

from __future__ import annotations

import pytest
from tiny_task import make_trainer, tiny_config

from detect_tricks.engine.run_dir import read_jsonl


def test_every_logged_number_is_a_scalar_at_its_iteration(tmp_path):
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="tensorboard is an optional extra",
    )
    trainer, loader, sampler = make_trainer(tmp_path, tiny_config(epochs=2))
    trainer.run.open_tensorboard()
    trainer.fit(loader, sampler)
    trainer.run.close()

    events = accumulator.EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    metrics, evals = read_jsonl(trainer.run.metrics), read_jsonl(trainer.run.evals)
    keys = {f"train/{k}" for k in metrics[0]} | {f"eval/{k}" for k in evals[0]}
    assert set(events.Tags()["scalars"]) == keys - {
        f"{p}/{k}" for p in ("train", "eval") for k in ("epoch", "iter")
    }
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [m["iter"] for m in metrics] == [2, 4, 6, 8, 10, 12]
    assert [e.value for e in losses] == pytest.approx([m["loss"] for m in metrics], rel=1e-6)
    assert [e.step for e in events.Scalars("eval/top1")] == [6, 12]
    assert [e.value for e in events.Scalars("eval/top1")] == pytest.approx(
        [r["top1"] for r in evals], rel=1e-6
    )


def test_without_the_switch_no_events_are_written(tmp_path):
    trainer, loader, sampler = make_trainer(tmp_path, tiny_config(epochs=2))
    trainer.fit(loader, sampler)
    assert not (tmp_path / "tb").exists()
