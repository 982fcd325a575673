"""The tools as a user runs them: subprocesses with their default workers, so that an
error raised in a data-loading worker shows as the user sees it. Nothing a tool writes
replaces a user's file, and a bad image stops a run before it trains, not after."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_coco import tiny_det_config, write_tiny_coco

from detect_tricks.core.errors import CheckpointError
from detect_tricks.inference.detector import Detector
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
    """A tiny detector trained for one epoch by tools/train_det.py: its best.pt (the data
    and config are in the folder above its run)."""
    root = write_tiny_coco(tmp_path_factory.mktemp("coco"))
    config = tiny_det_config(root, root / "tiny.yaml")
    out = root / "run"
    done = tool("tools/train_det.py", "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return out / "checkpoints" / "best.pt"


def _data_of(checkpoint: Path) -> Path:
    """The tiny COCO folder a `trained` checkpoint was trained on."""
    return checkpoint.parents[2]


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


def _ap(done: subprocess.CompletedProcess, out: Path) -> float:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())["AP"]


def _eval_against(tmp_path: Path, checkpoint: Path, edit) -> tuple[float, float, str]:
    """AP of `checkpoint` on the tiny val split as it is, and on a copy of its annotations
    changed by `edit(data)`; and what the second run logged."""
    data_root = _data_of(checkpoint)
    ann = json.loads((data_root / "val.json").read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(edit(ann) or ann))
    common = [
        "tools/eval_det.py",
        "--checkpoint",
        str(checkpoint),
        "--images",
        str(data_root / "images"),
    ]
    first = tool(*common, "--ann", str(data_root / "val.json"), "--out", str(tmp_path / "a.json"))
    second = tool(*common, "--ann", str(edited), "--out", str(tmp_path / "b.json"))
    return (
        _ap(first, tmp_path / "a.json"),
        _ap(second, tmp_path / "b.json"),
        second.stdout + second.stderr,
    )


def eval_classes_by_name(tmp_path: Path, checkpoint: Path) -> None:
    def other_ids(data: dict) -> None:  # red 1 -> 40, blue 5 -> 30, listed blue first
        mapping = {1: 40, 5: 30}
        data["categories"] = [{"id": 30, "name": "blue"}, {"id": 40, "name": "red"}]
        for annotation in data["annotations"]:
            annotation["category_id"] = mapping[annotation["category_id"]]

    before, after, _ = _eval_against(tmp_path, checkpoint, other_ids)
    assert after == pytest.approx(before, abs=1e-9)


def eval_fewer_categories(tmp_path: Path, checkpoint: Path) -> None:
    def only_red(data: dict) -> None:
        data["categories"] = [c for c in data["categories"] if c["name"] == "red"]
        data["annotations"] = [a for a in data["annotations"] if a["category_id"] == 1]

    _, after, logged = _eval_against(tmp_path, checkpoint, only_red)
    assert 0 <= after <= 1 and "lacks the model's classes blue" in logged


def eval_duplicate_annotation_ids(tmp_path: Path, checkpoint: Path) -> None:
    def same_ids(data: dict) -> None:
        for annotation in data["annotations"]:
            annotation["id"] = 1

    before, after, _ = _eval_against(tmp_path, checkpoint, same_ids)
    assert after == pytest.approx(before, abs=1e-9)


def eval_degenerate_boxes(tmp_path: Path, checkpoint: Path) -> None:
    def add_degenerate(data: dict) -> None:
        image = data["images"][0]["id"]
        data["annotations"].append(
            {
                "id": 999,
                "image_id": image,
                "category_id": 1,
                "bbox": [5, 5, 0, 9],
                "area": 0,
                "iscrowd": 0,
            }
        )

    before, after, _ = _eval_against(tmp_path, checkpoint, add_degenerate)
    assert after == pytest.approx(before, abs=1e-9)


def eval_without_area_and_iscrowd(tmp_path: Path, checkpoint: Path) -> None:
    def strip(data: dict) -> None:
        for annotation in data["annotations"]:
            del annotation["area"], annotation["iscrowd"]

    before, after, _ = _eval_against(tmp_path, checkpoint, strip)
    assert after == pytest.approx(before, abs=1e-9)


def infer_output_round_trips(tmp_path: Path, checkpoint: Path) -> None:
    data_root = _data_of(checkpoint)
    val = json.loads((data_root / "val.json").read_text())
    folder = tmp_path / "val_images"
    folder.mkdir()
    for image in val["images"]:
        (folder / image["file_name"]).write_bytes(
            (data_root / "images" / image["file_name"]).read_bytes()
        )
    out = tmp_path / "out"
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out), "--score-thr", "0.01", "--ann", str(data_root / "val.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    from_results = tool("tools/eval_det.py", "--results", str(out / "detections.json"), "--ann", str(data_root / "val.json"), "--out", str(tmp_path / "r.json"))  # fmt: skip
    direct = tool(
        "tools/eval_det.py", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "d.json")
    )
    # infer keeps detections over its --score-thr (0.01, evaluation's threshold too)
    assert _ap(from_results, tmp_path / "r.json") == pytest.approx(
        _ap(direct, tmp_path / "d.json"), abs=0.02
    )


def infer_passes_over_what_is_not_an_image(tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "photos"
    _photos(folder, ("a.png",))
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(folder / "b.gif")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata")
    (folder / "notes.txt").write_text("not a picture")
    os.mkfifo(folder / "pipe.jpg")  # reading it would wait for a writer forever
    out = tmp_path / "out"
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(out), timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    logged = done.stdout + done.stderr
    assert "1 ._* (macOS metadata), 1 .txt, 1 not a regular file" in logged
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "detections.json"]


def _raises_usage(call, fragment: str) -> None:
    from detect_tricks.core.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(fragment)):
        call()


def bad_argument(*args: str, fragment: str):
    def check(tmp_path: Path, checkpoint: Path) -> None:
        data = _data_of(checkpoint) / "images"
        argv = [
            a.replace("CKPT", str(checkpoint))
            .replace("DATA", str(data))
            .replace("TMP", str(tmp_path))
            for a in args
        ]
        done = tool(*argv)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr and fragment in done.stderr.strip().splitlines()[-1]

    return check


def resume_with_another_model(tmp_path: Path, checkpoint: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parents[1], run)
    done = tool("tools/train_det.py", "--out", str(run), "--resume", "--set", "model.width=0.5")
    one_error_line(done, "--resume: --set changes model.width", "start a new run")


def resume_for_longer(tmp_path: Path, checkpoint: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parents[1], run)
    done = tool("tools/train_det.py", "--out", str(run), "--resume", "--set", "train.epochs=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming with changed settings: train.epochs" in done.stdout + done.stderr
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def overwrite_clears_what_the_run_wrote(tmp_path: Path, checkpoint: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parents[1], run)
    (run / "tb").mkdir()
    (run / "tb" / "events.out.tfevents.1").write_text("old")
    (run / "checkpoints" / "best.onnx").write_text("old")
    (run / "checkpoints" / "best.onnx.data").write_text("old")
    (run / "notes.txt").write_text("the user's own")
    config = _data_of(checkpoint) / "tiny.yaml"
    done = tool("tools/train_det.py", "--config", str(config), "--out", str(run), "--overwrite")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (run / "tb").exists() and not list((run / "checkpoints").glob("*.onnx*"))
    assert (run / "notes.txt").read_text() == "the user's own"


def predicts(make_input, count: int):
    """`Detector.predict` takes what `make_input(path of a photo)` gives: `count` results,
    each the same as for the photo's path."""

    def check(tmp_path: Path, checkpoint: Path) -> None:
        detector = Detector.from_checkpoint(checkpoint, device="cpu", score_threshold=0.0)
        photo = sorted((_data_of(checkpoint) / "images").glob("val_*.png"))[0]
        (expected,) = detector.predict(photo)
        found = detector.predict(make_input(photo))
        assert len(found) == count
        for result in found:
            np.testing.assert_allclose(result["scores"], expected["scores"], atol=2e-3)

    return check


def refuses(bad, fragment: str):
    def check(tmp_path: Path, checkpoint: Path) -> None:
        detector = Detector.from_checkpoint(checkpoint, device="cpu")
        with pytest.raises(ValueError, match=re.escape(fragment)):
            detector.predict(bad)

    return check


def _pixels(photo: Path) -> np.ndarray:
    return np.asarray(Image.open(photo).convert("RGB"))


def non_finite_weights(tmp_path: Path, checkpoint: Path) -> None:
    broken = tmp_path / "broken.pt"
    saved = torch.load(checkpoint, weights_only=True)
    name = next(k for k, v in saved["model"].items() if v.is_floating_point())
    saved["model"][name][...] = float("nan")
    if saved.get("ema") is not None:
        saved["ema"]["module"][name][...] = float("nan")
    torch.save(saved, broken)
    with pytest.raises(CheckpointError, match=re.escape(f"{broken} holds non-finite weights")):
        Detector.from_checkpoint(broken, device="cpu")
    done = tool("tools/eval_det.py", "--checkpoint", str(broken))
    one_error_line(done, "non-finite weights", name)


def _out_is_input(tool_args, victim):
    """A tool pointed at one of its own inputs as --out: one error line, the input intact."""

    def check(tmp_path: Path, checkpoint: Path) -> None:
        run_dir = tmp_path / "run"
        shutil.copytree(checkpoint.parents[1], run_dir)
        data = _data_of(checkpoint)
        values = {"CKPT": str(run_dir / "checkpoints" / "best.pt"), "VAL": str(data / "val.json")}
        target = Path(values[victim])
        before = target.read_bytes()
        done = tool(*[values.get(a, a) for a in tool_args], "--out", str(target))
        one_error_line(done, "--out")
        assert target.read_bytes() == before

    return check


def infer_into_a_folder_of_the_users(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "val_0.png").write_bytes(b"the user's own picture")
    data = _data_of(checkpoint) / "images"
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(data / "val_0.png"), "--out", str(out))  # fmt: skip
    one_error_line(done, "already holds files", "--overwrite")
    assert (out / "val_0.png").read_bytes() == b"the user's own picture"


def infer_a_non_utf8_file_name(tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "photos"
    _photos(folder, ("a.png",))
    latin = os.fsencode(str(folder)) + b"/caf\xe9.png"
    os.rename(folder / "a.png", latin)
    done = tool("tools/infer_det.py", "--checkpoint", str(checkpoint), "--images", str(folder), "--out", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # was: a segmentation fault in cv2.imwrite
    assert len(json.loads((tmp_path / "out" / "detections.json").read_text() or "[]")) >= 0
    assert os.path.exists(os.fsencode(str(tmp_path / "out")) + b"/caf\xe9.png")


def shrink_over_its_source(tmp_path: Path, checkpoint: Path) -> None:
    data = _data_of(checkpoint)
    copy = tmp_path / "set"
    shutil.copytree(data, copy)
    (copy / "annotations").mkdir()
    shutil.copy(copy / "val.json", copy / "annotations" / "val.json")
    before = (copy / "annotations" / "val.json").read_bytes()
    done = tool("tools/shrink_coco.py", "--ann", str(copy / "annotations" / "val.json"), "--image-dir", str(copy / "images"), "--out", str(copy), "--max-side", "32")  # fmt: skip
    one_error_line(done, "would be written over its source")
    assert (copy / "annotations" / "val.json").read_bytes() == before


def train_into_a_folder_of_the_users(tmp_path: Path, checkpoint: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("# the user's notes")
    done = tool("tools/train_det.py", "--config", str(_data_of(checkpoint) / "tiny.yaml"), "--out", str(out))  # fmt: skip
    one_error_line(done, "already holds files (config.yaml)", "--overwrite")
    assert (out / "config.yaml").read_text() == "# the user's notes"


def resume_a_classifiers_run(tmp_path: Path, checkpoint: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(checkpoint.parents[1], run)
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    saved["metadata"] = {"task": "cls", "classes": ["a", "b"]}
    torch.save(saved, run / "checkpoints" / "last.pt")
    done = tool("tools/train_det.py", "--out", str(run), "--resume")
    one_error_line(done, "is a checkpoint of tools/train_cls.py, not of tools/train_det.py")


def api_refuses(make, fragment: str):
    def check(tmp_path: Path, checkpoint: Path) -> None:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            make(checkpoint)

    return check


CASES = [
    Case("data loss", "infer_det --out the --images folder", "one error line; the photos unchanged (was: overwritten, exit 0)", infer_into_the_input_folder),
    Case("data loss", "infer_det --out the folder of a named input", "one error line; the photo unchanged", infer_over_a_named_input),
    Case("data loss", "infer_det: the same file name in two folders", "x.png and x_2.png, two ids, each result names its path (was: one picture over the other)", infer_same_names_in_two_folders),
    Case("data loss", "a val image that cannot be decoded", "one error line naming it, before any training (was: crash after an epoch, no checkpoint)", val_image_undecodable),
    Case("data loss", "a val JPEG 20 bytes short of its end", "decoded with a warning naming it; the run finishes (was: crash at the first evaluation)", val_jpeg_truncated),
    Case("data loss", "val annotations without id, area, iscrowd", "evaluated from the checked records; the run finishes (was: crash after an epoch)", val_annotations_without_ids),
    Case("evaluation", "eval_det --ann: same class names, other ids and order", "the same AP (was: 0.021 instead of 0.352)", eval_classes_by_name),
    Case("evaluation", "eval_det --ann: fewer categories than the model", "evaluated, with a warning naming the missing class (was: IndexError)", eval_fewer_categories),
    Case("evaluation", "eval_det --ann: every annotation id the same", "the same AP (was: whole classes gone)", eval_duplicate_annotation_ids),
    Case("evaluation", "eval_det --ann: a degenerate box added", "the same AP: not counted as a miss", eval_degenerate_boxes),
    Case("evaluation", "eval_det --ann: no area or iscrowd", "the same AP (was: a crash)", eval_without_area_and_iscrowd),
    Case("evaluation", "infer_det --ann, then eval_det --results", "the AP of eval_det --checkpoint (was: 0.003 instead of 0.352)", infer_output_round_trips),
    Case("CLI", "infer_det over a FIFO named .jpg, ._ files, .txt and .gif", "no hang; the GIF read; the rest passed over and counted", infer_passes_over_what_is_not_an_image),
    Case("CLI", "infer_det --size 100", "exit 2, the last line names the rule (was: a tensor-shape traceback)", bad_argument("tools/infer_det.py", "--checkpoint", "CKPT", "--images", "TMP", "--out", "TMP/o", "--size", "100", fragment="positive multiple of 32")),
    Case("CLI", "infer_det --score-thr 30", "exit 2, the last line names the range (was: accepted, nothing kept)", bad_argument("tools/infer_det.py", "--checkpoint", "CKPT", "--images", "TMP", "--out", "TMP/o", "--score-thr", "30", fragment="expected a score in [0, 1]")),
    Case("CLI", "eval_det --sizes 100", "exit 2, the last line names the rule (was: a traceback)", bad_argument("tools/eval_det.py", "--checkpoint", "CKPT", "--sizes", "100", fragment="positive multiple of 32")),
    Case("CLI", "infer_det --images of nothing that exists", "one error line", bad_argument("tools/infer_det.py", "--checkpoint", "CKPT", "--images", "TMP/none", "--out", "TMP/o", fragment="neither a regular file nor a folder")),
    Case("CLI", "eval_det --device cuda without CUDA", "one error line (was: a traceback)", bad_argument("tools/eval_det.py", "--checkpoint", "CKPT", "--device", "cuda", fragment="no CUDA device is available")),
    Case("CLI", "infer_det --device cuda without CUDA", "one error line (was: a traceback)", bad_argument("tools/infer_det.py", "--checkpoint", "CKPT", "--images", "DATA", "--out", "TMP/o", "--device", "cuda", fragment="no CUDA device is available")),
    Case("run directories", "--resume --set model.width=0.5", "one error line naming the key (was: 213 size-mismatch lines)", resume_with_another_model),
    Case("run directories", "--resume --set train.epochs=2", "resumed, the change logged", resume_for_longer),
    Case("Python API", "predict(a PIL image)", "detections, as for its path (was: 'has no len()')", predicts(lambda p: Image.open(p), 1)),
    Case("Python API", "predict(a (3, H, W) uint8 tensor)", "detections, as for its path", predicts(lambda p: torch.from_numpy(_pixels(p)).permute(2, 0, 1), 1)),
    Case("Python API", "predict(a (3, H, W) float tensor in [0, 1])", "detections, as for its path", predicts(lambda p: torch.from_numpy(_pixels(p)).permute(2, 0, 1).float() / 255, 1)),
    Case("Python API", "predict(a (B, 3, H, W) tensor)", "one result per image", predicts(lambda p: torch.from_numpy(_pixels(p)).permute(2, 0, 1)[None].repeat(2, 1, 1, 1), 2)),
    Case("Python API", "predict([path, PIL image, array])", "three results", predicts(lambda p: [p, Image.open(p), _pixels(p)], 3)),
    Case("Python API", "predict(an empty array)", "ValueError: non-empty (H, W, 3) uint8", refuses(np.zeros((0, 0, 3), np.uint8), "non-empty (H, W, 3) uint8 arrays")),
    Case("Python API", "predict(a greyscale 2-D array)", "ValueError naming the shape", refuses(np.zeros((20, 30), np.uint8), "got (20, 30) uint8")),
    Case("Python API", "predict(a float64 array)", "ValueError naming the dtype", refuses(np.zeros((20, 30, 3)), "got (20, 30, 3) float64")),
    Case("Python API", "predict(a (4, H, W) tensor)", "ValueError naming the shape", refuses(torch.zeros(4, 20, 30), "(3, H, W), got (4, 20, 30)")),
    Case("Python API", "predict(a number)", "ValueError naming what it takes", refuses(42, "got int")),
    Case("checkpoints", "a checkpoint with NaN weights", "refused at load naming the tensor (was: AP 0 without a word)", non_finite_weights),
    Case("data loss", "eval_det --out its own checkpoint", "one error line; the checkpoint intact (was: replaced by 252 bytes of JSON)", _out_is_input(["tools/eval_det.py", "--checkpoint", "CKPT"], "CKPT")),
    Case("data loss", "eval_det --out its ground truth", "one error line; the annotations intact", _out_is_input(["tools/eval_det.py", "--checkpoint", "CKPT", "--ann", "VAL", "--images", str(ROOT)], "VAL")),
    Case("data loss", "export_det --out its own checkpoint", "one error line; the checkpoint intact (was: replaced by ONNX)", _out_is_input(["tools/export_det.py", "--checkpoint", "CKPT"], "CKPT")),
    Case("data loss", "infer_det into a folder of the user's files", "one error line unless --overwrite; the user's picture intact (was: overwritten)", infer_into_a_folder_of_the_users),
    Case("data loss", "shrink_coco --out the set's own folder", "one error line; the annotations intact (was: overwritten in place)", shrink_over_its_source),
    Case("data loss", "train_det --out a folder with the user's config.yaml", "one error line unless --overwrite (was: overwritten)", train_into_a_folder_of_the_users),
    Case("CLI", "infer_det on a file name that is not UTF-8", "pictures written (was: a segmentation fault)", infer_a_non_utf8_file_name),
    Case("run directories", "train_det --resume of a classifier's checkpoint", "one error line naming both tools (was: unknown key 'zero_gamma')", resume_a_classifiers_run),
    Case("Python API", "predict(a float tensor of 0-255 values)", "ValueError: values in [0, 1] (was: clamped, 7 boxes instead of 13)", api_refuses(lambda c: Detector.from_checkpoint(c, device="cpu").predict(torch.full((3, 20, 20), 200.0)), "float tensor images must hold finite values in [0, 1]")),
    Case("Python API", "predict(an int64 tensor)", "ValueError naming the dtype (was: values wrapped mod 256)", api_refuses(lambda c: Detector.from_checkpoint(c, device="cpu").predict(torch.full((3, 20, 20), 300)), "uint8 or float in [0, 1], got torch.int64")),
    Case("Python API", "predict(..., batch_size=0)", "ValueError (was: a range() traceback, or [] for -1)", api_refuses(lambda c: Detector.from_checkpoint(c, device="cpu").predict(np.zeros((9, 9, 3), np.uint8), batch_size=0), "batch_size must be at least 1")),
    Case("Python API", "from_checkpoint(score_threshold=2)", "ValueError (was: nothing found, without a word)", api_refuses(lambda c: Detector.from_checkpoint(c, score_threshold=2), "score_threshold must be in [0, 1]")),
    Case("Python API", "from_checkpoint(size=100)", "ValueError (was: a tensor-size traceback)", api_refuses(lambda c: Detector.from_checkpoint(c, size=100), "size must be a positive multiple of 32")),
    Case("Python API", "from_checkpoint(device='tpu')", "an error naming the choices (was: silently the CPU)", lambda tmp, c: _raises_usage(lambda: Detector.from_checkpoint(c, device="tpu"), "the device must be auto, cpu or cuda")),
    Case("run directories", "--overwrite over tb/ and exported files", "cleared; the user's other files kept (was: the old events and .onnx kept)", overwrite_clears_what_the_run_wrote),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=str)
def test_tools(case: Case, tmp_path: Path, trained: Path) -> None:
    case.check(tmp_path, trained)
