"""`make demo` (tools/demo.py) end to end on a small generated set, shortened with --set,
and its one-line error for a --data folder without annotations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from detect_tricks.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_demo_trains_evaluates_and_says_where_the_run_is(tmp_path):
    data = generate(tmp_path / "shapes", 24, seed=1)
    out = tmp_path / "run"
    quick = ["train.epochs=2", "eval.interval=1", "model.width=0.125", "tricks.mixup_off_epochs=1"]
    command = [sys.executable, "tools/demo.py", "--data", str(data), "--out", str(out)]
    for item in quick:
        command += ["--set", item]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert f"Run directory:  {out}" in done.stdout
    ap_line = next(line for line in done.stdout.splitlines() if line.startswith("COCO AP:"))
    assert f"{summary['final']['AP']:.3f}" in ap_line and "(validation, 2 epochs)" in ap_line
    assert (out / "plots" / "val_predictions.png").is_file()


def test_a_data_folder_without_annotations_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "tools/demo.py", "--data", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: --data {tmp_path}: no annotations/instances_train*.json"
