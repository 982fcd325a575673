"""Configs, the command line, checkpoints and weight files: each bad one is one `error:`
line (exit 2) or an exception naming the file and the key; nothing from a file runs code."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from detect_tricks.commands import train_det
from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import load_config
from detect_tricks.core.errors import CheckpointError, ConfigError, WeightsError
from detect_tricks.inference.detector import Detector
from detect_tricks.models.weights import load_weights, read_state_dict
from detect_tricks.utils.checkpoint import atomic_save, load_checkpoint
from robustness.case import Case, raises


def config(text: str, *fragments: str, overrides: tuple[str, ...] = ()):
    def check(tmp_path: Path, capsys) -> None:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        with raises(ConfigError, *fragments):
            load_config(path, DetConfig, overrides)

    return check


def command_line(*args: str, fragments: tuple[str, ...], setup=None):
    """train_det's main with `args`: exit 2 and one `error:` line holding the fragments."""

    def check(tmp_path: Path, capsys) -> None:
        if setup is not None:
            setup(tmp_path)
        argv = [a.replace("TMP", str(tmp_path)) for a in args]
        saved = sys.argv
        sys.argv = ["train_det.py", *argv]
        try:
            with pytest.raises(SystemExit) as exited:
                train_det.main()
        finally:
            sys.argv = saved
        err = capsys.readouterr().err
        assert exited.value.code == 2, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        for fragment in fragments:
            assert fragment.replace("TMP", str(tmp_path)) in lines[0], lines[0]

    return check


def _config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("train: {epochs: 2}\n")


def _existing_run(tmp_path: Path) -> None:
    _config_file(tmp_path)
    atomic_save({"format": "x"}, tmp_path / "run" / "checkpoints" / "last.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def checkpoint(write, *fragments: str, loader=load_checkpoint):
    def check(tmp_path: Path, capsys) -> None:
        path = tmp_path / "ckpt.pt"
        write(path)
        with raises((CheckpointError, WeightsError), str(path), *fragments):
            loader(path)
        assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()

    return check


def _malicious(path: Path) -> None:
    torch.save({"model": _Evil()}, path)


def _truncated(path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zip_without_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/readme.txt", "not a checkpoint")


def _not_ours(path: Path) -> None:
    torch.save({"model": {"w": torch.zeros(2)}, "metadata": {}}, path)


def _strings(path: Path) -> None:
    torch.save({"state_dict": {"w": "not a tensor"}}, path)


def _mismatched_weights(tmp_path: Path, capsys) -> None:
    model = nn.Linear(3, 2)
    with raises(WeightsError, "file.pt", "weight: file (2, 4) vs model (2, 3)"):
        load_weights(model, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "file.pt")


def _bad_safetensors(tmp_path: Path, capsys) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(Exception) as err:
        read_state_dict(path)
    assert "garbage" not in type(err.value).__name__ and not isinstance(err.value, SystemError)


CONFIG = [
    Case("config", "unknown key", "error naming key, section, closest name", config("optim: {lrr: 0.1}\n", "unknown key 'lrr' in section 'optim'", "Did you mean 'lr'")),
    Case("config", "unknown section", "error listing the sections", config("optimizer: {lr: 0.1}\n", "optimizer")),
    Case("config", "wrong type", "error naming key, type and value", config("train: {epochs: ten}\n", "'train.epochs' expects int", "'ten'")),
    Case("config", "value not among the choices", "error naming the choices", config("train: {amp: fp8}\n", "'train.amp'", "fp8")),
    Case("config", "negative epochs", "error naming the key", config("train: {epochs: -1}\n", "train.epochs")),
    Case("config", "precise_bn: yes-please", "error naming the choices", config("eval: {precise_bn: maybe}\n", "'eval.precise_bn' expects bool or one of 'auto'")),
    Case("config", "precise_bn_batches: 0", "error naming the key", config("eval: {precise_bn_batches: 0}\n", "eval.precise_bn_batches")),
    Case("config", "YAML that builds a Python object", "refused (safe loader)", config("train: !!python/object/apply:os.system ['touch PWNED']\n", "")),
    Case("config", "YAML not a mapping", "error", config("- 1\n- 2\n", "")),
    Case("config", "--set without '='", "error with an example", config("{}\n", "expected KEY=VALUE", overrides=("optim.lr",))),
    Case("config", "--set of an unknown key", "error naming the key", config("{}\n", "'nope'", overrides=("optim.nope=1",))),
]  # fmt: skip

CLI = [
    Case("CLI", "train without --config", "one error line, exit 2", command_line(fragments=("--config is required",))),
    Case("CLI", "config file missing", "one error line naming the file", command_line("--config", "TMP/none.yaml", fragments=("none.yaml",))),
    Case("CLI", "--resume with no run", "one error line naming the checkpoint", command_line("--out", "TMP/run", "--resume", fragments=("TMP/run/checkpoints/last.pt",))),
    Case("CLI", "new run over an existing one", "refused, naming --resume / --overwrite", command_line("--config", "TMP/c.yaml", "--out", "TMP/run", fragments=("already holds a run", "--overwrite"), setup=_existing_run)),
    Case("CLI", "--out under a file", "one error line naming the folder", command_line("--config", "TMP/c.yaml", "--out", "TMP/c.yaml/run", fragments=("cannot write the run directory TMP/c.yaml/run",), setup=_config_file)),
    Case("CLI", "--resume of a foreign file", "one error line: not a training checkpoint (was: KeyError traceback)", command_line("--out", "TMP/run", "--resume", fragments=("TMP/run/checkpoints/last.pt is not a checkpoint of tools/train_cls.py or tools/train_det.py",), setup=_existing_run)),
]  # fmt: skip

CHECKPOINTS = [
    Case("checkpoints", "pickle that runs os.system", "refused by the weights-only load; nothing runs", checkpoint(_malicious, "weights-only load refuses")),
    Case("checkpoints", "truncated checkpoint", "error naming the file", checkpoint(_truncated, "not a readable PyTorch file")),
    Case("checkpoints", "zip without a pickle", "error naming the file", checkpoint(_zip_without_pickle, "not a readable PyTorch file")),
    Case("checkpoints", "empty file", "error naming the file", checkpoint(lambda p: p.write_bytes(b""), "not a readable PyTorch file")),
    Case("checkpoints", "a directory", "error naming it", checkpoint(lambda p: p.mkdir(), "no checkpoint file")),
    Case("checkpoints", "a checkpoint of another tool to Detector", "error: not a checkpoint of train_det", checkpoint(_not_ours, "not a checkpoint of tools/train_det.py", loader=Detector.from_checkpoint)),
    Case("checkpoints", "weights that are not tensors", "error naming the file", checkpoint(_strings, "does not hold a state dict of tensors", loader=read_state_dict)),
    Case("checkpoints", "weights of other shapes", "error listing each mismatch", _mismatched_weights),
    Case("checkpoints", "garbage .safetensors", "the library's error, not a crash", _bad_safetensors),
]  # fmt: skip


@pytest.mark.parametrize("case", CONFIG + CLI + CHECKPOINTS, ids=str)
def test_inputs(case: Case, tmp_path: Path, capsys) -> None:
    case.check(tmp_path, capsys)
