"""What a run prints: a tqdm bar on a terminal, one line per log interval otherwise.

Everything goes through the `detect_tricks` logger. On rank 0 it prints to stdout and
appends to the run's `log.txt`; on other ranks only warnings reach stderr. The interval
lines always reach `log.txt`; on a terminal the bar stands in for them on screen.
"""

from __future__ import annotations

import datetime
import logging
import sys
from pathlib import Path

from tqdm import tqdm

PACKAGE_LOGGER = "detect_tricks"  # the parent of every module's getLogger(__name__)
_FILE_ONLY = "file_only"


class _TqdmStreamHandler(logging.StreamHandler):
    """Writes above an active progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()  # a log file or pipe shows each line as it happens
        except Exception:
            self.handleError(record)


def setup_logging(log_file: Path | None, is_main: bool) -> logging.Logger:
    """Route the package logger to stdout and `log_file` (rank 0) or stderr (others)."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not is_main:
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("[rank %(process)d] %(levelname)s %(message)s"))
        logger.addHandler(handler)
        return logger
    screen = _TqdmStreamHandler(sys.stdout)
    screen.addFilter(lambda record: not getattr(record, _FILE_ONLY, False))
    screen.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(screen)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, mode="a")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(to_file)
    return logger


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(seconds, 0.0))))


class Progress:
    """Shows epoch, iteration, loss, lr, images/s and the run's ETA on rank 0.

    Args:
        enabled: False on ranks other than 0.
        interactive: draw a bar (stdout is a terminal) instead of printing interval lines.
    """

    def __init__(self, enabled: bool, interactive: bool | None = None) -> None:
        self.enabled = enabled
        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.logger = logging.getLogger(__name__)
        self.bar: tqdm | None = None
        self.seconds_per_iter: float | None = None

    def start_epoch(self, epoch: int, epochs: int, total: int, done: int) -> None:
        """Begin the bar (or header) of epoch `epoch` (0-based) with `done` of `total` done."""
        self.epoch_label = f"epoch {epoch + 1}/{epochs}"
        self.total = total
        if self.enabled and self.interactive:
            self.bar = tqdm(
                total=total,
                initial=done,
                desc=self.epoch_label,
                file=sys.stdout,
                dynamic_ncols=True,
                leave=False,
            )

    def update(self, step_seconds: float) -> None:
        """Count one finished iteration that took `step_seconds` (data wait included)."""
        if self.seconds_per_iter is None:
            self.seconds_per_iter = step_seconds
        self.seconds_per_iter = 0.9 * self.seconds_per_iter + 0.1 * step_seconds
        if self.bar is not None:
            self.bar.update(1)

    def report(self, record: dict[str, float], batch: int, remaining_iters: int) -> None:
        """Show one log interval's means: on the bar's postfix, or as a line."""
        if not self.enabled:
            return
        eta = format_duration((self.seconds_per_iter or 0.0) * remaining_iters)
        terms = " ".join(
            f"{k.removeprefix('loss_')} {v:.4g}" for k, v in record.items() if k.startswith("loss_")
        )
        line = (
            f"{self.epoch_label} iter {batch}/{self.total} | loss {record['loss']:.4f}"
            f" ({terms}) | lr {record['lr']:.3g} | {record['img_per_s']:.1f} img/s"
            f" | data {record['data_s']:.3f} s step {record['step_s']:.3f} s | eta {eta}"
        )
        if self.bar is not None:
            self.bar.set_postfix_str(
                f"loss {record['loss']:.4f} lr {record['lr']:.3g} "
                f"{record['img_per_s']:.1f} img/s eta {eta}",
                refresh=False,
            )
        self.logger.info(line, extra={_FILE_ONLY: self.bar is not None})

    def end_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
