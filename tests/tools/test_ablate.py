"""tools/ablate.py: ladder expansion, statistics, plans, skip and resume, end to end."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tool_helpers import ROOT, run_tool, tool_environment

from detect_tricks.ablation.ladder import expand_runs, load_ladder
from detect_tricks.ablation.report import gains_without_interval
from detect_tricks.ablation.run_ladder import Selection, write_report
from detect_tricks.ablation.runner import Job, check_plan, job_command, jobs_of
from detect_tricks.ablation.stats import paired_difference, summarize, t_quantile_975
from detect_tricks.core.errors import ConfigError


def write_ladder(path: Path, base: Path, **extra: str) -> Path:
    body = {
        "task": "det",
        "base": str(base),
        "set": '["train.epochs=1"]',
        "switches": '{a: [x.a=1], b: [x.b=2, x.bb=3], c: ["x.c=[1, 2]"]}',
        "seeds": "[0, 1, 2]",
        **extra,
    }
    path.write_text("".join(f"{k}: {v}\n" for k, v in body.items()))
    return path


@pytest.fixture
def ladder_file(tmp_path) -> Path:
    base = tmp_path / "base.yaml"
    base.write_text("train: {epochs: 2}\n")
    return write_ladder(tmp_path / "ladder.yaml", base)


def test_the_ladder_expands_into_baseline_all_leave_one_out_and_stacked_runs(ladder_file):
    runs = {r.name: r for r in expand_runs(load_ladder(ladder_file))}
    assert list(runs) == ["baseline", "all", "all-a", "all-b", "all-c", "+a", "+a+b"]
    assert runs["baseline"].overrides == ("train.epochs=1",)
    assert runs["all"].overrides == (
        "train.epochs=1",
        "x.a=1",
        "x.b=2",
        "x.bb=3",
        "x.c=[1, 2]",
    )
    assert runs["all-b"].switches == ("a", "c")
    assert runs["+a+b"].overrides == ("train.epochs=1", "x.a=1", "x.b=2", "x.bb=3")


def test_add_one_runs_each_switch_alone_once(tmp_path, ladder_file):
    base = load_ladder(ladder_file).base
    both = write_ladder(tmp_path / "both.yaml", base, ladders="[stacked, add_one]")
    runs = {r.name: r for r in expand_runs(load_ladder(both))}
    assert list(runs) == ["baseline", "all", "+a", "+a+b", "+b", "+c"]  # +a is in both
    assert runs["+c"].overrides == ("train.epochs=1", "x.c=[1, 2]")


def test_ladder_kinds_can_be_chosen(tmp_path, ladder_file):
    base = load_ladder(ladder_file).base
    only = write_ladder(tmp_path / "loo.yaml", base, ladders="[leave_one_out]")
    assert [r.name for r in expand_runs(load_ladder(only))] == [
        "baseline",
        "all",
        "all-a",
        "all-b",
        "all-c",
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("task", "segment", "'task' expects det or cls"),
        ("seeds", "[0, 0]", "'seeds' expects a list of distinct integers"),
        ("switches", "{a: [nokey]}", "'a': a list of KEY=VALUE strings"),
        ("ladders", "[pyramid]", "'ladders' expects a subset"),
        ("metric", "top1", "'metric' expects one of"),
        ("colour", "red", "unknown key(s) colour"),
    ],
)
def test_a_bad_ladder_file_is_an_error_naming_file_and_key(tmp_path, key, value, message):
    path = write_ladder(tmp_path / "bad.yaml", tmp_path / "base.yaml", **{key: value})
    with pytest.raises(ConfigError, match=str(path)) as err:
        load_ladder(path)
    assert message in str(err.value)


def test_statistics_against_hand_computed_values():
    spread = summarize([0.2, 0.3, 0.4])
    assert spread.n == 3 and math.isclose(spread.mean, 0.3) and math.isclose(spread.std, 0.1)
    assert t_quantile_975(2) == 4.303 and t_quantile_975(100) == 1.96

    # Differences 0.1, 0.2, 0.0: mean 0.1, sd 0.1, half-width 4.303 * 0.1 / sqrt(3).
    wide = paired_difference({0: 0.5, 1: 0.7, 2: 0.6, 7: 0.9}, {0: 0.4, 1: 0.5, 2: 0.6})
    half = 4.303 * 0.1 / math.sqrt(3)
    assert wide.n == 3 and math.isclose(wide.mean, 0.1)
    assert math.isclose(wide.low, 0.1 - half) and math.isclose(wide.high, 0.1 + half)
    assert wide.verdict == "no measurable effect"

    # Differences -0.1, -0.11, -0.09: sd 0.01, the interval excludes zero.
    narrow = paired_difference({0: 0.3, 1: 0.29, 2: 0.31}, {0: 0.4, 1: 0.4, 2: 0.4})
    assert math.isclose(narrow.high, -0.1 + 4.303 * 0.01 / math.sqrt(3))
    assert narrow.verdict == "worse"
    assert paired_difference({0: 0.3}, {0: 0.4}) is None  # one pair: no interval


def test_job_state_decides_between_skip_resume_and_start(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    runs = expand_runs(ladder)
    jobs = jobs_of(ladder, runs, tmp_path / "out")
    assert [j.label for j in jobs[:2]] == ["baseline seed 0", "all seed 0"]  # seed-major
    job: Job = jobs[0]
    command = job_command(ladder, job)
    assert job.state() == "new" and "--overwrite" in command
    assert command[-2:] == ["--set", "train.seed=0"]
    (job.directory / "checkpoints").mkdir(parents=True)
    (job.directory / "checkpoints" / "last.pt").write_bytes(b"")
    assert job.state() == "interrupted"
    assert job_command(ladder, job)[-3:] == ["--out", str(job.directory), "--resume"]
    (job.directory / "summary.json").write_text(json.dumps({"status": "finished"}))
    assert job.state() == "finished"


def test_a_changed_ladder_is_refused_unless_overwrite(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    out = tmp_path / "out"
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    (out / "baseline").mkdir()
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)  # unchanged: fine
    ladder.base.write_text("train: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="differs in base_config"):
        check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    check_plan(ladder, expand_runs(ladder), out, overwrite=True)
    assert not (out / "baseline").exists()  # the stale runs are gone


def test_a_comment_a_pinned_default_or_more_seeds_keep_the_runs(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    out = tmp_path / "out"
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    (out / "baseline" / "seed0").mkdir(parents=True)
    # the same config as training reads it: a comment, and train.batch_size at its default
    ladder.base.write_text("# two epochs\ntrain: {epochs: 2, batch_size: 64}\n")
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    more_seeds = load_ladder(write_ladder(ladder_file, ladder.base, seeds="[0, 1, 2, 3, 4]"))
    check_plan(more_seeds, expand_runs(more_seeds), out, overwrite=False)
    assert (out / "baseline" / "seed0").is_dir()  # finished seeds are kept
    ladder.base.write_text("train: {epochs: 2, batch_size: 32}\n")  # a real change
    with pytest.raises(ConfigError, match="differs in base_config"):
        check_plan(more_seeds, expand_runs(more_seeds), out, overwrite=False)


def test_a_plan_written_before_resolved_configs_compares_the_text(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    out = tmp_path / "out"
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    plan = json.loads((out / "plan.json").read_text())
    plan["base_config"] = plan.pop("base_text")  # the old format: the base config's text
    (out / "plan.json").write_text(json.dumps(plan))
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)  # same text: fine
    (out / "plan.json").write_text(json.dumps(plan))
    ladder.base.write_text("# two epochs\ntrain: {epochs: 2}\n")
    with pytest.raises(ConfigError, match="differs in base_config"):
        check_plan(ladder, expand_runs(ladder), out, overwrite=False)


def test_a_two_run_ladder_end_to_end_then_skips_and_resumes(config_file, tmp_path):
    ladder = write_ladder(
        tmp_path / "tiny.yaml",
        config_file,
        set="[]",
        switches="{mixup: [tricks.mixup=true]}",
        seeds="[0, 1]",
        ladders="[]",
    )
    out = tmp_path / "ablation"
    first = run_tool("tools/ablate.py", str(ladder), "--out", str(out), timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[4/4] all seed 1: AP " in first.stdout
    report = json.loads((out / "ablation.json").read_text())
    assert set(report["runs"]) == {"baseline", "all"}
    for entry in report["runs"].values():
        assert sorted(entry["seeds"]) == ["0", "1"]
        ap = entry["stats"]["AP"]
        values = [seed["AP"] for seed in entry["seeds"].values()]
        assert math.isclose(ap["mean"], sum(values) / 2)
    assert report["runs"]["all"]["stats"]["AP"]["vs_baseline"]["n"] == 2
    table = (out / "ablation.md").read_text()
    assert f"python tools/ablate.py {ladder} --out {out}" in table
    assert table.count("\n| ") == 3  # header and two runs
    assert (out / "ablation.png").stat().st_size > 1000

    # Finished runs are skipped; a run stopped before its summary resumes from last.pt.
    (out / "all" / "seed1" / "summary.json").unlink()
    second = run_tool("tools/ablate.py", str(ladder), "--out", str(out), timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 to train" in second.stdout and "[1/1] all seed 1: AP " in second.stdout
    assert "--resume" in (out / "all" / "seed1" / "ablate_output.txt").read_text()


def _processes_mentioning(text: str) -> list[int]:
    """Pids of the live processes whose command line contains `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="lists processes through /proc")
def test_a_runner_stopped_by_sigterm_stops_its_training_and_starts_no_more(config_file, tmp_path):
    ladder = write_ladder(
        tmp_path / "long.yaml",
        config_file,
        set="[train.epochs=500]",
        switches="{mixup: [tricks.mixup=true]}",
        seeds="[0, 1]",
        ladders="[]",
    )
    out = tmp_path / "stopped"
    log = tmp_path / "runner.log"
    # Output to a file (read with a bound, never waiting on the runner) and a session of
    # its own, so that a failure here kills the runner and its trainings, not waits for
    # a 500-epoch ladder.
    with open(log, "w") as output_file:
        runner = subprocess.Popen(
            [sys.executable, "tools/ablate.py", str(ladder), "--out", str(out)],
            cwd=ROOT,
            env=tool_environment(),
            stdout=output_file,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        first = out / "baseline" / "seed0"
        deadline = time.monotonic() + 120
        while not (first / "checkpoints" / "last.pt").is_file():  # past its first epoch
            alive = runner.poll() is None and time.monotonic() < deadline
            assert alive, log.read_text()[-3000:]
            time.sleep(0.5)
        assert len(_processes_mentioning(str(first))) == 1  # the training the runner started
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(timeout=30)
    output = log.read_text()
    assert runner.returncode == 143, output[-3000:]
    assert "the same command resumes the ladder" in output
    assert _processes_mentioning(str(out)) == []  # nothing left training behind it
    started = [str(p.relative_to(out)) for p in out.glob("*/seed*")]
    assert started == ["baseline/seed0"]  # the three waiting jobs never started
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] != "finished"  # stopped, to be resumed


REAL_SWITCHES = (
    "{a: [tricks.mixup=true], b: [tricks.spp=true, optim.no_bias_decay=true], "
    'c: ["schedule.steps=[1, 2]"]}'
)


def test_dry_run_prints_the_commands_and_trains_nothing(tmp_path, ladder_file):
    out = tmp_path / "out"
    ladder = write_ladder(
        tmp_path / "real.yaml", load_ladder(ladder_file).base, switches=REAL_SWITCHES
    )
    result = run_tool("tools/ablate.py", str(ladder), "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 7 * 3 + 1
    assert lines[-1] == "7 runs x 3 seeds = 21 jobs: 0 finished (skipped), 0 to resume, 21 new"
    assert (
        lines[0].startswith("baseline seed 0: ")
        and "-m detect_tricks.commands.train_det" in lines[0]
    )
    assert not out.exists()


def test_command_line_overrides_come_last_and_runs_can_be_chosen(ladder_file):
    ladder, runs = Selection(("x.b=9",), ("all-a",)).apply(ladder_file)
    assert ladder.last == ("x.b=9",) and [r.name for r in runs] == ["baseline", "all", "all-a"]
    by_name = {r.name: r for r in runs}
    assert by_name["all"].overrides[-2:] == ("x.c=[1, 2]", "x.b=9")  # after the switch's x.b=2
    assert by_name["baseline"].overrides == ("train.epochs=1", "x.b=9")
    assert Selection(("x.b=9",), ("all-a",)).arguments() == " --set x.b=9 --runs all-a"
    with pytest.raises(ConfigError, match="--runs: unknown run"):
        Selection((), ("nope",)).apply(ladder_file)


def test_the_report_uses_the_ladder_read_at_the_start(tmp_path, ladder_file):
    """A ladder file edited (here: removed) while its runs train does not break the report
    written at their end."""
    ladder, runs = Selection().apply(ladder_file)
    ladder_file.unlink()
    write_report(ladder, runs, tmp_path / "out", "python tools/ablate.py x.yaml")
    assert "| all-b | 0 |" in (tmp_path / "out" / "ablation.md").read_text()


def _finished_run(directory: Path, ap: float, train_ap: float) -> None:
    directory.mkdir(parents=True)
    final = {"AP": ap, "AP50": ap, "AP75": ap, "train_AP": train_ap}
    summary = {"status": "finished", "final": final, "wall_seconds": 60.0}
    (directory / "summary.json").write_text(json.dumps(summary))


def test_a_scale_curve_compares_each_point_with_its_own_baseline(tmp_path, ladder_file):
    base = load_ladder(ladder_file).base
    curve = write_ladder(
        tmp_path / "curve.yaml",
        base,
        switches="{bof: [x.a=1]}",
        ladders="[add_one]",
        all="false",
        points="{240: [data.train_subset=240], 700: [data.train_subset=700]}",
        seeds="[0, 1, 2]",
    )
    ladder, runs = Selection(overrides=("train.epochs=9",)).apply(curve)
    assert [r.name for r in runs] == ["240/baseline", "240/+bof", "700/baseline", "700/+bof"]
    # common, then the point's, then the switch's, then the command line's overrides
    assert runs[1].overrides == (
        "train.epochs=1",
        "data.train_subset=240",
        "x.a=1",
        "train.epochs=9",
    )
    out = tmp_path / "out"
    gains = {"240": [-0.02, -0.03, -0.01], "700": [0.01, 0.03, 0.02]}
    for point, deltas in gains.items():
        for seed, delta in enumerate(deltas):
            _finished_run(out / point / "baseline" / f"seed{seed}", 0.3 + seed / 100, 0.5)
            _finished_run(out / point / "+bof" / f"seed{seed}", 0.3 + seed / 100 + delta, 0.4)
    write_report(ladder, runs, out, "python tools/ablate.py curve.yaml")
    results = json.loads((out / "ablation.json").read_text())["runs"]
    gain_700 = results["700/+bof"]["stats"]["AP"]["vs_baseline"]
    assert gain_700["mean"] == pytest.approx(0.02)
    # t(0.975, 2) = 4.303, std of (0.01, 0.03, 0.02) = 0.01: 0.02 -+ 4.303 * 0.01 / sqrt(3)
    assert gain_700["low"] == pytest.approx(0.02 - 4.3027 * 0.01 / math.sqrt(3), abs=1e-4)
    assert results["240/+bof"]["stats"]["AP"]["vs_baseline"]["mean"] == pytest.approx(-0.02)
    assert results["240/+bof"]["stats"]["train_AP"]["mean"] == pytest.approx(0.4)
    table = (out / "ablation.md").read_text()
    assert "train_AP mean +- std" in table and "AP vs all" not in table
    assert "| 700/+bof | 3 | 0.330 +- 0.017 |" in table  # (0.31, 0.34, 0.34)
    assert (out / "ablation.png").stat().st_size > 10_000


def test_a_curve_point_with_one_shared_seed_is_drawn_as_that_seeds_difference():
    def run(*values: float) -> dict:
        return {"seeds": {seed: {"AP": v} for seed, v in enumerate(values)}}

    results = {
        "240/baseline": run(0.125),
        "240/+bof": run(0.044, 0.050),  # seed 1 has no baseline to pair with
        "1868/baseline": run(0.17, 0.18, 0.16),
        "1868/+bof": run(0.07, 0.09, 0.08),  # an interval: drawn as a measured gain
    }
    [(point, gain)] = gains_without_interval(results, "+bof", "AP")
    assert point == 240.0 and gain == pytest.approx(-0.081)


def test_runs_chosen_in_a_scale_curve_bring_their_own_points_references(tmp_path, ladder_file):
    curve = write_ladder(
        tmp_path / "curve.yaml",
        load_ladder(ladder_file).base,
        switches="{bof: [x.a=1], recipe: [x.b=1]}",
        ladders="[add_one]",
        all="false",
        points="{240: [data.train_subset=240], 1868: [data.train_subset=1868]}",
    )
    _, runs = Selection((), ("1868/+bof",)).apply(curve)
    assert [r.name for r in runs] == ["1868/baseline", "1868/+bof"]
    _, runs = Selection((), ("240/+recipe", "1868/+bof")).apply(curve)
    assert [r.name for r in runs] == ["240/baseline", "240/+recipe", "1868/baseline", "1868/+bof"]


def test_seeds_from_the_command_line_replace_the_ladders(ladder_file):
    selection = Selection(("x.b=9",), ("all-a",), (0,))
    ladder, _ = selection.apply(ladder_file)
    assert ladder.seeds == [0] and load_ladder(ladder_file).seeds == [0, 1, 2]
    assert selection.arguments() == " --set x.b=9 --runs all-a --seeds 0"


@pytest.mark.parametrize("seeds", ["a", "1,1", "-1"])
def test_bad_seeds_on_the_command_line_are_one_line_errors(ladder_file, seeds):
    result = run_tool("tools/ablate.py", str(ladder_file), "--dry-run", "--seeds", seeds)
    assert result.returncode == 2
    assert "--seeds: expected distinct whole numbers" in result.stderr


def test_scale_curve_points_must_be_image_counts(tmp_path, ladder_file):
    base = load_ladder(ladder_file).base
    bad = write_ladder(tmp_path / "bad.yaml", base, points="{small: [data.train_subset=240]}")
    with pytest.raises(ConfigError, match="'points' expects a mapping: number of training images"):
        load_ladder(bad)


def test_a_setting_added_to_the_package_since_keeps_the_runs(tmp_path, ladder_file):
    """A plan stored before a new config key existed (the key at its default) still matches."""
    ladder = load_ladder(ladder_file)
    out = tmp_path / "out"
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    plan = json.loads((out / "plan.json").read_text())
    del plan["base_config"]["tricks"]["mixup_alpha"]  # as if the key were new
    (out / "plan.json").write_text(json.dumps(plan))
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    plan["base_config"]["tricks"]["gone_key"] = 1  # a stored setting that no longer exists
    (out / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(ConfigError, match="differs in base_config"):
        check_plan(ladder, expand_runs(ladder), out, overwrite=False)


def test_a_typo_in_a_switch_stops_the_ladder_before_anything_trains(tmp_path, ladder_file):
    base = load_ladder(ladder_file).base
    typo = write_ladder(tmp_path / "typo.yaml", base, switches="{iou: [tricks.iou_awaer=true]}")
    result = run_tool("tools/ablate.py", str(typo), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "run all: --set tricks.iou_awaer=true: unknown key 'iou_awaer'" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"switches": "{a/b: [tricks.spp=true]}"}, "names of letters, digits"),
        ({"all": "false"}, "[add_one] with all: false"),
    ],
)
def test_switch_names_and_all_false_are_checked(tmp_path, ladder_file, extra, message):
    bad = write_ladder(tmp_path / "bad.yaml", load_ladder(ladder_file).base, **extra)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_ladder(bad)


def test_overwrite_deletes_the_ladders_runs_and_keeps_the_users_files(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    out = tmp_path / "out"
    check_plan(ladder, expand_runs(ladder), out, overwrite=False)
    (out / "baseline" / "seed0").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    ladder.base.write_text("train: {epochs: 3}\n")
    check_plan(ladder, expand_runs(ladder), out, overwrite=True)
    assert not (out / "baseline").exists() and (out / "notes.txt").read_text() == "mine"


def test_a_torn_summary_reads_as_not_finished(tmp_path, ladder_file):
    ladder = load_ladder(ladder_file)
    job = Job(expand_runs(ladder)[0], 0, tmp_path / "run")
    job.directory.mkdir()
    (job.directory / "summary.json").write_text('{"status": "fini')
    assert job.state() == "new"
