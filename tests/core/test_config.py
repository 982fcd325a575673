"""Strict YAML configs: unknown keys, wrong types, overrides, dump/load round trip."""

from __future__ import annotations

import dataclasses

import pytest

from detect_tricks.core.config import ClsConfig, DetConfig
from detect_tricks.core.config_loader import config_diff, config_from_dict, dump_config, load_config
from detect_tricks.core.errors import ConfigError


def _write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_file_holds_only_what_differs_from_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "optim:\n  lr: 1e-3\ntrain:\n  epochs: 5\n"), ClsConfig)
    assert cfg.optim.lr == 0.001 and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 5
    assert cfg.optim.momentum == ClsConfig().optim.momentum


def test_a_partial_section_keeps_the_tasks_own_defaults(tmp_path):
    # DetConfig's optim is SGD at lr 1e-3 per 64 images with weight decay 5e-4, its train
    # section 280 epochs of 64: a section giving one key must keep the rest of those.
    path = _write(tmp_path, "optim:\n  no_bias_decay: true\ntrain:\n  workers: 8\n")
    cfg, defaults = load_config(path, DetConfig), DetConfig()
    assert cfg.optim == dataclasses.replace(defaults.optim, no_bias_decay=True)
    assert cfg.train == dataclasses.replace(defaults.train, workers=8)
    # ClsConfig's optim is Nesterov's; a key set in the file or by --set keeps it
    assert load_config(_write(tmp_path, "optim:\n  lr: 0.4\n"), ClsConfig).optim.nesterov
    assert load_config(_write(tmp_path, ""), ClsConfig, ["optim.lr=0.2"]).optim.nesterov
    assert ClsConfig().optim.nesterov and DetConfig().train.epochs == 280


def test_unknown_key_names_key_section_closest_and_valid_keys(tmp_path):
    path = _write(tmp_path, "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ClsConfig)
    message = str(err.value)
    assert str(path) in message
    assert "unknown key 'lrr' in section 'optim'" in message
    assert "Did you mean 'lr'?" in message
    assert "Valid keys: name, lr, reference_batch, linear_scaling, momentum" in message


def test_unknown_section_lists_the_sections(tmp_path):
    with pytest.raises(
        ConfigError,
        match="unknown key 'optimizer' in the top level. Did you "
        "mean 'optim'. Valid keys: model, data, optim, schedule, tricks, train, eval",
    ):
        load_config(_write(tmp_path, "optimizer: {}\n"), ClsConfig)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  epochs: ten\n", "'train.epochs' expects int, got 'ten' (str)"),
        ("train:\n  epochs: 2.5\n", "'train.epochs' expects int, got 2.5 (float)"),
        ("train:\n  amp: fp8\n", "'train.amp' expects one of 'off', 'fp16', 'bf16', got 'fp8'"),
        ("optim:\n  nesterov: 1\n", "'optim.nesterov' expects bool, got 1 (int)"),
        ("schedule:\n  steps: [30, x]\n", "'schedule.steps[1]' expects int, got 'x' (str)"),
        ("optim: 3\n", "optim must be a mapping, got 3"),
    ],
)
def test_wrong_type_names_key_expected_type_and_value(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text), ClsConfig)
    assert expected in str(err.value)


def test_value_checks_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'train.batch_size' must be > 0, got 0"):
        load_config(_write(tmp_path, "train:\n  batch_size: 0\n"), ClsConfig)
    with pytest.raises(
        ConfigError, match="'data.expand_ratio' must be a finite number >= 1, got 0.5"
    ):
        load_config(_write(tmp_path, "data:\n  expand_ratio: 0.5\n"), DetConfig)


@pytest.mark.parametrize("subset", ["1.5", "-3", "-0.5"])
def test_a_train_subset_is_a_count_or_a_fraction(tmp_path, subset):
    with pytest.raises(ConfigError, match="'data.train_subset' must be 0 .all., a count of images"):
        load_config(_write(tmp_path, f"data:\n  train_subset: {subset}\n"), DetConfig)
    for good, kept in (("240", 240), ("0.25", 0.25), ("0", 0)):
        cfg = load_config(_write(tmp_path, f"data:\n  train_subset: {good}\n"), DetConfig)
        assert cfg.data.train_subset == kept


def test_override_of_nested_key_parsed_as_yaml(tmp_path):
    path = _write(tmp_path, "optim:\n  lr: 0.1\n")
    cfg = load_config(
        path,
        ClsConfig,
        ["optim.lr=0.01", "schedule.steps=[2, 4]", "train.amp=bf16", "optim.nesterov=false"],
    )
    assert cfg.optim.lr == 0.01
    assert cfg.schedule.steps == [2, 4]
    assert cfg.train.amp == "bf16" and cfg.optim.nesterov is False
    assert config_diff(cfg, load_config(path, ClsConfig)) == [
        "optim.lr",
        "optim.nesterov",
        "schedule.steps",
        "train.amp",
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("optim.lrr=0.1", "--set optim.lrr=0.1: unknown key 'lrr' in section 'optim'"),
        ("optim.lr=fast", "--set optim.lr=fast: 'optim.lr' expects float, got 'fast'"),
        ("optim=1", "--set optim=1: optim must be a mapping, got 1"),
        ("optim.lr.x=1", "'optim.lr' is not a section"),
        ("optim.lr", "expected KEY=VALUE"),
    ],
)
def test_bad_override_is_a_clear_error(tmp_path, override, expected):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, ""), ClsConfig, [override])
    assert expected in str(err.value)


def test_dump_then_load_gives_an_equal_object(tmp_path):
    cfg = load_config(_write(tmp_path, "schedule:\n  name: cosine\n"), ClsConfig, ["optim.lr=3e-4"])
    dump_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml", ClsConfig) == cfg
    assert (
        config_from_dict({"optim": {"lr": 3e-4}, "schedule": {"name": "cosine"}}, ClsConfig) == cfg
    )


def test_unsafe_yaml_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(
            _write(tmp_path, "optim: !!python/object/apply:os.system ['true']\n"), ClsConfig
        )


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        load_config(tmp_path / "nope.yaml", ClsConfig)
