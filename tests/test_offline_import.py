"""Importing the package makes no network call (albumentations' update check is off)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import socket, warnings
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args[:1])
    raise OSError("network blocked by the test")
socket.getaddrinfo = refuse
socket.create_connection = refuse
socket.socket.connect = refuse
warnings.simplefilter("error")  # any warning, e.g. 'Error fetching version info', fails
import detect_tricks.data.det_transforms, detect_tricks.data.cls_transforms
print("attempts", len(attempts))
"""


def test_importing_the_transforms_touches_no_network():
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "attempts 0"


def test_without_the_switch_albumentations_would_call_out():
    """The probe can fail: albumentations alone does try the network at import."""
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    probe = PROBE.replace(
        "import detect_tricks.data.det_transforms, detect_tricks.data.cls_transforms",
        "warnings.simplefilter('default')\nimport albumentations",
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() != "attempts 0"
