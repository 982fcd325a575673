"""Training a ladder: one training-tool process per (run, seed), resumable.

Each job is the training command a user would run by hand (`tools/train_det.py` or
`tools/train_cls.py`, run as its module) in `<out>/<run>/seed<k>/`, so its run directory, log and
checkpoints are the usual ones. A job whose `summary.json` says finished is skipped; one
with a checkpoint is resumed with `--resume`; any other starts afresh. The ladder's plan
(base config text, seeds, each run's overrides) is stored in `<out>/plan.json`, and a
ladder that no longer matches it is refused: its finished runs would be stale.

A runner told to stop (SIGTERM from `kill`, `timeout` or a batch scheduler; Ctrl-C)
passes the stop on to the trainings it runs, which save a checkpoint and exit
(`engine/stop.py`), starts no waiting job, and exits once they have: nothing is left
training behind it, and the same command resumes the ladder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detect_tricks.ablation.ladder import Ladder, Run, plan_differences, plan_of
from detect_tricks.ablation.report import read_summary
from detect_tricks.core.errors import ConfigError
from detect_tricks.tasks.table import TASKS


@dataclass(frozen=True)
class Job:
    """One training run: a run of the ladder at one seed."""

    run: Run
    seed: int
    directory: Path

    @property
    def label(self) -> str:
        return f"{self.run.name} seed {self.seed}"

    def state(self) -> str:
        """`finished`, `interrupted` (a checkpoint to resume) or `new`."""
        summary = read_summary(self.directory)
        if summary is not None and summary.get("status") == "finished":
            return "finished"
        if (self.directory / "checkpoints" / "last.pt").is_file():
            return "interrupted"
        return "new"


def jobs_of(ladder: Ladder, runs: list[Run], out: Path) -> list[Job]:
    """Every (run, seed), seed-major: the first seed of every run comes first, so a
    partial ladder already compares every run."""
    return [Job(run, seed, out / run.name / f"seed{seed}") for seed in ladder.seeds for run in runs]


def job_command(ladder: Ladder, job: Job, python: str = sys.executable) -> list[str]:
    """The training command of `job` in its current state."""
    tool = [python, "-m", TASKS[ladder.task].tool]
    if job.state() == "interrupted":
        return [*tool, "--out", str(job.directory), "--resume"]
    overrides = [*job.run.overrides, f"train.seed={job.seed}"]
    sets = [arg for o in overrides for arg in ("--set", o)]
    # --overwrite clears the logs of an attempt killed before its first checkpoint.
    return [*tool, "--config", str(ladder.base), "--out", str(job.directory), "--overwrite", *sets]


def check_plan(
    ladder: Ladder, runs: list[Run], out: Path, overwrite: bool, store: bool = True
) -> None:
    """Store the plan in `out` (with `store`), refusing one that changed since the runs
    there (a report of runs trained by another ladder would mislabel them)."""
    plan_path = out / "plan.json"
    current = plan_of(ladder, runs)
    if plan_path.is_file():
        differing = plan_differences(json.loads(plan_path.read_text()), current)
        if differing and not overwrite:
            raise ConfigError(
                f"{ladder.source} no longer matches the runs in {out} (it differs in "
                f"{', '.join(differing)}); pass --overwrite to delete them and start again, "
                "or --out for another folder"
            )
        if differing:
            remove_ladder_runs(
                out, [*json.loads(plan_path.read_text()).get("runs", {}), *current["runs"]]
            )
    if store:
        out.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(current, indent=2) + "\n")


def remove_ladder_runs(out: Path, run_names: list[str]) -> None:
    """Delete what a ladder wrote in `out` (its runs' folders, reports and plan) and
    nothing else: other files there are the user's."""
    for name in set(run_names):
        shutil.rmtree(out / name, ignore_errors=True)
        point = (out / name).parent
        if point != out and point.is_dir() and not any(point.iterdir()):
            point.rmdir()  # a scale curve's point folder left empty
    for written in ("plan.json", "ablation.json", "ablation.md", "ablation.png"):
        (out / written).unlink(missing_ok=True)


def child_environment(jobs_at_once: int) -> dict[str, str]:
    """Share the cores between concurrent jobs unless the user set OMP_NUM_THREADS."""
    env = dict(os.environ)
    if jobs_at_once > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs_at_once))
    return env


@dataclass(frozen=True)
class JobResult:
    """How a job ended: its exit status (None: never started, the runner was stopping)."""

    job: Job
    returncode: int | None
    seconds: float

    @property
    def output(self) -> Path:
        return self.job.directory / "ablate_output.txt"


class ChildProcesses:
    """The trainings this runner runs now, so that a stop reaches them all."""

    def __init__(self) -> None:
        self.stopping = False
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run(self, command: list[str], **popen_args: Any) -> int | None:
        """Run `command` to its end and return its exit status; None, without starting
        it, once the runner is stopping."""
        with self._lock:
            if self.stopping:
                return None
            process = subprocess.Popen(command, **popen_args)
            self._running.add(process)
        try:
            return process.wait()
        finally:
            with self._lock:
                self._running.discard(process)

    def stop(self) -> None:
        """SIGTERM every running training (each saves a checkpoint and exits); start no more."""
        with self._lock:
            self.stopping = True
            for process in self._running:
                process.terminate()


@contextmanager
def stop_on_sigterm(children: ChildProcesses) -> Iterator[None]:
    """While running jobs, SIGTERM stops the children and raises SystemExit(143) (the
    status of a process ended by SIGTERM) in the runner; the previous handler comes back
    after. Only the main thread can install handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        children.stop()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job(ladder: Ladder, job: Job, env: dict[str, str], children: ChildProcesses) -> JobResult:
    """Train `job` to the end; its output goes to `<run dir>/ablate_output.txt`."""
    if children.stopping:
        return JobResult(job, None, 0.0)
    job.directory.mkdir(parents=True, exist_ok=True)
    command = job_command(ladder, job)
    started = time.perf_counter()
    with open(job.directory / "ablate_output.txt", "a") as output:
        output.write("$ " + " ".join(command) + "\n")
        output.flush()
        returncode = children.run(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    return JobResult(job, returncode, time.perf_counter() - started)


def run_jobs(
    ladder: Ladder,
    jobs: list[Job],
    jobs_at_once: int,
    report: Callable[[JobResult, int, int], None],
) -> list[JobResult]:
    """Train every job not yet finished, `jobs_at_once` at a time; `report` is called
    after each one ends (with its position and the total). A stop (SIGTERM, Ctrl-C)
    stops the running trainings and is raised again once they have exited."""
    pending = [job for job in jobs if job.state() != "finished"]
    env = child_environment(jobs_at_once)
    children = ChildProcesses()
    results: list[JobResult] = []
    pool = ThreadPoolExecutor(max_workers=jobs_at_once)
    try:
        with stop_on_sigterm(children):
            for result in pool.map(lambda job: run_job(ladder, job, env, children), pending):
                results.append(result)
                report(result, len(results), len(pending))
    except BaseException:
        children.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
