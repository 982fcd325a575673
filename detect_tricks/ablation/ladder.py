"""Ladder files: a base config, switches, seeds; expanded into the runs of the tables.

A ladder file (`configs/ablations/*.yaml`) names a base config, the switches with the
overrides that turn each on, the seeds, and optional overrides for every run (e.g. a
proxy scale). It expands into runs, as in the Bag of Freebies paper's tables:

- `baseline`: the base config;
- `all`: every switch on;
- `all-<switch>`: every switch but one (leave-one-out: what that switch adds to the rest);
- `+<s1>`, `+<s1>+<s2>`, ...: the stacked ladder, switches added in the file's order;
- `+<switch>` for every switch (add-one: what a switch does on its own, when the others
  together hide it).

A scale curve (`points`: a name per point, e.g. its number of training images, with the
overrides that make it, such as `data.train_subset` and a schedule) trains the ladder once
per point, as runs named `<point>/<run>` compared with their point's baseline.

`all: false` leaves out the run with every switch on, for switches that are alternatives
rather than parts of one recipe (e.g. GluonCV's bag and another recipe, each one switch,
compared with the baseline at several training-set sizes): the ladder is then the
baseline and each switch alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detect_tricks.core.config_loader import config_to_dict, load_config, parse_yaml, yaml_problem
from detect_tricks.core.errors import ConfigError
from detect_tricks.tasks.table import TASKS

LADDER_KINDS = ("leave_one_out", "stacked", "add_one")
REFERENCES = ("baseline", "all")  # the runs every difference is taken from
DEFAULT_KINDS = ("leave_one_out", "stacked")  # the papers' tables


@dataclass(frozen=True)
class Ladder:
    """A parsed ladder file."""

    source: Path
    task: str  # det or cls
    base: Path  # the base config
    switches: dict[str, list[str]]  # name -> overrides that turn it on, in ladder order
    seeds: list[int]
    common: list[str] = field(default_factory=list)  # overrides of every run
    kinds: tuple[str, ...] = DEFAULT_KINDS
    metric: str = ""  # the headline metric: AP (det) or top1 (cls) unless given
    last: tuple[str, ...] = ()  # overrides after the switches' (the command line's --set)
    with_all: bool = True  # train the run with every switch on (the file's `all` key)
    points: dict[str, list[str]] = field(default_factory=dict)  # a scale curve's points

    @property
    def references(self) -> tuple[str, ...]:
        """The runs every difference is taken from."""
        return ("all", "baseline") if self.with_all else ("baseline",)

    @property
    def metrics(self) -> tuple[str, ...]:
        return TASKS[self.task].metric_names


@dataclass(frozen=True)
class Run:
    """One configuration of the ladder (trained once per seed)."""

    name: str
    switches: tuple[str, ...]  # the switches it turns on
    overrides: tuple[str, ...]  # the ladder's common overrides, the switches', then `last`


def load_ladder(path: str | Path) -> Ladder:
    """Read and check a ladder file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = parse_yaml(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read the ladder file {path}: {err.strerror}") from err
    except (yaml.YAMLError, ConfigError) as err:
        raise ConfigError(f"ladder file {path} is not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (task, base, switches, seeds)")
    known = {"task", "base", "switches", "seeds", "set", "ladders", "metric", "all", "points"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")

    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{path}: '{key}' expects {expected}, got {raw.get(key)!r}")

    task = raw.get("task")
    need(task in TASKS, "task", " or ".join(TASKS))
    need(isinstance(raw.get("base"), str), "base", "the path of a config file")
    switches = raw.get("switches")
    need(isinstance(switches, dict) and bool(switches), "switches", "a mapping name -> overrides")
    for name, overrides in switches.items():
        ok = isinstance(overrides, list) and all(isinstance(o, str) and "=" in o for o in overrides)
        need(ok and bool(overrides), "switches", f"'{name}': a list of KEY=VALUE strings")
        named = isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]+", name) is not None
        need(named, "switches", f"names of letters, digits, _ . - (a run's folder), not {name!r}")
    seeds = raw.get("seeds", [0, 1, 2])
    need(
        isinstance(seeds, list)
        and bool(seeds)
        and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        and len(set(seeds)) == len(seeds),
        "seeds",
        "a list of distinct integers",
    )
    common = raw.get("set", [])
    need(isinstance(common, list) and all(isinstance(o, str) for o in common), "set", "a list")
    kinds = raw.get("ladders", list(DEFAULT_KINDS))
    need(isinstance(kinds, list) and set(kinds) <= set(LADDER_KINDS), "ladders", "a subset")
    metrics = TASKS[task].metric_names
    metric = raw.get("metric", metrics[0])
    need(metric in metrics, "metric", f"one of {metrics}")
    with_all = raw.get("all", True)
    need(isinstance(with_all, bool), "all", "true or false")
    need(
        with_all or kinds == ["add_one"],
        "ladders",
        "[add_one] with all: false (alternatives are each compared alone with the baseline)",
    )
    points = raw.get("points", {})
    need(
        isinstance(points, dict)
        and all(isinstance(k, int) and not isinstance(k, bool) and k > 0 for k in points)
        and all(
            isinstance(v, list) and all(isinstance(o, str) and "=" in o for o in v)
            for v in points.values()
        ),
        "points",
        "a mapping: number of training images -> a list of KEY=VALUE strings",
    )
    base = Path(raw["base"])
    return Ladder(
        path,
        task,
        base,
        dict(switches),
        seeds,
        common,
        tuple(kinds),
        metric,
        with_all=with_all,
        points={str(name): list(overrides) for name, overrides in points.items()},
    )


def expand_runs(ladder: Ladder) -> list[Run]:
    """The ladder's runs in the order they are trained and reported."""
    names = list(ladder.switches)
    chosen: list[tuple[str, tuple[str, ...]]] = [("baseline", ())]
    if ladder.with_all:
        chosen.append(("all", tuple(names)))
    if "leave_one_out" in ladder.kinds and len(names) > 1:
        chosen += [(f"all-{n}", tuple(m for m in names if m != n)) for n in names]
    if "stacked" in ladder.kinds:
        chosen += [("+" + "+".join(names[:k]), tuple(names[:k])) for k in range(1, len(names))]
    if "add_one" in ladder.kinds and (len(names) > 1 or not ladder.with_all):
        chosen += [(f"+{n}", (n,)) for n in names if f"+{n}" not in dict(chosen)]
    runs = []
    for point, point_overrides in (ladder.points or {"": []}).items():
        for name, on in chosen:
            overrides = list(ladder.common) + point_overrides
            for switch in on:
                overrides += ladder.switches[switch]
            full_name = f"{point}/{name}" if point else name
            runs.append(Run(full_name, on, tuple(overrides) + ladder.last))
    return runs


def point_of(run_name: str) -> str:
    """The scale-curve point of a run (`"240/+bof"` -> `"240"`); "" outside a curve."""
    return run_name.rpartition("/")[0]


def reference_of(run_name: str, reference: str) -> str:
    """The run that `run_name`'s difference from `reference` (baseline, all) is taken
    from: its point's, in a scale curve."""
    point = point_of(run_name)
    return f"{point}/{reference}" if point else reference


def select_runs(runs: list[Run], names: list[str]) -> list[Run]:
    """The named runs (all when `names` is empty), always with `baseline` and `all` (when
    the ladder has it), which every difference is taken from; in a scale curve, those of
    the named runs' points only (`1868/+bof` brings `1868/baseline`, not `240/baseline`)."""
    known = [r.name for r in runs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--runs: unknown run(s) {', '.join(unknown)}; the ladder has {known}")
    if not names:
        return runs
    wanted = set(names)
    points = {point_of(n) for n in names}
    return [
        r
        for r in runs
        if r.name in wanted or (r.name.split("/")[-1] in REFERENCES and point_of(r.name) in points)
    ]


def plan_of(ladder: Ladder, runs: list[Run]) -> dict[str, Any]:
    """What decides the results: a stored plan that differs means stale runs.

    The base config is stored as training reads it (every default filled in), so that a
    comment, or a key pinned to the value it had, changes nothing; its text is kept too,
    to compare with plans written before (which stored only the text).
    """
    return {
        "task": ladder.task,
        "base": str(ladder.base),
        "base_config": resolved_base(ladder),
        "base_text": ladder.base.read_text() if ladder.base.is_file() else None,
        "seeds": ladder.seeds,
        "runs": {r.name: list(r.overrides) for r in runs},
    }


def resolved_base(ladder: Ladder) -> dict[str, Any] | None:
    """The base config with its defaults, as JSON values; None when the file is missing."""
    if not ladder.base.is_file():
        return None
    config = load_config(ladder.base, TASKS[ladder.task].config_class)
    return json.loads(json.dumps(config_to_dict(config), default=str))


def plan_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The top-level keys (and run names) in which two plans differ.

    Seeds are not compared: each (run, seed) trains on its own, so a ladder given more
    seeds keeps its finished runs and trains only the new seeds (the tables take the
    ladder's seeds).
    """
    differing = [k for k in ("task", "base") if stored.get(k) != current[k]]
    if isinstance(stored.get("base_config"), str):  # a plan of before: the text only
        if stored["base_config"] != current["base_text"]:
            differing.append("base_config")
    elif _changed_settings(stored.get("base_config"), current["base_config"]):
        differing.append("base_config")
    stored_runs, runs = stored.get("runs", {}), current["runs"]
    differing += [f"runs.{n}" for n in runs if n in stored_runs and stored_runs[n] != runs[n]]
    return differing


def _changed_settings(stored: Any, current: Any) -> bool:
    """Whether a setting of the stored config has another value now (or is gone). A key
    only the current config has is a setting added to the package since, at its default,
    which leaves results as they were (every trick is off by default)."""
    if isinstance(stored, dict) and isinstance(current, dict):
        return any(k not in current or _changed_settings(v, current[k]) for k, v in stored.items())
    return stored != current
