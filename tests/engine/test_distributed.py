"""Two gloo processes of batch 4 train exactly like one process of batch 8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from tiny_task import make_trainer, tiny_config

from detect_tricks.engine.run_dir import read_jsonl

SCRIPT = Path(__file__).with_name("ddp_tiny.py")


def test_two_processes_equal_one_process_with_the_global_batch(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--out",
        str(out),
        "--epochs",
        "2",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    single, loader, sampler = make_trainer(
        tmp_path / "one", tiny_config(epochs=2, ema=True), evaluate=False
    )
    single.fit(loader, sampler)
    distributed = torch.load(out / "final.pt", weights_only=True)
    for name, value in single.parts.module.state_dict().items():
        torch.testing.assert_close(distributed[name], value, rtol=0, atol=1e-6, msg=name)

    # Rank 0 alone wrote the logs, and the logged losses are means over both processes.
    ddp_metrics, one_metrics = read_jsonl(out / "metrics.jsonl"), read_jsonl(single.run.metrics)
    assert (
        [m["iter"] for m in ddp_metrics] == [m["iter"] for m in one_metrics] == [2, 4, 6, 8, 10, 12]
    )
    for a, b in zip(ddp_metrics, one_metrics, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5
    assert (out / "checkpoints" / "last.pt").is_file()
