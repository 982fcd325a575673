"""The training loop shared by `tools/train_cls.py` and `tools/train_det.py`.

torchvision's `references/` shape: a plain `train_one_epoch` and a `fit` over epochs,
plus what a long run needs: per-iteration LR, AMP with one code path, EMA, checkpoints
every N iterations and at every epoch, exact mid-epoch resume, evaluation every
`eval.interval` epochs with `best.pt`, a stop with a precise message on a non-finite
loss, and a clean save-and-exit on SIGINT/SIGTERM (agreed by all processes).

The task lives in two callables: `objective(model, images, targets, epoch)` returns the
loss dict (`loss` is backpropagated, the rest is logged) and `evaluate(model)` returns
metrics. The loop knows nothing else about classification or detection.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from detect_tricks.config import config_to_dict
from detect_tricks.engine.checkpoint import (
    CheckpointError,
    atomic_copy,
    atomic_save,
    capture_rng_state,
    restore_rng_state,
)
from detect_tricks.engine.distributed import DistContext, all_gather_objects, all_reduce_mean
from detect_tricks.engine.ema import ModelEma
from detect_tricks.engine.plots import plot_curves
from detect_tricks.engine.progress import LOGGER_NAME, Progress, format_duration
from detect_tricks.engine.run_dir import RunDirectory, read_jsonl
from detect_tricks.engine.sampling import TrainBatchSampler
from detect_tricks.optim import set_lr
from detect_tricks.schedules import LRSchedule

Objective = Callable[[nn.Module, torch.Tensor, Any, int], dict[str, torch.Tensor]]
Evaluator = Callable[[nn.Module], dict[str, float]]
CHECKPOINT_FORMAT = "detect_tricks/1"
PLOT_EVERY_S = 120.0  # redraw curves after an evaluation at most this often (~0.6 s each)

logger = logging.getLogger(LOGGER_NAME)


class NonFiniteLossError(RuntimeError):
    """A step produced a NaN or infinite loss; training stopped before applying it."""


@dataclass
class TrainState:
    """Where the run is; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of `epoch` already trained
    iteration: int = 0  # batches trained since the start
    images_seen: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    wall_seconds: float = 0.0  # training time over all sessions of the run


@dataclass
class TrainParts:
    """The objects one training run is made of."""

    model: nn.Module  # what the step calls: the DDP wrapper when distributed
    module: nn.Module  # the bare model: its state is what gets saved
    objective: Objective
    optimizer: torch.optim.Optimizer
    lr_schedule: LRSchedule
    scaler: torch.amp.GradScaler
    autocast: Callable[[], AbstractContextManager]
    channels_last: bool = False
    ema: ModelEma | None = None


class _StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves and exits after the current step.

    A second Ctrl-C interrupts at once (the default behaviour).
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning(
            "Received %s: stopping after this step and saving a checkpoint "
            "(press Ctrl-C again to quit at once)",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> _StopRequest:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Trainer:
    """Runs epochs of steps, evaluates, checkpoints and resumes one training run.

    Args:
        parts: model, objective, optimizer, schedule, scaler, autocast, EMA.
        run: the run directory (writes only on rank 0).
        ctx: this process's place in the job.
        config: the run's config dataclass (saved in checkpoints).
        epochs: length of the run.
        log_interval: iterations between metrics lines.
        checkpoint_interval: iterations between extra checkpoints (0: per epoch only).
        evaluate: returns validation metrics for a model, or None for no evaluation.
        eval_interval: epochs between evaluations; the last epoch is always evaluated.
        best_key: the metric (higher is better) that picks `best.pt`.
        metadata: saved in every checkpoint, e.g. the class names.
        before_eval: called with the model about to be evaluated, e.g. precise BN.
    """

    def __init__(
        self,
        parts: TrainParts,
        run: RunDirectory,
        ctx: DistContext,
        config: Any,
        epochs: int,
        log_interval: int,
        checkpoint_interval: int = 0,
        evaluate: Evaluator | None = None,
        eval_interval: int = 1,
        best_key: str | None = None,
        metadata: dict[str, Any] | None = None,
        before_eval: Callable[[nn.Module], None] | None = None,
    ) -> None:
        self.parts = parts
        self.run = run
        self.ctx = ctx
        self.config = config
        self.epochs = epochs
        self.log_interval = log_interval
        self.checkpoint_interval = checkpoint_interval
        self.evaluate = evaluate
        self.eval_interval = eval_interval
        self.best_key = best_key
        self.metadata = metadata or {}
        self.before_eval = before_eval
        self.state = TrainState()
        self.progress = Progress(enabled=ctx.is_main)
        self.last_metrics: dict[str, float] | None = None
        self.plotted_at = time.perf_counter()

    @classmethod
    def from_config(
        cls,
        parts: TrainParts,
        run: RunDirectory,
        ctx: DistContext,
        config: Any,
        evaluate: Evaluator | None,
        best_key: str | None,
        metadata: dict[str, Any] | None = None,
        before_eval: Callable[[nn.Module], None] | None = None,
    ) -> Trainer:
        """A trainer with the length, logging, checkpoint and evaluation intervals of the
        config's `train` and `eval` sections."""
        return cls(
            parts,
            run,
            ctx,
            config,
            epochs=config.train.epochs,
            log_interval=config.train.log_interval,
            checkpoint_interval=config.train.checkpoint_interval,
            evaluate=evaluate,
            eval_interval=config.eval.interval,
            best_key=best_key,
            metadata=metadata,
            before_eval=before_eval,
        )

    # -- the loop ------------------------------------------------------------------------

    def fit(self, loader: Iterable, sampler: TrainBatchSampler) -> str:
        """Train to the end (returns "finished") or to a stop signal ("interrupted")."""
        session_start = time.perf_counter()
        wall_before = self.state.wall_seconds
        self.batches_per_epoch = sampler.batches_per_epoch
        self.global_batch = sampler.global_batch
        self.run.write_config(self.config)
        with _StopRequest() as stop:
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
                improved = self._evaluate_if_due()
                self.state.wall_seconds = wall_before + time.perf_counter() - session_start
                self.save_checkpoint(best=improved)
        self._finish("finished")
        return "finished"

    def train_one_epoch(self, loader: Iterable, stop: _StopRequest) -> bool:
        """Train the rest of the current epoch; False when stopped by a signal."""
        parts, state = self.parts, self.state
        parts.model.train()
        self.progress.start_epoch(
            state.epoch, self.epochs, self.batches_per_epoch, state.batch_in_epoch
        )
        sums: dict[str, float] = {}
        count = 0
        tick = time.perf_counter()
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
                if state.iteration % self.log_interval == 0 or stop_all:
                    self._log_interval(sums, count)
                    sums, count = {}, 0
                if stop_all:
                    return False
                if self.checkpoint_interval and state.iteration % self.checkpoint_interval == 0:
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
        parts = self.parts
        lr = parts.lr_schedule(self.state.iteration)
        set_lr(parts.optimizer, lr)
        images, targets = self._to_device(images), _move(targets, self.ctx.device)
        with parts.autocast():
            losses = parts.objective(parts.model, images, targets, self.state.epoch)
        names = list(losses)
        device = self.ctx.device
        terms = [torch.as_tensor(losses[k]).detach().float().reshape(()).to(device) for k in names]
        stop_flag = torch.tensor(float(stop_requested), device=device)
        values = torch.stack([*terms, stop_flag])
        values = all_reduce_mean(values, self.ctx).tolist()
        reduced = dict(zip(names, values[:-1], strict=True))
        if not all(math.isfinite(v) for v in reduced.values()):
            raise NonFiniteLossError(self._non_finite_message(reduced))
        parts.scaler.scale(losses["loss"]).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        parts.optimizer.zero_grad(set_to_none=True)
        if parts.ema is not None:
            parts.ema.update(parts.module)
        return {**reduced, "lr": lr}, values[-1] > 0

    # -- helpers of the loop -------------------------------------------------------------

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        channels_last = self.parts.channels_last and images.ndim == 4
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return images.to(self.ctx.device, non_blocking=True, memory_format=memory_format)

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

    def _evaluate_if_due(self) -> bool:
        """Evaluate after this epoch if due; True when the best metric improved."""
        epoch = self.state.epoch
        if self.evaluate is None or (epoch % self.eval_interval and epoch != self.epochs):
            return False
        model = self.parts.ema.module if self.parts.ema is not None else self.parts.module
        started = time.perf_counter()
        if self.before_eval is not None:
            self.before_eval(model)
        metrics = self.evaluate(model)
        self.last_metrics = metrics
        self.run.append_eval({"epoch": epoch, "iter": self.state.iteration, **metrics})
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k)
        logger.info(
            "eval after epoch %d (%s): %s",
            epoch,
            format_duration(time.perf_counter() - started),
            shown,
        )
        if self.ctx.is_main and time.perf_counter() - self.plotted_at > PLOT_EVERY_S:
            plot_curves(self.run)
            self.plotted_at = time.perf_counter()
        value = metrics[self.best_key] if self.best_key else None
        if value is None or (
            self.state.best_metric is not None and value <= self.state.best_metric
        ):
            return False
        self.state.best_metric, self.state.best_epoch = value, epoch
        return True

    def _finish(self, status: str) -> None:
        state = self.state
        self.run.write_summary(
            {
                "status": status,
                "epochs": state.epoch,
                "iterations": state.iteration,
                "images_seen": state.images_seen,
                "wall_seconds": round(state.wall_seconds, 1),
                "final": self.last_metrics,
                "best": {
                    "metric": self.best_key,
                    "value": state.best_metric,
                    "epoch": state.best_epoch,
                },
            }
        )
        if self.ctx.is_main:
            plot_curves(self.run)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (RNG of every process)."""
        rng = all_gather_objects(capture_rng_state(), self.ctx)
        parts = self.parts
        return {
            "format": CHECKPOINT_FORMAT,
            "model": parts.module.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "scaler": parts.scaler.state_dict(),
            "ema": parts.ema.state_dict() if parts.ema is not None else None,
            "state": dataclasses.asdict(self.state),
            "lr": parts.lr_schedule(self.state.iteration),
            "rng": rng,
            "config": config_to_dict(self.config),
            "metadata": self.metadata,
        }

    def save_checkpoint(self, best: bool = False) -> None:
        """Write `last.pt` (and `best.pt`) atomically; every process must call this."""
        ckpt = self.checkpoint()
        if not self.ctx.is_main:
            return
        bad = [
            n for n, t in ckpt["model"].items() if t.is_floating_point() and not t.isfinite().all()
        ]
        if bad:
            raise NonFiniteLossError(
                f"refusing to overwrite {self.run.last}: the weights hold NaN or inf "
                f"(first: {bad[0]}); the last good checkpoint is kept"
            )
        atomic_save(ckpt, self.run.last)
        if best:
            atomic_copy(self.run.last, self.run.best)

    def resume(self, ckpt: dict[str, Any]) -> None:
        """Continue from a checkpoint dict written by `checkpoint()`."""
        if ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"not a detect_tricks training checkpoint (format {ckpt.get('format')!r}, "
                f"expected {CHECKPOINT_FORMAT!r})"
            )
        parts = self.parts
        parts.module.load_state_dict(ckpt["model"])
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scaler"]:
            parts.scaler.load_state_dict(ckpt["scaler"])
        if parts.ema is not None:
            if ckpt["ema"] is None:
                raise CheckpointError("train.ema is on but the checkpoint holds no EMA weights")
            parts.ema.load_state_dict(ckpt["ema"])
        self.state = TrainState(**ckpt["state"])
        rng = ckpt["rng"]
        if len(rng) != self.ctx.world_size:
            logger.warning(
                "The checkpoint was written by %d processes and this job has %d: the run "
                "continues, but not bit-for-bit as it would have.",
                len(rng),
                self.ctx.world_size,
            )
        restore_rng_state(rng[min(self.ctx.rank, len(rng) - 1)])
        self.run.forget_after(self.state.iteration)
        # A run stopped after its last evaluation still reports that evaluation as final.
        evaluations = read_jsonl(self.run.evals)
        if evaluations:
            last = evaluations[-1]
            self.last_metrics = {k: v for k, v in last.items() if k not in ("epoch", "iter")}
        logger.info(
            "Resumed at epoch %d, iteration %d of the epoch (global %d)",
            self.state.epoch + 1,
            self.state.batch_in_epoch,
            self.state.iteration,
        )


def _move(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested lists, tuples and dicts to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _move(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device) for v in obj)
    return obj
