"""Reading and writing config files: YAML in, config dataclasses out, strictly.

Loading is strict: an unknown key is an error that names the key, its section, the
closest valid name and every valid key; a value of the wrong type names the key, the
expected type and the value. Command-line overrides (`--set optim.lr=0.01`) are parsed as
YAML and checked the same way. No inheritance between files, no `type:` strings, no code
in configs. Works for any dataclass tree (`config.py` holds ours).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from detect_tricks.core.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a float (YAML 1.1 insists on `1.0e-3`), only
    `true` and `false` as booleans (YAML 1.2: `off`, `on`, `yes` and `no` stay strings,
    so `train.amp: off` is the string it means), and refuses aliases: `*name` copies
    what `&name` holds, and a few lines of nested aliases expand to gigabytes before
    any key could be checked (a "billion laughs")."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """Refuse a key given twice: YAML keeps the last, and a second `train:` section
        silently dropped the first one's keys."""
        seen = set()
        for key_node, _ in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: the key '{key}' is given twice"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not "
                "accepted in configs; write the values out"
            )
        return super().compose_node(parent, index)


# YAML 1.1's implicit booleans (yes/no/on/off in any case) replaced by true/false alone.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """Parse YAML text with the safe loader (no object construction)."""
    return yaml.load(text, Loader=_Loader)


C = typing.TypeVar("C")


def load_config(path: str | Path, cls: type[C], overrides: Sequence[str] = ()) -> C:
    """Read a YAML file into `cls`, apply `--set` overrides, validate everything.

    Args:
        path: YAML file holding only what differs from the defaults of `cls`.
        cls: the top-level config dataclass.
        overrides: `section.key=value` strings, values parsed as YAML.
    """
    path = Path(path)
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    except (yaml.YAMLError, ConfigError) as err:
        raise ConfigError(f"config file {path} is not valid YAML: {yaml_problem(err)}") from None
    return config_from_dict(raw, cls, overrides, source=str(path))


def yaml_problem(err: Exception) -> str:
    """A YAML error on one line: where (line, column) and what."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {err.problem}"
    return " ".join(str(err).split())


def config_from_dict(
    raw: dict[str, Any], cls: type[C], overrides: Sequence[str] = (), source: str = "<dict>"
) -> C:
    """Build `cls` from a nested dict (e.g. a checkpoint's config) plus overrides."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    raw = _deep_copy(raw)
    for item in overrides:
        apply_override(raw, cls, item)
    return _build(cls, raw, prefix="", source=source)


def apply_override(raw: dict[str, Any], cls: type, item: str) -> None:
    """Set `section.key=value` in `raw`, checking the key path and the value's type."""
    source = f"--set {item}"
    if "=" not in item:
        raise ConfigError(f"{source}: expected KEY=VALUE, e.g. --set optim.lr=0.01")
    dotted, text = item.split("=", 1)
    try:
        value = parse_yaml(text)
    except (yaml.YAMLError, ConfigError) as err:
        raise ConfigError(f"{source}: the value is not valid YAML: {yaml_problem(err)}") from None
    parts = dotted.strip().split(".")
    node, node_cls = raw, cls
    for depth, name in enumerate(parts):
        hints = _field_types(node_cls)
        prefix = ".".join(parts[:depth])
        if name not in hints:
            raise _unknown_key(name, prefix, hints, source)
        if dataclasses.is_dataclass(hints[name]) and node.get(name) is None:
            node[name] = {}  # a section written empty (`model:`) holds no keys yet
        if depth == len(parts) - 1 and dataclasses.is_dataclass(hints[name]):
            _build(hints[name], value, f"{dotted}.", source)  # check it before merging
            node[name].update(value or {})
        elif depth == len(parts) - 1:
            node[name] = _convert(value, hints[name], dotted, source)
        else:
            if not dataclasses.is_dataclass(hints[name]):
                raise ConfigError(f"{source}: '{'.'.join(parts[: depth + 1])}' is not a section")
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{source}: section '{name}' is not a mapping")
            node_cls = hints[name]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts and lists (YAML- and checkpoint-safe)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML; `load_config` reads it back to an equal object."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_diff(a: Any, b: Any) -> list[str]:
    """Dotted keys whose values differ between two configs of the same class."""
    return _dict_diff(config_to_dict(a), config_to_dict(b), prefix="")


def _dict_diff(a: dict, b: dict, prefix: str) -> list[str]:
    keys = []
    for name in a.keys() | b.keys():
        key = f"{prefix}{name}"
        if isinstance(a.get(name), dict) and isinstance(b.get(name), dict):
            keys += _dict_diff(a[name], b[name], prefix=f"{key}.")
        elif a.get(name) != b.get(name):
            keys.append(key)
    return sorted(keys)


# ---------------------------------------------------------------------------------------
# Validation helpers.


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(name: str, prefix: str, hints: dict[str, Any], source: str) -> ConfigError:
    section = f"section '{prefix}'" if prefix else "the top level"
    close = difflib.get_close_matches(name, list(hints), n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(
        f"{source}: unknown key '{name}' in {section}.{hint} Valid keys: {', '.join(hints)}"
    )


def _build(cls: type, raw: Any, prefix: str, source: str, base: Any = None) -> Any:
    """`cls` with the keys of `raw` set over `base` (default: `cls()`'s values).

    A section missing a key keeps its parent's default for it, not the section class's:
    `optim: {lr: 0.002}` in a detection config keeps DetConfig's weight decay 5e-4 and
    linear scaling, which a bare `OptimConfig()` does not have."""
    section = prefix.rstrip(".") or "the top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {section} must be a mapping, got {raw!r}")
    hints = _field_types(cls)
    for name in raw:
        if name not in hints:
            raise _unknown_key(str(name), prefix.rstrip("."), hints, source)
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(hints[name]):
            inner = getattr(base, name) if base is not None else _field_default(cls, name)
            kwargs[name] = _build(hints[name], value or {}, f"{key}.", source, inner)
        else:
            kwargs[name] = _convert(value, hints[name], key, source)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _field_default(cls: type, name: str) -> Any:
    """The default value of field `name` of dataclass `cls` (its factory called)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None if field.default is dataclasses.MISSING else field.default


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(hint))
        return f"{origin.__name__}[{args}]"
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _convert(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check `value` against the type hint; ints are accepted where floats are expected."""
    origin = typing.get_origin(hint)
    ok, result = True, value
    if hint is Any:
        pass
    elif origin is Literal:
        ok = value in typing.get_args(hint)
    elif origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(value, option, key, source)
            except ConfigError:
                continue
        ok = False
    elif origin is list:
        ok = isinstance(value, list)
        if ok:
            (item_hint,) = typing.get_args(hint)
            result = [_convert(v, item_hint, f"{key}[{i}]", source) for i, v in enumerate(value)]
    elif hint is type(None):
        ok = value is None
    elif hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        result = float(value) if ok else value
    elif hint is str:
        # `--set model.backbone_weights=` (or `=""` once the shell took the quotes) is empty
        value = "" if value is None else value
        ok, result = isinstance(value, str), value
    else:
        raise TypeError(f"config field '{key}' has an unsupported type {hint!r}")
    if not ok:
        raise ConfigError(
            f"{source}: '{key}' expects {_type_name(hint)}, got {value!r} ({type(value).__name__})"
        )
    return result


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw
