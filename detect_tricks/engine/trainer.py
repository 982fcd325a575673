"""The training loop shared by `tools/train_cls.py` and `tools/train_det.py`.

torchvision's `references/` shape: `fit` runs epochs of `train_one_epoch`, which runs
`train_step`s; around them, what a long run needs: per-iteration LR, AMP with one code
path, EMA, checkpoints every N iterations and at every epoch, exact mid-epoch resume
(`engine/run_state.py`), evaluation every `eval.interval` epochs with `best.pt`
(`engine/evaluation.py`), a stop with a precise message on a non-finite loss, and a
clean save-and-exit on SIGINT/SIGTERM agreed by all processes (`engine/stop.py`).

The task lives in two callables: `objective(model, images, targets, epoch)` returns the
loss dict (`loss` is backpropagated, the rest is logged) and `evaluate(model)` returns
metrics. The loop knows nothing else about classification or detection.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from detect_tricks.core.config import HasTrainSections
from detect_tricks.core.errors import NonFiniteLossError
from detect_tricks.data.sampling import TrainBatchSampler
from detect_tricks.engine.evaluation import Evaluation
from detect_tricks.engine.optim import set_lr
from detect_tricks.engine.parts import TrainParts, TrainState
from detect_tricks.engine.plots import plot_curves
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.run_state import (
    restore_training_checkpoint,
    training_checkpoint,
)
from detect_tricks.engine.stop import StopRequest
from detect_tricks.utils.checkpoint import write_training_checkpoint
from detect_tricks.utils.distributed import DistContext, all_reduce_mean
from detect_tricks.utils.progress import Progress

logger = logging.getLogger(__name__)


class Trainer:
    """Runs epochs of steps, evaluates, checkpoints and resumes one training run.

    Args:
        parts: model, objective, optimizer, schedule, scaler, autocast, EMA.
        run: the run directory (writes only on rank 0).
        ctx: this process's place in the job.
        config: the run's config (its `train` section sets the length, the log and
            checkpoint intervals; the whole config is saved in checkpoints).
        evaluation: when and how to evaluate, or None for no evaluation.
        metadata: saved in every checkpoint, e.g. the class names.
    """

    def __init__(
        self,
        parts: TrainParts,
        run: RunDirectory,
        ctx: DistContext,
        config: HasTrainSections,
        evaluation: Evaluation | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.parts, self.run, self.ctx, self.config = parts, run, ctx, config
        self.epochs = config.train.epochs
        self.evaluation = evaluation
        self.metadata = metadata or {}
        self.state = TrainState()
        self.progress = Progress(enabled=ctx.is_main)

    def fit(self, loader: Iterable, sampler: TrainBatchSampler) -> str:
        """Train to the end (returns "finished") or to a stop signal ("interrupted")."""
        session_start, wall_before = time.perf_counter(), self.state.wall_seconds
        if self.state.epoch >= self.epochs and not self.state.evaluation_pending:
            logger.warning(
                "This run has already trained %d epochs of train.epochs=%d: nothing to do "
                "(--resume --set train.epochs=N trains it longer)",
                self.state.epoch,
                self.epochs,
            )
        self.batches_per_epoch = sampler.batches_per_epoch
        self.global_batch = sampler.global_batch
        self.run.write_config(self.config)
        with StopRequest() as stop:
            if self.state.evaluation_pending:  # resumed after a crash in an evaluation
                self._evaluate_pending()
            while self.state.epoch < self.epochs:
                sampler.set_epoch(self.state.epoch, self.state.batch_in_epoch)
                finished = self.train_one_epoch(loader, stop)
                self.state.wall_seconds = wall_before + time.perf_counter() - session_start
                if not finished:
                    self.save_checkpoint()
                    self._finish("interrupted")
                    logger.warning(
                        "Stopped at epoch %d, iteration %d; continue with --resume",
                        self.state.epoch + 1,
                        self.state.batch_in_epoch,
                    )
                    return "interrupted"
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
                due = self.evaluation is not None and self.evaluation.due(
                    self.state.epoch, self.epochs
                )
                # The epoch is on disk before it is evaluated: an evaluation that fails
                # (unreadable validation data, say) loses no training.
                self.state.evaluation_pending = due
                self.save_checkpoint()
                if due:
                    self._evaluate_pending()
                    self.state.wall_seconds = wall_before + time.perf_counter() - session_start
        self._finish("finished")
        return "finished"

    def train_one_epoch(self, loader: Iterable, stop: StopRequest) -> bool:
        """Train the rest of the current epoch; False when stopped by a signal."""
        state, interval = self.state, self.config.train.checkpoint_interval
        self.parts.model.train()
        self.progress.start_epoch(
            state.epoch, self.epochs, self.batches_per_epoch, state.batch_in_epoch
        )
        sums: dict[str, float] = {}
        count, tick = 0, time.perf_counter()
        try:
            for images, targets in loader:
                data_s = time.perf_counter() - tick
                losses, stop_all = self.train_step(images, targets, stop.requested)
                step_s = time.perf_counter() - tick - data_s
                state.batch_in_epoch += 1
                state.iteration += 1
                state.images_seen += self.global_batch
                self.progress.update(data_s + step_s)
                for key, value in {**losses, "data_s": data_s, "step_s": step_s}.items():
                    sums[key] = sums.get(key, 0.0) + value
                count += 1
                if state.iteration % self.config.train.log_interval == 0 or stop_all:
                    self._log_interval(sums, count)
                    sums, count = {}, 0
                if stop_all:
                    return False
                if interval and state.iteration % interval == 0:
                    self.save_checkpoint()
                tick = time.perf_counter()
        finally:
            self.progress.end_epoch()
        return True

    def train_step(
        self, images: torch.Tensor, targets: Any, stop_requested: bool = False
    ) -> tuple[dict[str, float], bool]:
        """One SGD step; returns the loss terms averaged over processes and whether any
        process asked to stop."""
        parts, device = self.parts, self.ctx.device
        lr = parts.lr_schedule(self.state.iteration)
        set_lr(parts.optimizer, lr)
        images = parts.runtime.images(images)
        targets = _move(targets, device)
        with parts.runtime.autocast():
            losses = parts.objective(parts.model, images, targets, self.state.epoch)
        names = list(losses)
        terms = [torch.as_tensor(losses[k]).detach().float().reshape(()).to(device) for k in names]
        stop_flag = torch.full((), float(stop_requested), device=device)
        read_values = read_back_later(all_reduce_mean(torch.stack([*terms, stop_flag]), self.ctx))
        parts.scaler.scale(losses["loss"]).backward()
        values = read_values()  # the one wait of the step, with the backward already queued
        reduced = dict(zip(names, values[:-1], strict=True))
        if not all(math.isfinite(v) for v in reduced.values()):
            parts.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(self._non_finite_message(reduced))
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        parts.optimizer.zero_grad(set_to_none=True)
        if parts.ema is not None:
            parts.ema.update(parts.module)
        return {**reduced, "lr": lr}, values[-1] > 0

    def save_checkpoint(self, best: bool = False) -> None:
        """Write `last.pt` (and `best.pt`); every process must call this."""
        checkpoint = training_checkpoint(
            self.parts, self.state, self.config, self.metadata, self.ctx
        )
        if self.ctx.is_main:
            write_training_checkpoint(checkpoint, self.run.last, self.run.best if best else None)

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Continue from a checkpoint written by `save_checkpoint`."""
        self.state = restore_training_checkpoint(self.parts, checkpoint, self.ctx)
        self.run.forget_after(self.state.iteration)
        if self.evaluation is not None:
            self.evaluation.remember_last(self.run)
        logger.info(
            "Resumed at epoch %d, iteration %d of the epoch (global %d)",
            self.state.epoch + 1,
            self.state.batch_in_epoch,
            self.state.iteration,
        )

    def _log_interval(self, sums: dict[str, float], count: int) -> None:
        means = {key: value / count for key, value in sums.items()}
        per_step = means["data_s"] + means["step_s"]
        record = {
            "epoch": self.state.epoch,
            "iter": self.state.iteration,
            **means,
            "img_per_s": self.global_batch / per_step if per_step > 0 else 0.0,
        }
        self.run.append_metrics(record)
        remaining = self.epochs * self.batches_per_epoch - self.state.iteration
        self.progress.report(record, self.state.batch_in_epoch, remaining)

    def _non_finite_message(self, losses: dict[str, float]) -> str:
        terms = ", ".join(f"{k}={v:.6g}" for k, v in losses.items())
        if self.run.last.is_file():
            last = f"the last good checkpoint is {self.run.last}"
        else:
            last = "no checkpoint had been written yet"
        return (
            f"Loss is not finite at epoch {self.state.epoch + 1}, iteration "
            f"{self.state.batch_in_epoch + 1} of the epoch (global iteration "
            f"{self.state.iteration + 1}): {terms}. Training stopped before this step was "
            f"applied; {last}. Lower optim.lr, add warmup, or check the data."
        )

    def _evaluate_pending(self) -> None:
        """Evaluate the epoch just saved, then save again (and `best.pt` if it improved)."""
        assert self.evaluation is not None, "an evaluation is pending without an evaluator"
        epoch = self.state.epoch
        value = self.evaluation.run(
            self.parts.evaluated, epoch, self.state.iteration, self.run, self.ctx.is_main
        )
        improved = self.state.record(value, epoch)
        self.state.evaluation_pending = False
        self.save_checkpoint(best=improved)

    def _finish(self, status: str) -> None:
        state = self.state
        best_key = self.evaluation.best_key if self.evaluation is not None else None
        self.run.write_summary(
            {
                "status": status,
                "epochs": state.epoch,
                "iterations": state.iteration,
                "images_seen": state.images_seen,
                "wall_seconds": round(state.wall_seconds, 1),
                "final": self.evaluation.last_metrics if self.evaluation is not None else None,
                "best": {"metric": best_key, "value": state.best_metric, "epoch": state.best_epoch},
            }
        )
        if self.ctx.is_main:
            plot_curves(self.run)


def read_back_later(values: torch.Tensor) -> Callable[[], list[float]]:
    """Start copying `values` to the host; the returned function waits for the copy and
    gives them as floats. On CUDA the copy is queued now (pinned, non-blocking) and the
    wait is only for the work queued before it, so work queued in between (the backward)
    keeps the device busy while the host waits; elsewhere the values are read at once."""
    if values.device.type != "cuda":
        read = values.tolist()
        return lambda: read
    host = values.to("cpu", non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def wait() -> list[float]:
        copied.synchronize()
        return host.tolist()

    return wait


def _move(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested lists, tuples and dicts to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device) for v in obj)
    return obj
