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


@pytest.fixture(autouse=True)
def _process_settings_restored():
    """What a test changes of the process's global compute settings (torch's denormal
    flushing and thread count, OpenCV's threads, through `configure_device` or directly)
    is put back after it, so that no result depends on the order the tests ran in."""
    import cv2
    import torch

    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_flush_denormal(False)  # the default: torch has no getter to save it
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv2_threads)
