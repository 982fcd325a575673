"""Training a ladder: one training-tool process per (run, seed), resumable.

Each job is the training command a user would run by hand (`tools/train_det.py` or
`tools/train_cls.py`, run as its module) in `<out>/<run>/seed<k>/`, so its run directory, log and
checkpoints are the usual ones. A job whose `summary.json` says finished is skipped; one
with a checkpoint is resumed with `--resume`; any other starts afresh. The ladder's plan
(base config text, seeds, each run's overrides) is stored in `<out>/plan.json`, and a
ladder that no longer matches it is refused: its finished runs would be stale.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from detect_tricks.ablation.ladder import TOOLS, Ladder, Run, plan_differences, plan_of
from detect_tricks.errors import ConfigError


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
        summary = self.directory / "summary.json"
        if summary.is_file() and json.loads(summary.read_text()).get("status") == "finished":
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
    tool = [python, "-m", TOOLS[ladder.task]]
    if job.state() == "interrupted":
        return [*tool, "--out", str(job.directory), "--resume"]
    overrides = [*job.run.overrides, f"train.seed={job.seed}"]
    sets = [arg for o in overrides for arg in ("--set", o)]
    # --overwrite clears the logs of an attempt killed before its first checkpoint.
    return [*tool, "--config", str(ladder.base), "--out", str(job.directory), "--overwrite", *sets]


def check_plan(ladder: Ladder, runs: list[Run], out: Path, overwrite: bool) -> None:
    """Store the plan in `out`, refusing one that changed since the runs there."""
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
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps(current, indent=2) + "\n")


def child_environment(jobs_at_once: int) -> dict[str, str]:
    """Share the cores between concurrent jobs unless the user set OMP_NUM_THREADS."""
    env = dict(os.environ)
    if jobs_at_once > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs_at_once))
    return env


@dataclass(frozen=True)
class JobResult:
    job: Job
    returncode: int
    seconds: float

    @property
    def output(self) -> Path:
        return self.job.directory / "ablate_output.txt"


def run_job(ladder: Ladder, job: Job, env: dict[str, str]) -> JobResult:
    """Train `job` to the end; its output goes to `<run dir>/ablate_output.txt`."""
    job.directory.mkdir(parents=True, exist_ok=True)
    command = job_command(ladder, job)
    started = time.perf_counter()
    with open(job.directory / "ablate_output.txt", "a") as output:
        output.write("$ " + " ".join(command) + "\n")
        output.flush()
        completed = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, check=False
        )
    return JobResult(job, completed.returncode, time.perf_counter() - started)


def run_jobs(
    ladder: Ladder,
    jobs: list[Job],
    jobs_at_once: int,
    report: Callable[[JobResult, int, int], None],
) -> list[JobResult]:
    """Train every job not yet finished, `jobs_at_once` at a time; `report` is called
    after each one ends (with its position and the total)."""
    pending = [job for job in jobs if job.state() != "finished"]
    env = child_environment(jobs_at_once)
    results: list[JobResult] = []
    with ThreadPoolExecutor(max_workers=jobs_at_once) as pool:
        for result in pool.map(lambda job: run_job(ladder, job, env), pending):
            results.append(result)
            report(result, len(results), len(pending))
    return results
