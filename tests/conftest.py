"""Suite-wide isolation: nothing a test does reaches the user's home or the next test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _image_check_cache(tmp_path_factory):
    """The image checks' cache (data/image_check.py) in a folder of this session, for the
    tests and the tools they start."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETECT_TRICKS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield
