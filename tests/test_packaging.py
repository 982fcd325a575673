"""What a user installs: the licence, a lock that pins the tested environment, one version."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import detect_tricks

ROOT = Path(__file__).resolve().parents[1]
# The floor environment (make test-floor) swaps PyTorch and its own runtime for the
# oldest allowed release: those pins are the default environment's.
TORCH_STACK = re.compile(r"^(torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)$", re.I)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_normal(name)] = version
    return pins


def test_the_lock_pins_every_installed_distribution_at_its_version():
    pins = _pins()
    floor = importlib.metadata.version("torch") != pins["torch"]
    unpinned, other = [], []
    for dist in importlib.metadata.distributions():
        name = _normal(dist.metadata["Name"])
        # Importing setuptools puts its own vendored copies on sys.path; they are part of
        # the pinned setuptools, not separate installs.
        if "_vendor" in Path(str(dist.locate_file(""))).parts:
            continue
        if name in ("detect-tricks", "pip", "setuptools", "wheel") or (
            floor and TORCH_STACK.match(name)
        ):
            continue
        if name not in pins:
            unpinned.append(name)
        elif pins[name] != dist.version:
            other.append(f"{name} {dist.version} (pinned {pins[name]})")
    assert not unpinned, f"installed but not in constraints.txt (run make lock): {unpinned}"
    assert not other, f"installed at another version than constraints.txt: {other}"


def test_the_licence_and_the_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "version" in project["dynamic"] and "version" not in project
    assert importlib.metadata.version("detect_tricks") == detect_tricks.__version__
    assert (ROOT / "detect_tricks" / "py.typed").is_file()
