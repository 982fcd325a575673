"""The run directory contract (docs/design.md §2) and the files rank 0 writes into it.

config.yaml            the resolved config
metrics.jsonl          one object per logged training step
eval.jsonl             one object per evaluation
summary.json           final and best metrics, epochs, iterations, images, seconds
log.txt                everything that was printed
tb/                    TensorBoard events of the same numbers (train.tensorboard: true)
checkpoints/last.pt    the latest checkpoint; best.pt the best by the eval metric
plots/                 curves and pictures
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from detect_tricks.core.config_loader import dump_config
from detect_tricks.core.errors import RunDirectoryError

logger = logging.getLogger(__name__)


class RunDirectory:
    """Paths of a run and the append-only JSON-lines writers; silent on ranks other than 0."""

    def __init__(self, root: str | Path, writes: bool = True) -> None:
        self.root = Path(root)
        self.writes = writes
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.evals = self.root / "eval.jsonl"
        self.summary = self.root / "summary.json"
        self.log = self.root / "log.txt"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.plots = self.root / "plots"
        self.tensorboard_dir = self.root / "tb"
        self._tensorboard: Any = None

    def prepare(self, resume: bool, overwrite: bool = False) -> None:
        """Create the folders; refuse to start a new run on top of an existing one.

        Args:
            resume: continue the run held here (`checkpoints/last.pt` must exist).
            overwrite: start afresh, deleting the previous run's logs and checkpoints.
        """
        if resume and not self.last.is_file():
            raise FileNotFoundError(
                f"--resume: no checkpoint at {self.last}; start the run without --resume"
            )
        if not resume and self.last.is_file() and not overwrite:
            raise FileExistsError(
                f"{self.root} already holds a run ({self.last} exists); pass --resume to "
                "continue it, --overwrite to start it again, or --out for another folder"
            )
        # rank 0 alone: the other processes of a job would see its first files
        held = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
        if self.writes and not resume and held and not overwrite:
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            raise FileExistsError(
                f"{self.root} already holds files ({shown}); pass --overwrite to start a run "
                "there (it replaces a run's own files only), or --out for another folder"
            )
        if not self.writes:
            return
        try:
            if overwrite and not resume:
                self._clear_previous_run()
            for folder in (self.checkpoints, self.plots):
                folder.mkdir(parents=True, exist_ok=True)
            for stale in self.checkpoints.glob(".*.tmp"):
                stale.unlink()
            probe = self.root / ".write_test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise RunDirectoryError(
                f"cannot write the run directory {self.root}: {err.strerror} "
                f"({err.filename}); choose another --out"
            ) from err

    def open_tensorboard(self) -> None:
        """Also write every number of `metrics.jsonl` (as `train/<key>`) and `eval.jsonl`
        (as `eval/<key>`) to TensorBoard event files in `tb/`, at their iteration."""
        if not self.writes:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise RunDirectoryError(
                "train.tensorboard needs the tensorboard package: pip install tensorboard"
            ) from err
        self._tensorboard = SummaryWriter(str(self.tensorboard_dir))

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def write_config(self, cfg: Any) -> None:
        if self.writes:
            dump_config(cfg, self.config)

    def append_metrics(self, record: dict[str, Any]) -> None:
        self._append(self.metrics, record)

    def append_eval(self, record: dict[str, Any]) -> None:
        self._append(self.evals, record)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Written atomically: a kill mid-write leaves the previous summary, not a torn one
        that would stop a ladder from reading its runs."""
        if self.writes:
            temporary = self.summary.with_name(self.summary.name + ".tmp")
            temporary.write_text(json.dumps(summary, indent=2) + "\n")
            os.replace(temporary, self.summary)

    def _clear_previous_run(self) -> None:
        """What a run and its tools wrote here: logs, config, checkpoints (and the files
        exported or evaluated beside them), plots, TensorBoard events. Anything else in
        the folder is the user's and stays."""
        for path in (self.metrics, self.evals, self.summary, self.log, self.config):
            path.unlink(missing_ok=True)
        written_beside = ("*.pt", "*.onnx", "*.onnx.data", "eval_*.json")
        for pattern in written_beside:
            for path in self.checkpoints.glob(pattern):
                path.unlink()
        for path in self.plots.glob("*.png"):
            path.unlink()
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)

    def forget_after(self, iteration: int) -> None:
        """Drop log records past `iteration`: on resume they would be logged twice."""
        if not self.writes:
            return
        for path in (self.metrics, self.evals):
            if path.is_file():
                kept = [r for r in read_jsonl(path) if r["iter"] <= iteration]
                temporary = path.with_name(path.name + ".tmp")
                temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
                os.replace(temporary, path)

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        if not self.writes:
            return
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            prefix = "eval" if path == self.evals else "train"
            for key, value in record.items():
                if key not in ("epoch", "iter") and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(f"{prefix}/{key}", value, record["iter"])
            self._tensorboard.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (empty when it does not exist). A line that is not
    a JSON object with an `iter`, such as the half-written last line of a killed run, is
    left out with a warning: the log must not block the resume it exists for."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or "iter" not in record:
            logger.warning("%s: line %d is not a complete log record; left out", path, number)
            continue
        records.append(record)
    return records
