"""The training loop: exact resume, crash safety, non-finite loss, the run directory."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from tiny_task import calls_then, cross_entropy_objective, make_trainer, tiny_config

from detect_tricks.core.config import ClsConfig
from detect_tricks.core.config_loader import load_config
from detect_tricks.core.errors import NonFiniteLossError
from detect_tricks.engine.run_dir import read_jsonl
from detect_tricks.utils.checkpoint import load_checkpoint

# 48 samples / batch 8 = 6 iterations per epoch, 18 in all.
ITERS = 18


def _train(out, cfg, objective=cross_entropy_objective, resume=False):
    trainer, loader, sampler = make_trainer(out, cfg, objective=objective, resume=resume)
    if resume:
        trainer.resume(load_checkpoint(trainer.run.last))
    status = trainer.fit(loader, sampler)
    return trainer, status


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: one run of 3 epochs with EMA, never stopped."""
    trainer, status = _train(tmp_path_factory.mktemp("full"), tiny_config(ema=True))
    assert status == "finished"
    return trainer


@pytest.mark.parametrize("workers", [0, 2])
def test_signal_stop_then_resume_equals_uninterrupted(tmp_path, uninterrupted, workers):
    cfg = tiny_config(ema=True, workers=workers)
    # SIGTERM during step 8 (epoch 2): the loop finishes step 9, saves, and exits.
    stop = calls_then(8, lambda: os.kill(os.getpid(), signal.SIGTERM))
    first, status = _train(tmp_path, cfg, objective=stop)
    assert status == "interrupted"
    saved = load_checkpoint(first.run.last)
    assert saved["state"]["iteration"] == 9 and saved["state"]["batch_in_epoch"] == 3
    assert json.loads(first.run.summary.read_text())["status"] == "interrupted"

    resumed, status = _train(tmp_path, cfg, resume=True)
    assert status == "finished"
    assert resumed.state.iteration == ITERS
    _assert_same_state(resumed.parts.module, uninterrupted.parts.module)
    _assert_same_state(resumed.parts.ema.module, uninterrupted.parts.ema.module)
    iters = [r["iter"] for r in read_jsonl(resumed.run.metrics)]
    # One extra line at the stop (iteration 9), none repeated after the resume.
    assert iters == sorted({9} | {r["iter"] for r in read_jsonl(uninterrupted.run.metrics)})


def test_crash_resumes_from_periodic_checkpoint(tmp_path, uninterrupted):
    cfg = tiny_config(ema=True, checkpoint_interval=4)

    def crash():
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path, cfg, objective=calls_then(11, crash))
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["state"]["iteration"] == 8
    resumed, _ = _train(tmp_path, cfg, resume=True)
    _assert_same_state(resumed.parts.module, uninterrupted.parts.module)


def test_resuming_after_the_last_evaluation_keeps_it_as_the_final_result(tmp_path, uninterrupted):
    """A run killed after its last checkpoint but before its summary: resuming trains
    nothing more, and the summary still reports the last evaluation (not null)."""
    trainer, _ = _train(tmp_path, tiny_config(ema=True))
    expected = json.loads(trainer.run.summary.read_text())["final"]
    trainer.run.summary.unlink()
    resumed, status = _train(tmp_path, tiny_config(ema=True), resume=True)
    assert status == "finished" and resumed.state.iteration == ITERS
    assert json.loads(resumed.run.summary.read_text())["final"] == expected
    assert expected["top1"] > 0.5


def test_non_finite_loss_stops_with_terms_and_keeps_last_good_checkpoint(tmp_path):
    def nan_at_step_5(model, images, labels, epoch):
        losses = cross_entropy_objective(model, images, labels, epoch)
        nan_at_step_5.calls += 1
        if nan_at_step_5.calls == 5:
            losses["loss_cls"] = losses["loss_cls"] * float("nan")
            losses["loss"] = losses["loss_cls"]
        return losses

    nan_at_step_5.calls = 0
    cfg = tiny_config(checkpoint_interval=2)
    with pytest.raises(NonFiniteLossError) as err:
        _train(tmp_path, cfg, objective=nan_at_step_5)
    message = str(err.value)
    assert "epoch 1, iteration 5 of the epoch (global iteration 5)" in message
    assert "loss=nan" in message and "loss_cls=nan" in message
    assert str(tmp_path / "checkpoints" / "last.pt") in message
    saved = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert saved["state"]["iteration"] == 4
    assert all(t.isfinite().all() for t in saved["model"].values())


def test_run_directory_contract(tmp_path, uninterrupted):
    run = uninterrupted.run
    cfg = tiny_config(ema=True)
    assert load_config(run.config, ClsConfig) == cfg
    metrics = read_jsonl(run.metrics)
    assert [m["iter"] for m in metrics] == list(range(2, ITERS + 1, 2))
    for key in ("epoch", "iter", "lr", "loss", "loss_cls", "img_per_s", "data_s", "step_s"):
        assert key in metrics[0], key
    evals = read_jsonl(run.evals)
    assert [(e["epoch"], e["iter"]) for e in evals] == [(1, 6), (2, 12), (3, 18)]
    summary = json.loads(run.summary.read_text())
    assert summary["status"] == "finished"
    assert (summary["iterations"], summary["images_seen"], summary["epochs"]) == (18, 144, 3)
    assert summary["final"]["top1"] == evals[-1]["top1"]
    assert summary["best"]["value"] == max(e["top1"] for e in evals)
    assert summary["best"]["epoch"] == max(evals, key=lambda e: e["top1"])["epoch"]
    best = load_checkpoint(run.best)
    assert best["state"]["epoch"] == summary["best"]["epoch"]
    for name in ("loss.png", "lr.png", "eval.png"):
        assert (run.plots / name).stat().st_size > 1000, name
    log = run.log.read_text()
    assert "epoch 3/3 iter 6/6" in log and "eval after epoch 3" in log


def test_checkpoint_holds_everything_resume_needs(uninterrupted):
    ckpt = load_checkpoint(uninterrupted.run.last)
    for key in ("model", "optimizer", "scaler", "ema", "state", "lr", "rng", "config"):
        assert key in ckpt, key
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch"}
    evals = read_jsonl(uninterrupted.run.evals)
    best = max(evals, key=lambda e: e["top1"])
    state = dict(ckpt["state"])
    assert 0 < state.pop("wall_seconds") < 600
    assert state == {
        "epoch": 3,
        "batch_in_epoch": 0,
        "iteration": 18,
        "images_seen": 144,
        "best_metric": best["top1"],
        "best_epoch": best["epoch"],
        "evaluation_pending": False,
    }
    assert ckpt["lr"] == pytest.approx(0.0)  # cosine ends at min_lr


def test_new_run_refuses_to_overwrite_an_existing_one(tmp_path, uninterrupted):
    with pytest.raises(FileExistsError, match="--resume"):
        make_trainer(uninterrupted.run.root, tiny_config())


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        make_trainer(tmp_path, tiny_config(), resume=True)


def test_an_evaluation_that_fails_loses_no_epoch_and_resume_evaluates_it_first(
    tmp_path, uninterrupted
):
    """The epoch is saved before its evaluation: a crash there (unreadable validation
    data) leaves it on disk, and resume evaluates it, then trains on to the same weights."""
    cfg = tiny_config(ema=True)
    trainer, loader, sampler = make_trainer(tmp_path, cfg)

    def broken(model):
        raise RuntimeError("validation data unreadable")

    trainer.evaluation.evaluate = broken
    with pytest.raises(RuntimeError, match="validation data unreadable"):
        trainer.fit(loader, sampler)
    saved = load_checkpoint(trainer.run.last)
    assert saved["state"]["epoch"] == 1 and saved["state"]["iteration"] == 6
    assert saved["state"]["evaluation_pending"] is True

    resumed, status = _train(tmp_path, cfg, resume=True)
    assert status == "finished"
    assert [e["epoch"] for e in read_jsonl(resumed.run.evals)] == [1, 2, 3]
    _assert_same_state(resumed.parts.module, uninterrupted.parts.module)
    assert load_checkpoint(resumed.run.last)["state"]["evaluation_pending"] is False


def test_a_half_written_last_log_line_does_not_block_resume(tmp_path, uninterrupted):
    cfg = tiny_config(ema=True)
    stop = calls_then(8, lambda: os.kill(os.getpid(), signal.SIGTERM))
    first, _ = _train(tmp_path, cfg, objective=stop)
    with open(first.run.metrics, "a") as log:
        log.write('{"epoch": 1, "iter": 10, "loss": 0.5')  # killed mid-write
    resumed, status = _train(tmp_path, cfg, resume=True)
    assert status == "finished"
    _assert_same_state(resumed.parts.module, uninterrupted.parts.module)
    iters = [r["iter"] for r in read_jsonl(resumed.run.metrics)]
    assert iters == sorted(set(iters))  # the broken line is gone, nothing logged twice
