"""`detect-tricks <command>`: the installed entry point runs the same code as tools/*.py."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import pytest
from tool_helpers import ROOT, run_tool

from detect_tricks.commands.main import COMMANDS


def test_help_lists_every_command_with_its_summary():
    result = subprocess.run(
        [sys.executable, "-m", "detect_tricks.commands.main", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines()[3:] if line.strip()]
    assert listed == list(COMMANDS)
    assert "train-det   Train YOLOv3 on a ResNet backbone" in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_first_line_of_its_modules_docstring(name):
    module, summary = COMMANDS[name]
    assert summary == importlib.import_module(module).__doc__.strip().splitlines()[0]


def test_version_and_python_dash_m():
    from detect_tricks import __version__

    for launcher in (["-m", "detect_tricks"], ["-m", "detect_tricks.commands.main"]):
        result = subprocess.run(
            [sys.executable, *launcher, "--version"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0 and result.stdout == f"detect-tricks {__version__}\n"


def test_help_imports_no_command():
    """`--help` answers at once: it imports neither torch nor any command module."""
    code = (
        "import sys; from detect_tricks.commands.main import usage; usage(); "
        "heavy = ('torch', 'detect_tricks.commands.t'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_and_its_tool_answer_help(name):
    tool = ROOT / "tools" / f"{COMMANDS[name][0].rsplit('.', 1)[1]}.py"
    assert tool.is_file(), f"{name} has no tools/ entry point"
    by_tool = run_tool(str(tool.relative_to(ROOT)), "--help")
    by_command = subprocess.run(
        [sys.executable, "-m", "detect_tricks.commands.main", name, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert by_tool.returncode == by_command.returncode == 0, by_command.stderr
    # The same parser: the same description and options after the usage lines (which
    # wrap by the program's name).
    assert by_command.stdout.startswith(f"usage: detect-tricks {name} ")
    assert by_command.stdout.split("\n\n", 1)[1] == by_tool.stdout.split("\n\n", 1)[1]


def test_an_unknown_command_is_one_line_with_a_suggestion():
    result = subprocess.run(
        [sys.executable, "-m", "detect_tricks.commands.main", "train-dett"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: unknown command 'train-dett'. Did you mean 'train-det'?"
    )


def test_the_console_script_is_installed():
    script = shutil.which("detect-tricks", path=str(ROOT / ".venv" / "bin")) or shutil.which(
        "detect-tricks"
    )
    if script is None:
        pytest.skip("the package is not installed with its scripts (pip install -e .)")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ablate" in result.stdout


def test_voc2coco_and_shrink_coco_end_to_end(tmp_path):
    """A VOC split to COCO JSON (the 'difficult' box an ignored region), then the set
    copied with its photos shrunk: boxes scale with the pixels, the copy trains the same."""
    import json

    import numpy as np
    from PIL import Image

    root = tmp_path / "VOC"
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(np.full((200, 300, 3), 60, np.uint8)).save(root / "JPEGImages" / "a.jpg")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    objects = "".join(
        f"<object><name>{name}</name><difficult>{d}</difficult><bndbox><xmin>{x}</xmin>"
        f"<ymin>20</ymin><xmax>{x + 100}</xmax><ymax>120</ymax></bndbox></object>"
        for name, d, x in (("dog", 0, 10), ("cat", 1, 150))
    )
    (root / "Annotations" / "a.xml").write_text(
        f"<annotation><size><width>300</width><height>200</height></size>{objects}</annotation>"
    )
    out = tmp_path / "train.json"
    done = run_tool("tools/voc2coco.py", "--root", str(root), "--split", "train", "--out", str(out))
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["categories"]] == ["cat", "dog"]
    assert [(a["bbox"], a["iscrowd"]) for a in data["annotations"]] == [
        ([10, 20, 100, 100], 0),
        ([150, 20, 100, 100], 1),
    ]
    shrunk = tmp_path / "small"
    done = run_tool(
        "tools/shrink_coco.py",
        "--ann",
        str(out),
        "--image-dir",
        str(root / "JPEGImages"),
        "--out",
        str(shrunk),
        "--max-side",
        "150",
    )
    assert done.returncode == 0, done.stderr
    small = json.loads(next((shrunk / "annotations").glob("*.json")).read_text())
    assert (small["images"][0]["width"], small["images"][0]["height"]) == (150, 100)
    assert small["annotations"][0]["bbox"] == pytest.approx([5, 10, 50, 50])
    assert Image.open(shrunk / "images" / "a.jpg").size == (150, 100)
