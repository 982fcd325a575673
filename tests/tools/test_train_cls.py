"""tools/train_cls.py and tools/eval_cls.py end to end on a tiny generated image folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tool_helpers import run_tool, train_in_process

from detect_tricks.engine.run_dir import RunDirectory, read_jsonl
from detect_tricks.tasks.table import CLASSIFICATION
from detect_tricks.utils.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def flowers(tmp_path_factory) -> Path:
    """Two classes (reddish, bluish) of 40x40 images: 4 train and 2 val each."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for label, channel in (("red", 0), ("blue", 2)):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 80, (40, 40, 3), dtype=np.uint8)
                image[..., channel] += 150
                Image.fromarray(image).save(root / split / label / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def config_file(flowers, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(
        f"""model: {{arch: resnet18_d, width: 0.125, num_classes: 2}}
data: {{root: {flowers}, train_size: 32, eval_size: 32}}
schedule: {{steps: [1]}}
train: {{epochs: 1, batch_size: 4, workers: 0, log_interval: 1}}
eval: {{batch_size: 4}}
"""
    )
    return path


def _train_in_process(config_file: Path, out: Path, overrides: list[str]) -> RunDirectory:
    return train_in_process(CLASSIFICATION, config_file, out, overrides)


@pytest.fixture(scope="module")
def baseline(config_file, tmp_path_factory) -> RunDirectory:
    return _train_in_process(config_file, tmp_path_factory.mktemp("baseline"), [])


SWITCHES = {
    "linear_scaling": ["optim.linear_scaling=true"],
    "warmup": ["schedule.warmup_epochs=0.5"],
    "cosine": ["schedule.name=cosine"],
    "zero_gamma": ["model.zero_gamma=true"],
    "no_bias_decay": ["optim.no_bias_decay=true"],
    "plain_sgd": ["optim.nesterov=false"],
    "bf16": ["train.amp=bf16"],
    "label_smoothing": ["tricks.label_smoothing=0.1"],
    "mixup": ["tricks.mixup=true"],
    "ema": ["train.ema=true"],
    "channels_last": ["train.channels_last=true"],
}


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_each_trick_switch_trains_two_finite_steps_and_does_what_it_says(
    switch, baseline, config_file, tmp_path
):
    run = _train_in_process(config_file, tmp_path, SWITCHES[switch])
    steps, reference = read_jsonl(run.metrics), read_jsonl(baseline.metrics)
    assert len(steps) == 2 and all(math.isfinite(s["loss"]) for s in steps)
    final, initial = load_checkpoint(run.last), load_checkpoint(baseline.last)
    # EMA leaves training untouched: its effect is a second set of weights, checked below.
    if switch != "ema":
        changed = any(
            not torch.equal(final["model"][k], initial["model"][k]) for k in final["model"]
        )
        assert changed, "the switch left the weights exactly as in the baseline"
    first, base_first = steps[0], reference[0]
    if switch == "linear_scaling":
        assert first["lr"] == pytest.approx(0.1 * 4 / 256)
    elif switch == "warmup":
        assert (steps[0]["lr"], steps[1]["lr"]) == (0.0, pytest.approx(0.1))
    elif switch == "cosine":
        assert steps[1]["lr"] == pytest.approx(0.05)
        assert reference[1]["lr"] == pytest.approx(0.1)
    elif switch in ("zero_gamma", "label_smoothing", "mixup", "bf16"):
        assert first["loss"] != pytest.approx(base_first["loss"], abs=1e-6)
    elif switch == "ema":
        assert final["ema"] is not None and final["ema"]["updates"] == 2
        averaged = final["ema"]["module"]
        assert any(not torch.equal(averaged[k], final["model"][k]) for k in averaged)
    elif switch == "channels_last":
        assert first["loss"] == pytest.approx(base_first["loss"], rel=1e-4)


def test_distillation_from_a_checkpoint_of_this_tool(baseline, config_file, tmp_path):
    teacher = baseline.best
    run = _train_in_process(
        config_file, tmp_path, ["tricks.distill=true", f"tricks.distill_teacher={teacher}"]
    )
    first = read_jsonl(run.metrics)[0]
    assert math.isfinite(first["loss_kd"]) and first["loss_kd"] >= 0
    assert first["loss"] == pytest.approx(
        0.5 * first["loss_cls"] + 0.5 * first["loss_kd"], rel=1e-5
    )


def test_run_directory_of_a_classification_run(baseline):
    evals = read_jsonl(baseline.evals)
    assert len(evals) == 1 and {"top1", "top5", "loss"} <= set(evals[0])
    assert load_checkpoint(baseline.best)["metadata"]["classes"] == ["blue", "red"]


def test_cli_resume_extends_a_finished_run(config_file, tmp_path):
    out = tmp_path / "run"
    first = run_tool("tools/train_cls.py", "--config", str(config_file), "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    again = run_tool("tools/train_cls.py", "--config", str(config_file), "--out", str(out))
    assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = run_tool(
        "tools/train_cls.py", "--out", str(out), "--resume", "--set", "train.epochs=2"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["epochs"], summary["iterations"]) == (2, 4)
    assert [e["epoch"] for e in read_jsonl(out / "eval.jsonl")] == [1, 2]

    evaluated = run_tool(
        "tools/eval_cls.py",
        "--checkpoint",
        str(out / "checkpoints/last.pt"),
        "--out",
        str(tmp_path / "eval.json"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["images"] == 4
    assert result["top1"] == pytest.approx(read_jsonl(out / "eval.jsonl")[-1]["top1"])


def test_cli_user_errors_are_one_clear_line(config_file, tmp_path):
    result = run_tool(
        "tools/train_cls.py",
        "--config",
        str(config_file),
        "--out",
        str(tmp_path),
        "--set",
        "optim.lrr=1",
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --set optim.lrr=1: unknown key 'lrr'")
    assert "Traceback" not in result.stderr
    assert run_tool("tools/train_cls.py", "--help").returncode == 0
    assert run_tool("tools/eval_cls.py", "--help").returncode == 0


def test_two_processes_under_torchrun(config_file, tmp_path):
    out = tmp_path / "ddp"
    result = run_tool(
        "tools/train_cls.py", "--config", str(config_file), "--out", str(out), torchrun=2
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_jsonl(out / "metrics.jsonl")) == 2  # rank 0 alone wrote 2 steps
    # the two processes' gathered evaluation equals one process evaluating the weights
    alone = run_tool(
        "tools/eval_cls.py",
        "--checkpoint",
        str(out / "checkpoints" / "last.pt"),
        "--out",
        str(tmp_path / "alone.json"),
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    single = json.loads((tmp_path / "alone.json").read_text())
    gathered = read_jsonl(out / "eval.jsonl")[-1]
    assert single["top1"] == pytest.approx(gathered["top1"]) and single["top5"] == pytest.approx(
        gathered["top5"]
    )
