"""Atomic checkpoint files, safe loading, and the RNG state that makes resume exact.

A checkpoint is written to a temporary file beside its target, flushed and fsynced,
then renamed over the target: a process killed at any moment leaves either the old or
the new file, never a torn one. Files are read with `weights_only=True`, so a
checkpoint or weight file from elsewhere cannot run code when loaded; everything saved
here is therefore tensors, numbers, strings, lists, tuples and dicts.

This module owns the training checkpoint's format (`CHECKPOINT_FORMAT`): reading it
(`load_training_checkpoint` for resuming, `load_trained` for using the trained model,
`evaluated_weights` for its weights, the EMA's when the run kept one) and writing it
(`write_training_checkpoint`). `engine/run_state.py` only moves the engine's objects in
and out of the dict. docs/design.md, "Run directory", lists the keys.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect_tricks.core.errors import CheckpointError, NonFiniteLossError

CHECKPOINT_FORMAT = "detect_tricks/1"
# The key of the EMA's weights in its saved state (`engine/ema.py`, `ModelEma.state_dict`).
EMA_WEIGHTS_KEY = "module"


@dataclass(frozen=True)
class TrainedModel:
    """What a training checkpoint holds for using its model (not for resuming the run)."""

    config: dict[str, Any]  # the run's config as a dict (config_from_dict makes it typed)
    weights: dict[str, torch.Tensor]  # the evaluated weights: the EMA's when the run had one
    metadata: dict[str, Any]  # task facts, e.g. class names


def is_training_checkpoint(checkpoint: Any) -> bool:
    """Whether a loaded file is a checkpoint of tools/train_cls.py or tools/train_det.py."""
    return (
        isinstance(checkpoint, dict)
        and checkpoint.get("format") == CHECKPOINT_FORMAT
        and isinstance(checkpoint.get("config"), dict)
    )


def require_training_checkpoint(
    checkpoint: dict[str, Any], source: str, tool: str = "a detect_tricks training tool"
) -> None:
    """Raise a `CheckpointError` naming `source` and the expected writer `tool` unless
    `checkpoint` is a training checkpoint (its format and its config)."""
    if not is_training_checkpoint(checkpoint):
        raise CheckpointError(
            f"{source} is not a checkpoint of {tool} (format {checkpoint.get('format')!r}, "
            f"expected {CHECKPOINT_FORMAT!r} with its config)"
        )


def load_training_checkpoint(
    path: str | Path, tool: str = "a detect_tricks training tool"
) -> dict[str, Any]:
    """A training checkpoint, checked to be one; `tool` names the expected writer."""
    checkpoint = load_checkpoint(path)
    require_training_checkpoint(checkpoint, str(path), tool)
    return checkpoint


def evaluated_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a run evaluated: its EMA's when it kept one (train.ema), else the model's."""
    ema = checkpoint.get("ema")
    return ema[EMA_WEIGHTS_KEY] if isinstance(ema, dict) else checkpoint["model"]


TOOLS = {"det": "tools/train_det.py", "cls": "tools/train_cls.py"}
# Before checkpoints named their task, the metadata key told them apart.
LEGACY_TASK_KEYS = {"class_names": "det", "classes": "cls"}


def task_of(checkpoint: dict[str, Any]) -> str | None:
    """The task that wrote a training checkpoint: its `task` field, or for checkpoints of
    before that field, what its metadata holds; None when neither tells."""
    metadata = checkpoint.get("metadata") or {}
    if "task" in metadata:
        return metadata["task"]
    return next((task for key, task in LEGACY_TASK_KEYS.items() if key in metadata), None)


def load_trained(path: str | Path, task: str) -> TrainedModel:
    """The config, evaluated weights and metadata of a checkpoint written by `task`'s
    training tool ("det" or "cls")."""
    tool = TOOLS[task]
    checkpoint = load_training_checkpoint(path, tool)
    if task_of(checkpoint) != task:
        raise CheckpointError(f"{path} is not a checkpoint of {tool}")
    weights = evaluated_weights(checkpoint)
    broken = [
        name
        for name, value in weights.items()
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if broken:
        raise CheckpointError(
            f"{path} holds non-finite weights (NaN or infinity) in {len(broken)} tensors, "
            f"first {broken[0]}: the run diverged before this checkpoint; use an earlier one"
        )
    return TrainedModel(checkpoint["config"], weights, checkpoint.get("metadata") or {})


def write_training_checkpoint(
    checkpoint: dict[str, Any], last: str | Path, best: str | Path | None = None
) -> None:
    """Write `last` (and copy it to `best`) atomically, refusing weights that hold NaN or
    inf so that a diverged step cannot replace the last good checkpoint."""
    bad = [
        n
        for n, t in checkpoint["model"].items()
        if t.is_floating_point() and not t.isfinite().all()
    ]
    if bad:
        raise NonFiniteLossError(
            f"refusing to overwrite {last}: the weights hold NaN or inf "
            f"(first: {bad[0]}); the last good checkpoint is kept"
        )
    atomic_save(checkpoint, last)
    if best is not None:
        atomic_copy(last, best)


def atomic_save(obj: dict[str, Any], path: str | Path) -> None:
    """`torch.save` to a temp file in the same folder, fsync, then rename over `path`.

    A write that fails (a full disk, a folder made read-only) is a `CheckpointError`
    saying which file and that its previous version is intact.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as RuntimeError
        kept = f"the previous {path.name} is intact" if path.is_file() else "none was written"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CheckpointError(f"could not write the checkpoint {path} ({reason}); {kept}") from err
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_copy(src: str | Path, dst: str | Path) -> None:
    """Copy a file so that `dst` is at every moment either its old or its new content."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dst.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint or weight file with `weights_only=True` (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a readable PyTorch file (torch.save writes a zip archive)"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()]
        reason = next(  # torch's message: a preamble, the reason, then advice
            (p for p in paragraphs[1:] if not p.startswith(("Please", "Check"))), paragraphs[0]
        )
        raise CheckpointError(
            f"{path} holds objects that a weights-only load refuses (they could run code); "
            f"only tensors, numbers, strings and containers are accepted ({reason})"
        ) from err
    except (RuntimeError, EOFError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch file: {err}") from err


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, numpy, torch (and CUDA) generator states."""
    version, mt_state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(mt_state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo `capture_rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
