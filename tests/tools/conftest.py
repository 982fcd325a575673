"""Tiny COCO-format detection data and a config for the tool tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_coco import tiny_det_config, write_tiny_coco


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    return write_tiny_coco(tmp_path_factory.mktemp("coco"))


@pytest.fixture(scope="module")
def config_file(coco, tmp_path_factory) -> Path:
    return tiny_det_config(coco, tmp_path_factory.mktemp("cfg") / "tiny_det.yaml")
