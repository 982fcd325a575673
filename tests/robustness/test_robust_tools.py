"""The tools as a user runs them: subprocesses with their default workers, so that an
error raised in a data-loading worker shows as the user sees it. Nothing a tool writes
replaces a user's file, and a bad image stops a run before it trains, not after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_coco import tiny_det_config, write_tiny_coco

from robustness.case import Case

ROOT = Path(__file__).resolve().parents[2]


def tool(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """`python tools/<args>` from the project root, one thread, the tool's default workers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 with exactly one `error:` line on stderr (warnings aside) holding `fragments`."""
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in errors if "WARNING" not in line and "warn(" not in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny detector trained for one epoch by tools/train_det.py: its best.pt."""
    root = write_tiny_coco(tmp_path_factory.mktemp("coco"))
    config = tiny_det_config(root, root / "tiny.yaml")
    out = root / "run"
    done = tool("tools/train_det.py", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "checkpoints" / "best.pt"


def _photos(folder: Path, names: tuple[str, ...] = ("a.png", "b.png")) -> dict[Path, bytes]:
    """Small photos under `folder`, each different; returns their bytes by path."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(names):
        pixels = np.random.default_rng(seed).integers(0, 256, (70, 90, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return {path: path.read_bytes() for path in folder.iterdir()}


def infer_into_the_input_folder(tmp_path: Path, checkpoint: Path) -> None:
    before = _photos(tmp_path / "photos")
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "photos"))  # fmt: skip
    one_error_line(done, "--out", "holds input images", "another folder")
    assert {p: p.read_bytes() for p in (tmp_path / "photos").iterdir()} == before


def infer_over_a_named_input(tmp_path: Path, checkpoint: Path) -> None:
    before = _photos(tmp_path / "photos")
    photo = tmp_path / "photos" / "a.png"
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(photo), "--out", str(tmp_path / "photos"))  # fmt: skip
    one_error_line(done, "holds input images")
    assert photo.read_bytes() == before[photo]


def infer_same_names_in_two_folders(tmp_path: Path, checkpoint: Path) -> None:
    first, second = _photos(tmp_path / "one", ("x.png",)), _photos(tmp_path / "two", ("x.png",))
    out = tmp_path / "out"
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out), "--score-thr", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.png")) == ["x.png", "x_2.png"]
    results = json.loads((out / "detections.json").read_text())
    paths = {r["path"]: r["image_id"] for r in results}
    assert set(paths) == {str(tmp_path / "one" / "x.png"), str(tmp_path / "two" / "x.png")}
    assert len(set(paths.values())) == 2  # two images, two ids
    assert {**first, **second} == {p: p.read_bytes() for p in (*first, *second)}


def _train_with_val(tmp_path: Path, edit) -> tuple[subprocess.CompletedProcess, Path]:
    """Train the tiny config after `edit(root)` changed its validation split."""
    root = write_tiny_coco(tmp_path / "coco")
    edit(root)
    config = tiny_det_config(root, root / "tiny.yaml")
    out = tmp_path / "run"
    return tool("tools/train_det.py", "--config", str(config), "--out", str(out)), out


def _first_val_image(root: Path) -> Path:
    return root / "images" / json.loads((root / "val.json").read_text())["images"][0]["file_name"]


def val_image_undecodable(tmp_path: Path, checkpoint: Path) -> None:
    done, out = _train_with_val(tmp_path, lambda root: _first_val_image(root).write_bytes(b"x"))
    one_error_line(done, "val_0.png", "before training", "data.skip_bad_images")
    assert not list((out / "checkpoints").glob("*.pt")) if (out / "checkpoints").exists() else True
    assert "epoch 1/1" not in (out / "log.txt").read_text()  # not one step was trained


def val_jpeg_truncated(tmp_path: Path, checkpoint: Path) -> None:
    def truncate(root: Path) -> None:
        png = _first_val_image(root)
        jpeg = png.with_suffix(".jpg")
        Image.open(png).convert("RGB").save(jpeg, quality=95)
        jpeg.write_bytes(jpeg.read_bytes()[:-20])  # 20 bytes short of its end
        data = json.loads((root / "val.json").read_text())
        data["images"][0]["file_name"] = jpeg.name
        (root / "val.json").write_text(json.dumps(data))

    done, out = _train_with_val(tmp_path, truncate)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "val_0.jpg is truncated" in done.stdout + done.stderr
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


def val_annotations_without_ids(tmp_path: Path, checkpoint: Path) -> None:
    def drop_ids(root: Path) -> None:
        data = json.loads((root / "val.json").read_text())
        for annotation in data["annotations"]:
            del annotation["id"], annotation["area"], annotation["iscrowd"]
        (root / "val.json").write_text(json.dumps(data))

    done, out = _train_with_val(tmp_path, drop_ids)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and 0 <= summary["final"]["AP"] <= 1


CASES = [
    Case("data loss", "infer_det --out the --images folder", "one error line; the photos unchanged (was: overwritten, exit 0)", infer_into_the_input_folder),
    Case("data loss", "infer_det --out the folder of a named input", "one error line; the photo unchanged", infer_over_a_named_input),
    Case("data loss", "infer_det: the same file name in two folders", "x.png and x_2.png, two ids, each result names its path (was: one picture over the other)", infer_same_names_in_two_folders),
    Case("data loss", "a val image that cannot be decoded", "one error line naming it, before any training (was: crash after an epoch, no checkpoint)", val_image_undecodable),
    Case("data loss", "a val JPEG 20 bytes short of its end", "decoded with a warning naming it; the run finishes (was: crash at the first evaluation)", val_jpeg_truncated),
    Case("data loss", "val annotations without id, area, iscrowd", "evaluated from the checked records; the run finishes (was: crash after an epoch)", val_annotations_without_ids),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
def test_tools(case: Case, tmp_path: Path, trained: Path) -> None:
    case.check(tmp_path, trained)
