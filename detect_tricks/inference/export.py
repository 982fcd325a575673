"""ONNX export of a trained detector, and running the exported file like the PyTorch model.

The file holds the network's raw head outputs, one per level, `(B, 3, H, W, 5 + C)`
(one more with IoU-aware heads; named `out8`, `out16`, `out32` by stride); decoding and
NMS stay outside, as they do in `yolo/postprocess.py`, so one decoder serves both, and the
chosen `eval.nms` (standard, DIoU or Matrix NMS) and the grid sensitivity apply to an
exported model too. The metadata a detector needs (class names, category ids, input
size, anchors, the decoding, NMS settings) travels in the file's
`metadata_props`, so `Detector.from_onnx(path)` needs nothing else. onnx and onnxruntime
are the optional extra `export` (`pip install detect_tricks[export]`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detect_tricks.core.errors import CheckpointError
from detect_tricks.models.yolov3 import STRIDES, YOLOv3
from detect_tricks.yolo.postprocess import NMSSettings

OPSET = 18  # the lowest the torch.export-based exporter writes without conversion
OUTPUT_NAMES = [f"out{s}" for s in STRIDES]


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(
            f"ONNX export needs {module}: pip install 'detect_tricks[export]' "
            "(onnx and onnxruntime)"
        ) from err


def export_onnx(
    model: YOLOv3,
    path: str | Path,
    size: int,
    metadata: dict[str, Any],
    dynamic: bool = False,
) -> Path:
    """Write `model` (on the CPU, in eval mode) to `path` for `size` x `size` inputs.

    `dynamic` lets the batch and the input size vary (multiples of 32); `metadata` is
    stored as JSON under the key `detect_tricks`.
    """
    onnx = _require("onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    example = torch.zeros(1, 3, size, size)
    shapes = None
    if dynamic:  # batch, height and width free; the exporter infers how they relate
        auto = torch.export.Dim.AUTO
        shapes = {"images": {0: auto, 2: auto, 3: auto}}
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["images"],
        output_names=OUTPUT_NAMES,
        dynamic_shapes=shapes,
        opset_version=OPSET,
        dynamo=True,
        external_data=False,  # one file: no stray <name>.onnx.data beside it
        verbose=False,
    )
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "detect_tricks", json.dumps(metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def detector_metadata(
    model: YOLOv3,
    class_names: list[str],
    category_ids: list[int],
    size: int,
    settings: NMSSettings,
) -> dict[str, Any]:
    """What `Detector.from_onnx` needs besides the network."""
    return {
        "class_names": class_names,
        "category_ids": category_ids,
        "size": size,
        "anchors": model.anchors.tolist(),
        "strides": list(model.strides),
        "grid_alpha": model.grid_alpha,
        "iou_aware_factor": model.iou_aware_factor,
        "nms": dataclasses.asdict(settings),
    }


@torch.inference_mode()
def largest_difference(
    model: YOLOv3, exported: OnnxYOLOv3, images: torch.Tensor, dynamic: bool
) -> float:
    """The largest absolute difference between the two models' head outputs on `images`
    (fed one at a time to a static file, whose batch is 1)."""
    chunks = [images] if dynamic else list(images.split(1))
    return max(
        (a - b).abs().max().item()
        for chunk in chunks
        for a, b in zip(model(chunk), exported(chunk), strict=True)
    )


class OnnxYOLOv3:
    """An exported detector run by onnxruntime, called like the `YOLOv3` module it came
    from: images in, the three raw head outputs (torch tensors) out, with `anchors` and
    `strides` for decoding."""

    def __init__(self, path: str | Path) -> None:
        ort = _require("onnxruntime")
        onnx = _require("onnx")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX file at {self.path}")
        try:
            stored = {p.key: p.value for p in onnx.load(str(self.path)).metadata_props}
        except Exception as err:  # protobuf's DecodeError and onnx's own errors vary by version
            raise CheckpointError(
                f"{self.path} is not a readable ONNX file ({type(err).__name__})"
            ) from None
        if "detect_tricks" not in stored:
            raise CheckpointError(f"{self.path} was not written by tools/export_det.py")
        self.metadata = json.loads(stored["detect_tricks"])
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.anchors = torch.tensor(self.metadata["anchors"], dtype=torch.float32)
        self.strides = tuple(self.metadata["strides"])
        # files written before these switches existed decode as YOLOv3 does
        self.grid_alpha = self.metadata.get("grid_alpha", 1.0)
        self.iou_aware_factor = self.metadata.get("iou_aware_factor")
        self.training = False

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        feed = {"images": np.ascontiguousarray(images.detach().cpu().float().numpy())}
        return [torch.from_numpy(o) for o in self.session.run(OUTPUT_NAMES, feed)]

    def eval(self) -> OnnxYOLOv3:  # the Detector treats it as a module in eval mode
        return self

    def to(self, device: torch.device | str) -> OnnxYOLOv3:
        if torch.device(device).type != "cpu":
            raise ValueError("the ONNX detector runs on the CPU (onnxruntime's CPU provider)")
        return self
