"""Run a ladder: expand it, train what is missing, write the report (`tools/ablate.py`)."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from detect_tricks.ablation.ladder import Ladder, Run, expand_runs, load_ladder, select_runs
from detect_tricks.ablation.report import collect, markdown_table, plot_results
from detect_tricks.ablation.runner import JobResult, check_plan, job_command, jobs_of, run_jobs
from detect_tricks.core.config_loader import load_config
from detect_tricks.core.errors import ConfigError
from detect_tricks.tasks.table import TASKS
from detect_tricks.utils.progress import format_duration

logger = logging.getLogger(__name__)


def default_out(ladder_path: Path) -> Path:
    return Path("runs") / "ablations" / ladder_path.stem


@dataclass(frozen=True)
class Selection:
    """What the command line changes in a ladder: overrides after the switches' (e.g. a
    longer schedule), the runs to train (with their baseline and all) and the seeds (in
    place of the ladder's: a costly run at one seed first, the others later)."""

    overrides: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()

    def apply(self, ladder_path: Path) -> tuple[Ladder, list[Run]]:
        ladder = replace(load_ladder(ladder_path), last=self.overrides)
        if self.seeds:
            ladder = replace(ladder, seeds=list(self.seeds))
        return ladder, select_runs(expand_runs(ladder), list(self.runs))

    def arguments(self) -> str:
        shown = "".join(f" --set {shlex.quote(o)}" for o in self.overrides)
        shown += f" --runs {','.join(self.runs)}" if self.runs else ""
        return shown + (f" --seeds {','.join(map(str, self.seeds))}" if self.seeds else "")


def ablate(
    ladder_path: Path,
    out: Path | None = None,
    jobs_at_once: int = 1,
    dry_run: bool = False,
    overwrite: bool = False,
    report_only: bool = False,
    selection: Selection = Selection(),
) -> int:
    """Train the ladder's missing runs and write ablation.{json,md,png} into `out`;
    returns the number of runs that failed."""
    ladder, runs = selection.apply(ladder_path)
    out = out or default_out(ladder_path)
    check_runs(ladder, runs)
    jobs = jobs_of(ladder, runs, out)
    if report_only:
        check_plan(ladder, runs, out, overwrite=False, store=False)
    if dry_run:
        states = [job.state() for job in jobs]
        for job, state in zip(jobs, states, strict=True):
            shown = (
                "skip (finished)" if state == "finished" else shlex.join(job_command(ladder, job))
            )
            logger.info("%s: %s", job.label, shown)
        logger.info(
            "%d runs x %d seeds = %d jobs: %d finished (skipped), %d to resume, %d new",
            len(runs),
            len(ladder.seeds),
            len(jobs),
            states.count("finished"),
            states.count("interrupted"),
            states.count("new"),
        )
        return 0
    failed: list[JobResult] = []
    if not report_only:
        check_plan(ladder, runs, out, overwrite)
        todo = sum(job.state() != "finished" for job in jobs)
        logger.info(
            "%s: %d runs x %d seeds, %d to train (%d at a time) in %s",
            ladder_path,
            len(runs),
            len(ladder.seeds),
            todo,
            jobs_at_once,
            out,
        )

        def report(result: JobResult, done: int, total: int) -> None:
            summary = result.job.directory / "summary.json"
            final = json.loads(summary.read_text()).get("final") if summary.is_file() else None
            shown = f"{ladder.metric} {final[ladder.metric]:.4f}" if final else "no result"
            if result.returncode:
                shown = f"FAILED (exit {result.returncode}, see {result.output})"
                failed.append(result)
            logger.info(
                "[%d/%d] %s: %s (%s)",
                done,
                total,
                result.job.label,
                shown,
                format_duration(result.seconds),
            )

        try:
            run_jobs(ladder, jobs, jobs_at_once, report)
        except (KeyboardInterrupt, SystemExit) as stop:
            logger.warning(
                "stopped: the running trainings saved a checkpoint and exited; "
                "the same command resumes the ladder"
            )
            raise SystemExit(130 if isinstance(stop, KeyboardInterrupt) else stop.code) from None
    # The ladder as read at the start: the file may have been edited during the runs.
    write_report(ladder, runs, out, report_command(ladder_path, out, selection))
    return len(failed)


def check_runs(ladder: Ladder, runs: list[Run]) -> None:
    """Every run's config as training will read it, checked before anything trains (a
    typo in a switch would otherwise show only when that run starts, after the others)."""
    config_class = TASKS[ladder.task].config_class
    for run in runs:
        try:
            load_config(ladder.base, config_class, list(run.overrides))
        except ConfigError as err:
            raise ConfigError(f"{ladder.source}, run {run.name}: {err}") from None


def report_command(ladder_path: Path, out: Path, selection: Selection) -> str:
    """The command that makes the report, as the report shows it."""
    command = f"python tools/ablate.py {ladder_path}{selection.arguments()}"
    if out != default_out(ladder_path):
        command += f" --out {out}"
    return command


def write_report(ladder: Ladder, runs: list[Run], out: Path, command: str) -> None:
    """ablation.json, ablation.md and ablation.png from the finished runs in `out`."""
    results = collect(ladder, runs, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(
        json.dumps({"ladder": str(ladder.source), "command": command, "runs": results}, indent=2)
        + "\n"
    )
    (out / "ablation.md").write_text(markdown_table(ladder, results, command))
    plot_results(ladder, results, out / "ablation.png")
    logger.info("Wrote %s, ablation.md and ablation.png", out / "ablation.json")
    sys.stdout.write((out / "ablation.md").read_text())
