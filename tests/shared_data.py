"""Where `../shared/data` is, and a skip marker for tests that need it (imported by tests;
not a conftest, so that the folders' own conftest.py files cannot shadow it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DETECT_TRICKS_SHARED_DATA", ROOT.parent / "shared" / "data"))


def needs_shared_data(name: str) -> pytest.MarkDecorator:
    """Skip unless `../shared/data/<name>` exists (set DETECT_TRICKS_SHARED_DATA to move it)."""
    return pytest.mark.skipif(
        not (SHARED_DATA / name).is_dir(),
        reason=f"{SHARED_DATA / name} is absent (the project's real test data lives beside it)",
    )
