"""Where a tool writes: checked before any work, so that no tool replaces its own inputs or
a user's files, and a folder it cannot write is one line at the start, not a traceback
after an hour of evaluation."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from detect_tricks.core.errors import UsageError


def refuse_to_replace(out: Path, inputs: Iterable[Path | None], flag: str = "--out") -> None:
    """A UsageError when `out` is one of `inputs` (any spelling of the same file)."""
    target = out.resolve()
    for given in inputs:
        if given is not None and Path(given).resolve() == target:
            raise UsageError(
                f"{flag} {out} is the input {given}: it would be replaced; write elsewhere"
            )


def refuse_inside(out: Path, folders: Iterable[Path | None], flag: str = "--out") -> None:
    """A UsageError when `out` lies in (or is) one of the input `folders`."""
    target = out.resolve()
    for folder in folders:
        if folder is not None and (
            Path(folder).resolve() in target.parents or Path(folder).resolve() == target
        ):
            raise UsageError(f"{flag} {out} is inside the input folder {folder}; write elsewhere")


def writable_file(out: Path, flag: str = "--out") -> Path:
    """`out` as a file this process can write: its folder made if needed; a folder in its
    place, or a folder that cannot be written, is a UsageError naming it."""
    if out.is_dir():
        raise UsageError(f"{flag} {out} is a folder; give a file name")
    _writable_folder(out.parent, flag, out)
    return out


def writable_folder(out: Path, flag: str = "--out") -> Path:
    """`out` as a folder this process can write into (made if needed)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a folder")
    _writable_folder(out, flag, out)
    return out


def _writable_folder(folder: Path, flag: str, named: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{flag} {named}: cannot create {folder} ({err.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {named}: the folder {folder} cannot be written")
