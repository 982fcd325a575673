"""Atomic checkpoint files, safe loading, and the RNG state that makes resume exact.

A checkpoint is written to a temporary file beside its target, flushed and fsynced,
then renamed over the target: a process killed at any moment leaves either the old or
the new file, never a torn one. Files are read with `weights_only=True`, so a
checkpoint or weight file from elsewhere cannot run code when loaded; everything saved
here is therefore tensors, numbers, strings, lists, tuples and dicts.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or not what the caller expects."""


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
