"""The committed configs load, and the papers' full recipes resolve to the papers' numbers
(docs/design.md §3-4): a partial section must not fall back to another task's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from detect_tricks.ablation.ladder import expand_runs, load_ladder
from detect_tricks.core.config import ClsConfig, DetConfig
from detect_tricks.core.config_loader import config_to_dict, load_config
from detect_tricks.engine.optim import scaled_lr

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("det/*.yaml")), ids=lambda p: p.stem)
def test_every_detection_config_loads(path):
    assert load_config(path, DetConfig).model.num_classes > 0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("cls/*.yaml")), ids=lambda p: p.stem)
def test_every_classification_config_loads(path):
    assert load_config(path, ClsConfig).model.num_classes > 0


@pytest.mark.parametrize("name", ["baseline", "bof"])
def test_coco_configs_train_gluoncvs_recipe(name):
    cfg = load_config(CONFIGS / f"det/yolov3_r50d_coco_{name}.yaml", DetConfig)
    optim = cfg.optim
    assert (optim.name, optim.momentum, optim.weight_decay) == ("sgd", 0.9, 5e-4)
    assert scaled_lr(optim, 64) == pytest.approx(1e-3)
    assert scaled_lr(optim, 128) == pytest.approx(2e-3)  # linear scaling
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.data.size) == (280, 64, 416)
    bof = name == "bof"
    assert optim.no_bias_decay is bof and cfg.train.sync_bn is bof
    tricks = cfg.tricks
    assert (tricks.mixup, tricks.label_smoothing, tricks.random_shapes) == (bof, bof, bof)
    if bof:
        assert (cfg.schedule.name, cfg.schedule.warmup_epochs) == ("cosine", 2.0)
        assert tricks.random_shape_sizes == list(range(320, 609, 32))
    else:
        assert (cfg.schedule.name, cfg.schedule.steps) == ("step", [220, 250])


def flat_keys(config: DetConfig) -> dict[str, object]:
    """`section.key -> value` for every key of a config's sections."""
    sections = config_to_dict(config)
    return {f"{name}.{key}": v for name, section in sections.items() for key, v in section.items()}


@pytest.mark.parametrize(
    ("data", "switched_on"),
    [
        (
            "fruit",
            {
                "optim.no_bias_decay",
                "schedule.name",
                "schedule.warmup_epochs",
                "tricks.label_smoothing",
                "train.sync_bn",
            },
        ),
        # no switch paid on raccoon (the config's header): only sync BN, inert in one process
        ("raccoon", {"train.sync_bn"}),
    ],
)
def test_small_bof_configs_differ_from_their_baseline_in_the_chosen_switches(data, switched_on):
    baseline = flat_keys(load_config(CONFIGS / f"det/yolov3_r18d_{data}_baseline.yaml", DetConfig))
    bof = flat_keys(load_config(CONFIGS / f"det/yolov3_r18d_{data}_bof.yaml", DetConfig))
    differing = {key for key in baseline if baseline[key] != bof[key]}
    if "schedule.name" in switched_on:  # step milestones are unused under cosine decay
        differing.discard("schedule.steps")
    assert differing == switched_on


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("cls/resnet50*.yaml")), ids=lambda p: p.stem)
def test_imagenet_configs_train_with_nesterov_at_lr_0_1_per_256(path):
    cfg = load_config(path, ClsConfig)
    optim = cfg.optim
    assert (optim.name, optim.nesterov, optim.momentum, optim.weight_decay) == (
        "sgd",
        True,
        0.9,
        1e-4,
    )
    batch = cfg.train.batch_size
    assert scaled_lr(optim, batch) == pytest.approx(0.1 * batch / 256)
    assert cfg.train.epochs == (200 if cfg.tricks.mixup else 120)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("ablations/*.yaml")), ids=lambda p: p.stem)
def test_every_ladder_loads_and_its_runs_resolve(path):
    ladder = load_ladder(path)
    task = DetConfig if ladder.task == "det" else ClsConfig
    runs = expand_runs(ladder)
    references = {
        f"{point}/{r}" if point else r for point in ladder.points or [""] for r in ladder.references
    }
    assert references <= {run.name for run in runs}
    for run in runs:  # the base config and every run's overrides make a valid config
        load_config(CONFIGS.parent / ladder.base, task, list(run.overrides))


@pytest.mark.parametrize("name", ["fruit", "raccoon"])
def test_each_recipe_config_is_its_baseline_with_the_recipe_switches(name):
    """The committed recipe configs are exactly what the recipe ladders measured: the
    baseline plus the switches of fruit_small_data.yaml."""
    ladder = load_ladder(CONFIGS / "ablations" / "fruit_small_data.yaml")
    switches = [o for overrides in ladder.switches.values() for o in overrides]
    base = CONFIGS / "det" / f"yolov3_r18d_{name}_baseline.yaml"
    recipe = CONFIGS / "det" / f"yolov3_r18d_{name}_recipe.yaml"
    assert load_config(recipe, DetConfig) == load_config(base, DetConfig, switches)
    full = load_ladder(CONFIGS / "ablations" / "fruit_small_data_full.yaml")
    assert full.switches["recipe"] == switches
