"""When a run evaluates, what it does before (precise BN) and what it records after."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from detect_tricks.engine.plots import plot_curves
from detect_tricks.engine.run_dir import RunDirectory, read_jsonl
from detect_tricks.utils.progress import format_duration

Evaluator = Callable[[nn.Module], dict[str, float]]
PLOT_EVERY_S = 120.0  # redraw curves after an evaluation at most this often (~0.6 s each)

logger = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Evaluate every `interval` epochs and after the last; `best_key` (higher is better)
    picks `best.pt`; `before` runs on the model first (e.g. precise BN)."""

    evaluate: Evaluator
    interval: int = 1
    best_key: str | None = None
    before: Callable[[nn.Module], None] | None = None
    last_metrics: dict[str, float] | None = None
    plotted_at: float = field(default_factory=time.perf_counter)

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether to evaluate after `epoch` (1-based, just finished) of `epochs`."""
        return epoch % self.interval == 0 or epoch == epochs

    def run(
        self, model: nn.Module, epoch: int, iteration: int, run: RunDirectory, is_main: bool
    ) -> float | None:
        """Evaluate, log and append to eval.jsonl; returns the `best_key` metric."""
        started = time.perf_counter()
        if self.before is not None:
            self.before(model)
        metrics = self.evaluate(model)
        self.last_metrics = metrics
        run.append_eval({"epoch": epoch, "iter": iteration, **metrics})
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k)
        duration = format_duration(time.perf_counter() - started)
        logger.info("eval after epoch %d (%s): %s", epoch, duration, shown)
        if is_main and time.perf_counter() - self.plotted_at > PLOT_EVERY_S:
            plot_curves(run)
            self.plotted_at = time.perf_counter()
        return metrics[self.best_key] if self.best_key else None

    def remember_last(self, run: RunDirectory) -> None:
        """After a resume: the last evaluation written stays the final one until a new one
        (a run stopped after its last evaluation still reports it)."""
        evaluations = read_jsonl(run.evals)
        if evaluations:
            last = evaluations[-1]
            self.last_metrics = {k: v for k, v in last.items() if k not in ("epoch", "iter")}
