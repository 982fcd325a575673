"""`train.workers: auto` picks loader processes from the device and the usable cores."""

from __future__ import annotations

import pytest
import torch

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import load_config
from detect_tricks.core.errors import ConfigError
from detect_tricks.engine import setup
from detect_tricks.engine.setup import CPU_AUTO_WORKERS, resolve_workers
from detect_tricks.utils.distributed import DistContext

CPU = DistContext()
GPU = DistContext(device=torch.device("cuda", 0))  # a device object: no GPU is touched


def test_a_number_is_kept_whatever_the_device():
    assert resolve_workers(0, CPU) == 0
    assert resolve_workers(5, GPU) == 5


def test_auto_on_the_cpu_leaves_the_cores_to_the_training_threads():
    assert CPU_AUTO_WORKERS == 2
    assert resolve_workers("auto", CPU) == 2


@pytest.mark.parametrize(
    ("cores", "processes", "expected"),
    [(16, 1, 15), (16, 2, 7), (64, 8, 7), (4, 4, 2), (2, 1, 2)],
)
def test_auto_on_a_gpu_gives_this_process_its_share_of_the_cores_but_one(
    monkeypatch, cores, processes, expected
):
    monkeypatch.setattr(setup, "usable_cores", lambda: cores)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(processes))
    assert resolve_workers("auto", GPU) == expected


def test_usable_cores_follow_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(setup.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert setup.usable_cores() == 3


def test_the_config_takes_auto_or_a_count_and_refuses_the_rest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {arch: yolov3_resnet18_d}\n")
    assert load_config(path, DetConfig).train.workers == "auto"
    assert load_config(path, DetConfig, ["train.workers=3"]).train.workers == 3
    with pytest.raises(ConfigError, match=r"'train.workers' must be >= 0 or auto, got -1"):
        load_config(path, DetConfig, ["train.workers=-1"])
    with pytest.raises(ConfigError, match="train.workers"):
        load_config(path, DetConfig, ["train.workers=many"])
