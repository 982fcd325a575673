"""Values a config or an argument must not hold: each is an error naming the key and
what was expected (never a run whose every result is empty or meaningless), and what a
YAML file builds is checked before it can grow."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict, load_config, parse_yaml
from detect_tricks.core.errors import ConfigError
from detect_tricks.engine.cli import input_size, probability
from robustness.case import Case, raises


def value(override: str, *fragments: str):
    """`--set override` on the default detection config: a ConfigError naming it."""

    def check(tmp_path: Path) -> None:
        with raises(ConfigError, *fragments):
            config_from_dict({}, DetConfig, [override])

    return check


def accepted(override: str, key: str, expected: object):
    def check(tmp_path: Path) -> None:
        cfg = config_from_dict({}, DetConfig, [override])
        section, name = key.split(".")
        assert getattr(getattr(cfg, section), name) == expected

    return check


def yaml_file(text: str, *fragments: str, seconds: float = 2.0):
    """A config file: a ConfigError naming the file and the fragments, within `seconds`."""

    def check(tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        started = time.perf_counter()
        with raises(ConfigError, str(path), *fragments):
            load_config(path, DetConfig)
        assert time.perf_counter() - started < seconds

    return check


# Ten levels of ten aliases each: 10^10 strings if expanded.
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
)


def argument(parse, text: str, fragment: str):
    def check(tmp_path: Path) -> None:
        with pytest.raises(argparse.ArgumentTypeError, match=fragment):
            parse(text)

    return check


def no_aliases_in_overrides(tmp_path: Path) -> None:
    with raises(ConfigError, "--set train.epochs=*x", "not valid YAML", "aliases"):
        config_from_dict({}, DetConfig, ["train.epochs=*x"])


def yaml_12_booleans(tmp_path: Path) -> None:
    assert parse_yaml("a: off\nb: on\nc: yes\nd: no\ne: true\nf: False") == {
        "a": "off",
        "b": "on",
        "c": "yes",
        "d": "no",
        "e": True,
        "f": False,
    }


CASES = [
    Case("values", "eval.score_threshold: 1.5", "error: in [0, 1) (was: accepted, every result empty)", value("eval.score_threshold=1.5", "'eval.score_threshold' must be in [0, 1)")),
    Case("values", "eval.score_threshold: -0.1", "error naming the key", value("eval.score_threshold=-0.1", "eval.score_threshold")),
    Case("values", "eval.nms_iou: 0", "error: in (0, 1]", value("eval.nms_iou=0", "'eval.nms_iou' must be in (0, 1]")),
    Case("values", "eval.nms_iou: 1.5", "error naming the key", value("eval.nms_iou=1.5", "eval.nms_iou")),
    Case("values", "eval.max_detections: 0", "error naming the key", value("eval.max_detections=0", "eval.max_detections")),
    Case("values", "eval.pre_nms_top_k: -1", "error naming the key", value("eval.pre_nms_top_k=-1", "eval.pre_nms_top_k")),
    Case("values", "eval.nms: soft", "error naming the choices", value("eval.nms=soft", "'eval.nms' expects one of 'standard', 'diou', 'matrix'")),
    Case("values", "model.ignore_iou: 7", "error: in (0, 1] (was: accepted, nothing ignored)", value("model.ignore_iou=7", "'model.ignore_iou' must be in (0, 1]")),
    Case("values", "model.anchors with a zero side", "error naming the key", value("model.anchors=[[[0, 1], [1, 1], [1, 1]], [[1, 1], [1, 1], [1, 1]], [[1, 1], [1, 1], [1, 1]]]", "model.anchors")),
    Case("values", "optim.lr: .inf", "error: a positive finite number (was: accepted)", value("optim.lr=.inf", "'optim.lr' must be a positive finite number")),
    Case("values", "optim.lr: .nan", "error naming the key", value("optim.lr=.nan", "optim.lr")),
    Case("values", "optim.weight_decay: .inf", "error naming the key", value("optim.weight_decay=.inf", "optim.weight_decay")),
    Case("values", "schedule.factor: 0", "error naming the key", value("schedule.factor=0", "schedule.factor")),
    Case("values", "schedule.steps: [-5]", "error naming the key", value("schedule.steps=[-5]", "schedule.steps")),
    Case("values", "schedule.warmup_epochs: .nan", "error naming the key", value("schedule.warmup_epochs=.nan", "schedule.warmup_epochs")),
    Case("values", "tricks.mixup_alpha: .inf", "error naming the key", value("tricks.mixup_alpha=.inf", "tricks.mixup_alpha")),
    Case("values", "tricks.grid_alpha: 0.5", "error: >= 1", value("tricks.grid_alpha=0.5", "'tricks.grid_alpha' must be a finite number >= 1")),
    Case("values", "tricks.assign: neighbours with grid_alpha 1", "error saying why it needs alpha >= 2", value("tricks.assign=neighbours", "'tricks.grid_alpha' must be >= 2 with tricks.assign neighbours")),
    Case("values", "tricks.box_loss: iou", "error naming the choices", value("tricks.box_loss=iou", "'tricks.box_loss' expects one of 'coords', 'giou', 'diou', 'ciou'")),
    Case("values", "tricks.mosaic_prob: 2", "error naming the key", value("tricks.mosaic_prob=2", "'tricks.mosaic_prob' must be in [0, 1]")),
    Case("values", "tricks.mosaic_scale: [1.5, 0.5]", "error naming the key", value("tricks.mosaic_scale=[1.5, 0.5]", "tricks.mosaic_scale")),
    Case("values", "tricks.iou_aware_factor: 2", "error naming the key", value("tricks.iou_aware_factor=2", "tricks.iou_aware_factor")),
    Case("values", "tricks.random_shape_sizes: [0]", "error naming the key", value("tricks.random_shape_sizes=[0]", "positive multiples of 32")),
    Case("values", "data.size: 0", "error: a positive multiple of 32 (was: a tensor-shape traceback)", value("data.size=0", "'data.size' must be a positive multiple of 32")),
    Case("values", "data.size: 100", "error: a positive multiple of 32", value("data.size=100", "'data.size' must be a positive multiple of 32")),
    Case("values", "data.expand_ratio: .inf", "error naming the key", value("data.expand_ratio=.inf", "data.expand_ratio")),
    Case("values", "data.train_subset: -3", "error naming the key", value("data.train_subset=-3", "data.train_subset")),
    Case("values", "data.train_subset: 1.5", "error: a count or a fraction", value("data.train_subset=1.5", "a count of images >= 1, or a fraction in (0, 1)")),
    Case("values", "data.cache: disk", "error naming the choices", value("data.cache=disk", "'data.cache' expects one of 'none', 'ram'")),
    Case("values", "train.amp: off", "the string 'off' (was: the bool False, an error)", accepted("train.amp=off", "train.amp", "off")),
    Case("values", "optim.nesterov: yes", "error: expects bool (was: silently true)", value("optim.nesterov=yes", "'optim.nesterov' expects bool, got 'yes'")),
    Case("values", "--set model.backbone_weights= (empty)", "the empty string (was: error, got None)", accepted("model.backbone_weights=", "model.backbone_weights", "")),
    Case("values", "YAML 1.1 booleans", "only true/false are booleans", yaml_12_booleans),
    Case("values", "billion laughs (nested aliases)", "refused at once, naming the line (was: 3 GB in 30 s)", yaml_file(LAUGHS, "YAML aliases (*a) are not accepted", "line 2")),
    Case("values", "one alias in a config", "error naming the file and line", yaml_file("train: &t {epochs: 2}\neval: *t\n", "line 2", "aliases")),
    Case("values", "an alias in --set", "error naming the override", no_aliases_in_overrides),
    Case("values", "broken YAML", "one line with line and column (was: a multi-line message)", yaml_file("train: {epochs: [1,\n", "line 2, column 1")),
    Case("values", "--score-thr 30", "error: a score in [0, 1]", argument(probability, "30", "expected a score in")),
    Case("values", "--size 100", "error: a positive multiple of 32", argument(input_size, "100", "positive multiple of 32")),
    Case("values", "--size 0", "error: a positive multiple of 32", argument(input_size, "0", "positive multiple of 32")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=str)
def test_values(case: Case, tmp_path: Path) -> None:
    case.check(tmp_path)
