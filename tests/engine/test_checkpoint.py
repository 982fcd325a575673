"""Atomic saves, weights-only loading, RNG state round trip."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from detect_tricks.core.errors import CheckpointError, RunDirectoryError
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.utils.checkpoint import (
    atomic_copy,
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)


def test_interrupted_save_leaves_the_old_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"weights": torch.ones(3), "iteration": 1}, path)

    # Simulate a kill after the temp file is fully written, before the rename.
    def killed(src, dst):
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"weights": torch.zeros(3), "iteration": 2}, path)
    monkeypatch.undo()
    old = load_checkpoint(path)
    assert old["iteration"] == 1 and torch.equal(old["weights"], torch.ones(3))
    assert list(tmp_path.iterdir()) == [path]  # the temp file was removed


def test_torn_temp_file_does_not_touch_the_target(tmp_path):
    path = tmp_path / "last.pt"
    atomic_save({"iteration": 1}, path)
    (tmp_path / ".last.pt.999.tmp").write_bytes(b"PK\x03\x04 half a zip")  # a killed writer
    assert load_checkpoint(path)["iteration"] == 1


def test_atomic_copy(tmp_path):
    atomic_save({"iteration": 7}, tmp_path / "last.pt")
    atomic_copy(tmp_path / "last.pt", tmp_path / "best.pt")
    assert load_checkpoint(tmp_path / "best.pt")["iteration"] == 7


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"payload": os.getcwd, "note": object()}, path)  # arbitrary objects
    with pytest.raises(CheckpointError, match="weights-only load refuses"):
        load_checkpoint(path)


def test_missing_or_corrupt_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at .*absent.pt"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt is not a readable PyTorch file"):
        load_checkpoint(tmp_path / "junk.pt")


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    atomic_save({"rng": capture_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(10)
    np.random.seed(20)
    torch.manual_seed(30)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_a_failed_write_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    def full_disk(obj, f):
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 64")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointError) as err:
        atomic_save({"step": 2}, path)
    assert str(err.value).startswith(f"could not write the checkpoint {path} (")
    assert str(err.value).endswith("the previous last.pt is intact")
    monkeypatch.undo()
    assert load_checkpoint(path) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_a_run_directory_that_cannot_be_written_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunDirectoryError, match=f"cannot write the run directory {blocker}/run"):
        RunDirectory(blocker / "run").prepare(resume=False)
