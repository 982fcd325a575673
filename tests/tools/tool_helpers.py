"""Helpers for the tool tests: run a tool as a subprocess, train in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from detect_tricks.core.config_loader import load_config
from detect_tricks.engine.launch import train
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.task import Task
from detect_tricks.utils.distributed import DistContext
from detect_tricks.utils.progress import setup_logging

ROOT = Path(__file__).resolve().parents[2]


def run_tool(*args: str, torchrun: int = 0, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python tools/X.py args...` (or under torchrun with N processes) from the root."""
    launcher = [sys.executable]
    if torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    return subprocess.run(
        [*launcher, *args],
        cwd=ROOT,
        env=tool_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tool_environment() -> dict[str, str]:
    """The environment tools run in here: one thread each, output unbuffered."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train_in_process(
    task: Task, config_file: Path, out: Path, overrides: list[str]
) -> RunDirectory:
    """Train `task` as its tool does (`engine/launch.py: train`), in this process, one CPU
    process."""
    cfg = load_config(config_file, task.config_class, overrides)
    run = RunDirectory(out)
    run.prepare(resume=False)
    setup_logging(run.log, is_main=True)
    train(task, cfg, run, DistContext(), checkpoint=None)
    return run
