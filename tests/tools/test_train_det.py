"""tools/train_det.py, eval_det.py, infer_det.py, voc2coco.py end to end on tiny data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tool_helpers import run_tool, train_in_process

from detect_tricks.data.coco import CocoDetection
from detect_tricks.engine.run_dir import RunDirectory, read_jsonl
from detect_tricks.inference.detector import Detector
from detect_tricks.inference.export import (
    OnnxYOLOv3,
    detector_metadata,
    export_onnx,
    largest_difference,
)
from detect_tricks.metrics.coco_eval import (
    STAT_NAMES,
    evaluate_results,
    load_ground_truth,
    read_results,
)
from detect_tricks.tasks.table import DETECTION
from detect_tricks.utils.checkpoint import load_checkpoint


def _train_in_process(config_file: Path, out: Path, overrides: list[str]) -> RunDirectory:
    return train_in_process(DETECTION, config_file, out, overrides)


@pytest.fixture(scope="module")
def baseline(config_file, tmp_path_factory) -> RunDirectory:
    return _train_in_process(config_file, tmp_path_factory.mktemp("baseline"), [])


SWITCHES = {
    "mixup": ["tricks.mixup=true"],
    "label_smoothing": ["tricks.label_smoothing=true"],
    "warmup": ["schedule.warmup_epochs=0.5"],
    "cosine": ["schedule.name=cosine"],
    "no_bias_decay": ["optim.no_bias_decay=true"],
    "random_shapes": ["tricks.random_shapes=true"],
    "sync_bn": ["train.sync_bn=true"],
    "bf16": ["train.amp=bf16"],
    "ema": ["train.ema=true"],
    "mosaic": ["tricks.mosaic=true", "tricks.mosaic_off_epochs=0"],
    "giou": ["tricks.box_loss=giou"],
    "ciou": ["tricks.box_loss=ciou"],
    "grid_sensitive": ["tricks.grid_alpha=1.05"],
    "multi_anchor": ["tricks.assign=multi_anchor"],
    "neighbours": ["tricks.assign=neighbours", "tricks.grid_alpha=2.0"],
    "iou_aware": ["tricks.iou_aware=true"],
    "spp": ["tricks.spp=true"],
    "dropblock": ["tricks.dropblock=true"],
    "coord_conv": ["tricks.coord_conv=true"],
    "diou_nms": ["eval.nms=diou"],
    "matrix_nms": ["eval.nms=matrix"],
}
# switches that change only the evaluation: training is exactly the baseline's
EVALUATION_ONLY = {"diou_nms", "matrix_nms"}


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_each_switch_trains_two_finite_steps(switch, baseline, config_file, tmp_path):
    run = _train_in_process(config_file, tmp_path, SWITCHES[switch])
    steps, reference = read_jsonl(run.metrics), read_jsonl(baseline.metrics)
    assert len(steps) == 2
    box_terms = ("loss_box",) if switch in ("giou", "ciou") else ("loss_xy", "loss_wh")
    for step in steps:
        for key in ("loss", "loss_obj", *box_terms, "loss_cls"):
            assert math.isfinite(step[key]), key
        assert ("loss_iou" in step) == (switch == "iou_aware")
    final, initial = load_checkpoint(run.last), load_checkpoint(baseline.last)
    if switch == "ema":  # training is untouched; the averaged copy is what changes
        averaged = final["ema"]["module"]
        assert final["ema"]["updates"] == 2
        assert any(not torch.equal(averaged[k], final["model"][k]) for k in averaged)
    elif switch == "sync_bn" or switch in EVALUATION_ONLY:
        # one CPU process: nothing to synchronise; NMS: not part of training
        assert all(torch.equal(final["model"][k], initial["model"][k]) for k in final["model"])
    else:
        assert any(not torch.equal(final["model"][k], initial["model"][k]) for k in final["model"])
    if switch in ("mixup", "label_smoothing", "random_shapes", "bf16", "mosaic", "giou"):
        assert steps[0]["loss"] != pytest.approx(reference[0]["loss"], abs=1e-6)
    if switch == "warmup":
        assert steps[0]["lr"] == 0.0
    evals = read_jsonl(run.evals)
    assert len(evals) == 1 and set(evals[0]) >= set(STAT_NAMES)
    # true of any COCO evaluation: AP over IoU 0.5:0.95 averages APs at IoUs >= 0.5
    assert evals[0]["AP75"] <= evals[0]["AP50"] and evals[0]["AP"] <= evals[0]["AP50"]


def test_run_directory_of_a_detection_run(baseline):
    evals = read_jsonl(baseline.evals)
    assert set(evals[0]) >= {"epoch", "iter", *STAT_NAMES}
    metadata = load_checkpoint(baseline.best)["metadata"]
    assert metadata == {"task": "det", "class_names": ["red", "blue"], "category_ids": [1, 5]}
    assert (baseline.plots / "val_predictions.png").stat().st_size > 1000


def test_detector_api_on_paths_and_bgr_arrays(baseline, coco):
    detector = Detector.from_checkpoint(baseline.best, score_threshold=0.0)
    path = coco / "images" / "val_0.png"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    from_path, from_bgr = detector.predict([path, rgb[..., ::-1].copy()], bgr=True)
    np.testing.assert_allclose(from_path["boxes"], from_bgr["boxes"], atol=1e-4)
    assert from_path["boxes"].shape[1] == 4 and len(from_path["names"]) == len(from_path["scores"])
    assert set(from_path["names"]) <= {"red", "blue"}
    assert (from_path["boxes"][:, 2] <= rgb.shape[1]).all()


def test_eval_infer_and_results_tools(baseline, coco, tmp_path):
    checkpoint = str(baseline.best)
    multi = run_tool(
        "tools/eval_det.py",
        "--checkpoint",
        checkpoint,
        "--sizes",
        "64",
        "96",
        "--out",
        str(tmp_path / "sizes.json"),
    )
    assert multi.returncode == 0, multi.stderr[-2000:]
    stats = json.loads((tmp_path / "sizes.json").read_text())
    assert set(stats) == {"64", "96"} and "AP50" in stats["64"] and "per_class" in stats["96"]
    assert stats["64"]["AP"] == pytest.approx(read_jsonl(baseline.evals)[-1]["AP"], abs=1e-9)

    infer = run_tool(
        "tools/infer_det.py",
        "--checkpoint",
        checkpoint,
        "--images",
        str(coco / "images" / "val_0.png"),
        str(coco / "images" / "val_1.png"),
        "--out",
        str(tmp_path / "pred"),
        "--score-thr",
        "0.0",
    )
    assert infer.returncode == 0, infer.stderr[-2000:]
    assert (tmp_path / "pred" / "val_0.png").is_file()
    detections = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert {d["category_id"] for d in detections} <= {1, 5}

    results = tmp_path / "results.json"
    for d in detections:
        d["image_id"] = 100 + int(d.pop("file_name").split("_")[1].split(".")[0])
    results.write_text(json.dumps(detections))
    from_file = run_tool(
        "tools/eval_det.py", "--ann", str(coco / "val.json"), "--results", str(results)
    )
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    # the tool's numbers are the library's on the same file and ground truth
    truth = load_ground_truth(CocoDetection(coco / "val.json", None).evaluation_ground_truth())
    expected = evaluate_results(truth, read_results(results))
    stats = json.loads((tmp_path / "results_stats.json").read_text())
    assert {k: stats[k] for k in STAT_NAMES} == {k: expected[k] for k in STAT_NAMES}


def test_unknown_category_in_a_results_file_is_one_clear_line(coco, tmp_path):
    results = tmp_path / "bad.json"
    results.write_text(
        json.dumps([{"image_id": 100, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}])
    )
    out = run_tool("tools/eval_det.py", "--ann", str(coco / "val.json"), "--results", str(results))
    assert (
        out.returncode == 2 and "category_id 2, not one of the ground truth's [1, 5]" in out.stderr
    )


def test_infer_over_a_folder_with_an_undecodable_image_keeps_what_it_did(baseline, coco, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("val_0.png", "val_1.png"):
        (folder / name).write_bytes((coco / "images" / name).read_bytes())
    (folder / "val_0b.png").write_bytes(b"not a png")  # sorted between the two good ones
    args = ["--checkpoint", str(baseline.best), "--images", str(folder), "--score-thr", "0.0"]

    stopped = run_tool("tools/infer_det.py", *args, "--out", str(tmp_path / "a"))
    assert stopped.returncode == 2 and "\nerror: cannot" in stopped.stderr  # after the bar
    assert "val_0b.png" in stopped.stderr and "the 1 images before it" in stopped.stderr
    kept = json.loads((tmp_path / "a" / "detections.json").read_text())
    assert {d["file_name"] for d in kept} == {"val_0.png"}

    skipping = run_tool(
        "tools/infer_det.py", *args, "--out", str(tmp_path / "b"), "--skip-bad-images"
    )
    assert skipping.returncode == 0, skipping.stderr[-2000:]
    assert "in 2 images" in skipping.stdout and "(1 unreadable images skipped)" in skipping.stdout
    done = json.loads((tmp_path / "b" / "detections.json").read_text())
    assert {d["file_name"] for d in done} == {"val_0.png", "val_1.png"}


def test_nan_in_a_results_file_stops_or_is_skipped_with_a_count(coco, tmp_path):
    results = tmp_path / "nan.json"
    good = {"image_id": 100, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}
    results.write_text(json.dumps([good, {**good, "score": float("nan")}]))
    args = ["tools/eval_det.py", "--ann", str(coco / "val.json"), "--results", str(results)]
    stopped = run_tool(*args)
    assert stopped.returncode == 2 and "nan.json: result 1 has score nan" in stopped.stderr
    skipping = run_tool(*args, "--skip-bad")
    assert skipping.returncode == 0, skipping.stderr[-2000:]
    assert "left out 1 bad result(s)" in skipping.stdout + skipping.stderr


def test_a_ground_truth_that_is_not_json_is_one_line_naming_it(tmp_path):
    ann, results = tmp_path / "val.txt", tmp_path / "r.json"
    ann.write_text("not json")
    results.write_text("[]")
    out = run_tool("tools/eval_det.py", "--ann", str(ann), "--results", str(results))
    assert out.returncode == 2 and out.stderr.strip() == (
        f"error: {ann} is not valid JSON (line 1, column 1: Expecting value)"
    )


def test_export_to_onnx_matches_pytorch_and_predicts_the_same(baseline, coco, tmp_path):
    pytest.importorskip("onnxruntime", reason="the optional extra 'export' is not installed")
    images = [str(coco / "images" / f"val_{i}.png") for i in range(3)]
    out = tmp_path / "model.onnx"
    args = ["--checkpoint", str(baseline.best), "--out", str(out), "--dynamic", "--images"]
    result = run_tool("tools/export_det.py", *args, *images)
    assert result.returncode == 0, result.stderr[-2000:]
    reported = float(result.stdout.split("differ from PyTorch's by at most ")[1].split()[0])
    assert reported < 1e-4  # the README's stated tolerance
    assert not out.with_name(out.name + ".data").exists()  # one file, no stray weights beside
    assert "dynamic_axes" not in result.stderr  # the exporter's deprecation warning

    from_torch = Detector.from_checkpoint(baseline.best, device="cpu", score_threshold=0.0)
    from_onnx = Detector.from_onnx(out, score_threshold=0.0)
    assert from_onnx.class_names == from_torch.class_names and from_onnx.size == 64
    for a, b in zip(from_torch.predict(images), from_onnx.predict(images), strict=True):
        # This barely trained model scores many boxes alike, so NMS may keep a different
        # one of two near-equal boxes: the scores agree, and the best detection.
        assert len(a["scores"]) == len(b["scores"]) > 0
        np.testing.assert_allclose(np.sort(a["scores"]), np.sort(b["scores"]), atol=1e-5)
        best_a, best_b = a["scores"].argmax(), b["scores"].argmax()
        np.testing.assert_allclose(a["boxes"][best_a], b["boxes"][best_b], atol=1e-3)
        assert a["labels"][best_a] == b["labels"][best_b]

    # A static file (batch 1, the training size) at another size, checked in process.
    static = tmp_path / "static.onnx"
    model = from_torch.model
    meta = detector_metadata(model, ["red", "blue"], [1, 5], 96, from_torch.settings)
    export_onnx(model, static, 96, meta)
    batch = torch.rand(2, 3, 96, 96)
    assert largest_difference(model, OnnxYOLOv3(static), batch, dynamic=False) < 1e-4


def test_two_processes_under_torchrun(config_file, tmp_path):
    out = tmp_path / "ddp"
    result = run_tool(
        "tools/train_det.py",
        "--config",
        str(config_file),
        "--out",
        str(out),
        "--set",
        "tricks.mixup=true",
        "--set",
        "tricks.random_shapes=true",
        torchrun=2,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_jsonl(out / "metrics.jsonl")) == 2
    # two processes evaluated their halves and gathered them: one process evaluating the
    # same weights (last.pt, saved after the evaluation and its precise BN) gets the same
    alone = run_tool(
        "tools/eval_det.py",
        "--checkpoint",
        str(out / "checkpoints" / "last.pt"),
        "--out",
        str(tmp_path / "alone.json"),
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    single = json.loads((tmp_path / "alone.json").read_text())
    gathered = read_jsonl(out / "eval.jsonl")[-1]
    for name in STAT_NAMES:
        assert single[name] == pytest.approx(gathered[name], abs=1e-6), name


def test_export_of_a_head_with_every_pp_yolo_switch_matches_pytorch(config_file, tmp_path):
    """SPP, DropBlock, CoordConv and the IoU-aware output export, and the file's outputs
    (one more per anchor) equal the PyTorch model's."""
    pytest.importorskip("onnxruntime", reason="the optional extra 'export' is not installed")
    switches = ["tricks.spp=true", "tricks.dropblock=true", "tricks.coord_conv=true"]
    switches += ["tricks.iou_aware=true", "tricks.grid_alpha=1.05", "eval.nms=matrix"]
    run = _train_in_process(config_file, tmp_path / "run", switches)
    detector = Detector.from_checkpoint(run.best, device="cpu", score_threshold=0.0)
    model = detector.model
    meta = detector_metadata(model, ["red", "blue"], [1, 5], 64, detector.settings)
    path = export_onnx(model, tmp_path / "full.onnx", 64, meta, dynamic=True)
    exported = OnnxYOLOv3(path)
    batch = torch.rand(2, 3, 64, 64)
    assert [o.shape[-1] for o in exported(batch)] == [8, 8, 8]
    assert largest_difference(model, exported, batch, dynamic=True) < 1e-4
    from_onnx = Detector.from_onnx(path, score_threshold=0.0)
    assert from_onnx.model.iou_aware_factor == 0.4 and from_onnx.model.grid_alpha == 1.05
    assert from_onnx.settings.method == "matrix"


def test_checkpoints_name_their_task_and_those_of_before_still_load(baseline, tmp_path):
    from detect_tricks.core.errors import CheckpointError
    from detect_tricks.tasks.classification import load_trained_classifier
    from detect_tricks.utils.checkpoint import atomic_save

    saved = load_checkpoint(baseline.best)
    assert saved["metadata"]["task"] == "det"
    del saved["metadata"]["task"]  # as written before checkpoints named their task
    old = tmp_path / "old.pt"
    atomic_save(saved, old)
    assert Detector.from_checkpoint(old, device="cpu").class_names == ["red", "blue"]
    with pytest.raises(CheckpointError, match="not a checkpoint of tools/train_cls.py"):
        load_trained_classifier(baseline.best)


def test_an_ema_run_evaluates_predicts_and_exports_its_ema_weights(config_file, tmp_path):
    run = _train_in_process(
        config_file, tmp_path / "ema", ["train.ema=true", "train.ema_decay=0.5"]
    )
    saved = load_checkpoint(run.best)
    ema, raw = saved["ema"]["module"], saved["model"]
    differing = [k for k in ema if ema[k].is_floating_point() and not torch.equal(ema[k], raw[k])]
    assert differing  # the EMA is not the raw model
    detector = Detector.from_checkpoint(run.best, device="cpu")
    for name, value in detector.model.state_dict().items():
        assert torch.equal(value, ema[name]), name
    # the run's own evaluation scored the EMA too: re-evaluating the EMA gives its numbers
    stats = run_tool(
        "tools/eval_det.py", "--checkpoint", str(run.best), "--out", str(tmp_path / "e.json")
    )
    assert stats.returncode == 0, stats.stderr[-2000:]
    assert json.loads((tmp_path / "e.json").read_text())["AP50"] == pytest.approx(
        read_jsonl(run.evals)[-1]["AP50"], abs=1e-6
    )
