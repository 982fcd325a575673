"""The Python API: load a trained detector, detect objects in images.

    from detect_tricks.inference.detector import Detector
    detector = Detector.from_checkpoint("runs/yolov3_r18d_fruit_bof/checkpoints/best.pt")
    for found in detector.predict(["a.jpg", "b.png"]):
        print(found["names"], found["scores"], found["boxes"])   # boxes: xyxy pixels

Images are file paths or numpy arrays (H, W, 3) uint8, RGB by default (`bgr=True` for
OpenCV's order). Boxes come back in the original image's pixels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
import torch

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.data.det_transforms import DetectionEvalTransform
from detect_tricks.data.image import read_rgb
from detect_tricks.data.records import DetectionSource
from detect_tricks.inference.visualize import draw_detections, image_grid, save_rgb
from detect_tricks.models import build_detector
from detect_tricks.models.weights import load_weights
from detect_tricks.models.yolov3 import YOLOv3
from detect_tricks.tasks.detection import detect_batch, nms_settings
from detect_tricks.utils.checkpoint import load_trained
from detect_tricks.utils.distributed import resolve_device
from detect_tricks.yolo.postprocess import GLUONCV_NMS, NMSSettings, rescale_boxes

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# What `predict` takes, as torchvision and ultralytics users pass it: a path, a PIL image,
# an (H, W, 3) uint8 array (RGB, or BGR with bgr=True), a (3, H, W) tensor (uint8, or
# float in [0, 1]), or a list of those.
ImageInput = Union[str, Path, np.ndarray, torch.Tensor, "PILImage"]


class Detector:
    """A trained YOLOv3 with its class names, input size and NMS settings.

    Args:
        model: the network (evaluation mode is set here).
        class_names: name of each label.
        category_ids: the dataset's category id of each label (for COCO results).
        size: square input size.
        settings: score threshold, top-k, NMS IoU, detections per image.
        device: where to run.
    """

    def __init__(
        self,
        model: YOLOv3,
        class_names: list[str],
        category_ids: list[int],
        size: int = 416,
        settings: NMSSettings = GLUONCV_NMS,
        device: torch.device | str = "cpu",
        config: DetConfig | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.config = config  # the training run's config, when made from a checkpoint
        self.model = model.eval().to(self.device)
        self.class_names = class_names
        self.category_ids = category_ids
        self.size = size
        self.settings = settings
        self.transform = DetectionEvalTransform(size)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str = "auto",
        size: int | None = None,
        score_threshold: float | None = None,
    ) -> Detector:
        """A detector from a checkpoint of `tools/train_det.py` (its EMA weights when on).

        Args:
            path: `last.pt` or `best.pt`.
            device: "auto", "cpu" or "cuda".
            size: input size (default: the training config's `data.size`).
            score_threshold: keep detections above it (default: `eval.score_threshold`).
        """
        if size is not None and (size <= 0 or size % 32):
            raise ValueError(f"size must be a positive multiple of 32, got {size}")
        if score_threshold is not None and not 0 <= score_threshold <= 1:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        trained = load_trained(path, "det")
        metadata = trained.metadata
        cfg = config_from_dict(trained.config, DetConfig, source=f"the config in {path}")
        cfg.model.backbone_weights = cfg.model.init_from = ""  # the checkpoint holds them
        model = build_detector(cfg.model, cfg.tricks)
        load_weights(model, trained.weights, str(path))
        settings = nms_settings(cfg.eval)
        if score_threshold is not None:
            settings = dataclasses.replace(settings, score_threshold=score_threshold)
        return cls(
            model,
            metadata["class_names"],
            metadata["category_ids"],
            size or cfg.data.size,
            settings,
            resolve_device(device),
            cfg,
        )

    @classmethod
    def from_onnx(cls, path: str | Path, score_threshold: float | None = None) -> Detector:
        """A detector from a file of `tools/export_det.py`, run by onnxruntime on the CPU
        with the same decoding, NMS and `predict` as the PyTorch model."""
        from detect_tricks.inference.export import OnnxYOLOv3

        model = OnnxYOLOv3(path)
        meta = model.metadata
        settings = NMSSettings(**meta["nms"])
        if score_threshold is not None:
            settings = dataclasses.replace(settings, score_threshold=score_threshold)
        return cls(model, meta["class_names"], meta["category_ids"], meta["size"], settings)

    def predict(
        self, images: ImageInput | list[ImageInput], bgr: bool = False, batch_size: int = 8
    ) -> list[dict[str, np.ndarray | list[str]]]:
        """Per image: `boxes` (K, 4) xyxy pixels, `scores` (K,), `labels` (K,), `names`;
        `images` as `ImageInput` describes, one or a list (a (B, 3, H, W) tensor too)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) == 1 and isinstance(images[0], torch.Tensor) and images[0].ndim == 4:
            images = list(images[0])  # a (B, 3, H, W) batch
        found = []
        for start in range(0, len(images), batch_size):
            arrays = [self._as_rgb(im, bgr) for im in images[start : start + batch_size]]
            batch = torch.stack([self.transform(a) for a in arrays]).to(self.device)
            for array, det in zip(
                arrays, detect_batch(self.model, batch, self.settings), strict=True
            ):
                boxes = rescale_boxes(det["boxes"].cpu(), (self.size, self.size), array.shape[:2])
                labels = det["labels"].cpu().numpy()
                found.append(
                    {
                        "boxes": boxes.numpy(),
                        "scores": det["scores"].cpu().numpy(),
                        "labels": labels,
                        "names": [self.class_names[i] for i in labels],
                    }
                )
        return found

    @staticmethod
    def _as_rgb(image: ImageInput, bgr: bool) -> np.ndarray:
        """`image` as an (H, W, 3) uint8 RGB array; a clear ValueError for anything else."""
        if isinstance(image, (str, Path)):
            return read_rgb(image)
        if isinstance(image, torch.Tensor):
            image = _tensor_to_array(image)
        elif not isinstance(image, np.ndarray) and hasattr(image, "convert"):  # PIL
            return np.asarray(image.convert("RGB"))
        if not isinstance(image, np.ndarray):
            raise ValueError(
                f"predict takes paths, PIL images, (H, W, 3) uint8 arrays or (3, H, W) "
                f"tensors, got {type(image).__name__}"
            )
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.size:
            raise ValueError(
                f"images must be non-empty (H, W, 3) uint8 arrays, got {image.shape} {image.dtype}"
            )
        return np.ascontiguousarray(image[..., ::-1]) if bgr else image


def _tensor_to_array(image: torch.Tensor) -> np.ndarray:
    """A (3, H, W) tensor, uint8 or float in [0, 1] (torchvision's convention), as an
    (H, W, 3) uint8 array; other dtypes, float values outside [0, 1] (0-255 floats, a
    common slip) and NaN are a ValueError rather than a silently different image."""
    if image.ndim != 3 or image.shape[0] != 3 or not image.numel():
        raise ValueError(f"tensor images must be non-empty (3, H, W), got {tuple(image.shape)}")
    image = image.detach().cpu()
    if image.is_floating_point():
        if not torch.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ValueError(
                "float tensor images must hold finite values in [0, 1] (torchvision's "
                f"convention), got [{image.min().item():g}, {image.max().item():g}]; "
                "divide 0-255 values by 255 or pass uint8"
            )
        image = (image * 255).round()
    elif image.dtype != torch.uint8:
        raise ValueError(f"tensor images must be uint8 or float in [0, 1], got {image.dtype}")
    return image.to(torch.uint8).permute(1, 2, 0).numpy()


def save_prediction_grid(
    model: YOLOv3,
    source: DetectionSource,
    cfg: DetConfig,
    path: str | Path,
    count: int = 8,
    score_threshold: float = 0.3,
) -> Path:
    """Draw the first `count` images of `source` with predicted boxes (coloured, above
    `score_threshold`) and ground truth (white) into one grid picture."""
    device = next(model.parameters()).device
    settings = dataclasses.replace(nms_settings(cfg.eval), score_threshold=score_threshold)
    detector = Detector(
        model, source.class_names, source.category_ids, cfg.data.size, settings, device
    )
    pictures = []
    for index in range(min(count, len(source))):
        image, record = source.load(index)
        found = detector.predict(image)[0]
        pictures.append(
            draw_detections(
                image,
                found["boxes"],
                found["labels"],
                found["scores"],
                source.class_names,
                ground_truth=record.boxes,
            )
        )
    return save_rgb(path, image_grid(pictures))
