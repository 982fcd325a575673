"""The package's layers (docs/design.md, "Layout"): a module imports only from its own
layer or the ones below, so each folder stays one level of abstraction."""

from __future__ import annotations

import ast
from pathlib import Path

import detect_tricks

PACKAGE = Path(detect_tricks.__file__).parent

# Lowest first: each layer is its folders. A module not named here fails the test.
LAYERS = [
    ("foundations", ["core"]),
    ("utilities", ["utils"]),
    ("data, models and their math", ["data", "models", "yolo", "metrics"]),
    ("the training engine", ["engine"]),
    ("the two tasks and the user API", ["tasks", "inference"]),
    ("tools", ["commands", "ablation", "__main__"]),
]
LAYER_OF = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def layer(module: str) -> int:
    """The layer of `detect_tricks.<first>...` by its first component."""
    first = module.split(".")[1]
    assert first in LAYER_OF, f"detect_tricks.{first} is in no layer of tests/test_layers.py"
    return LAYER_OF[first]


def imported_modules(path: Path) -> list[str]:
    """Every `detect_tricks.*` module a file imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [m for m in found if m.startswith("detect_tricks.")]


def package_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:  # the package's own __init__ imports nothing of ours
            modules.append((".".join(parts), path))
    return modules


def test_every_module_has_a_layer():
    modules = package_modules()
    assert len(modules) >= 60
    for name, _ in modules:
        layer(name)


def test_no_module_imports_from_a_higher_layer():
    upward = []
    for name, path in package_modules():
        for target in imported_modules(path):
            if layer(target) > layer(name):
                upward.append(
                    f"{name} ({LAYERS[layer(name)][0]}) imports {target} "
                    f"({LAYERS[layer(target)][0]})"
                )
    assert upward == []


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from detect_tricks.engine.trainer import Trainer\n")
    targets = imported_modules(bad)
    assert targets == ["detect_tricks.engine.trainer"]
    assert layer(targets[0]) > layer("detect_tricks.data.coco")
