"""Detection transforms that move boxes with the pixels: the GluonCV YOLOv3 presets.

Training, in GluonCV's order (`YOLO3DefaultTrainTransform`, docs/design.md §3): colour jitter
(brightness +-32, contrast and saturation in [0.5, 1.5], hue +-18 OpenCV hue units, i.e.
+-36 degrees, each p=0.5),
random expand (p=0.5, canvas up to 4x filled with the mean colour), SSD random crop with
IoU constraints, resize to the training size with a random interpolation, horizontal
flip (p=0.5), normalise. Evaluation: resize to the size, normalise.

The hue shift (`data.hue`) is by default the one the SSD recipe meant (`hue_delta` 18
on OpenCV's 0-180 hue). GluonCV's `random_color_distort` draws `alpha` in +-18 and
rotates the hue by `alpha * pi` radians in YIQ space: 18 whole turns either way, so in
effect a uniformly random hue, which can turn an orange banana-coloured where colour is
what tells classes apart. `data.hue: gluoncv` does that rotation (`rotate_hue_yiq`);
on fruit it cost 0.041 AP [0.032, 0.050] against the SSD shift (3 seeds,
`configs/ablations/fruit_hue.yaml`, docs/results/fruit_hue.md).

albumentations does the colour jitter; OpenCV the resize. albumentations has no SSD
crop with minimum-IoU constraints (`RandomSizedBBoxSafeCrop` keeps every box, a
different rule) and no zoom-out expand, so those two are written here, as is the flip
(a mirror of the array and the boxes, 35x cheaper than its bbox pipeline). Every random
choice comes from the generator passed in. Boxes are float32 xyxy pixels; `labels` and
`weights` follow their boxes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from detect_tricks.data.cls_transforms import IMAGENET_MEAN, to_normalized_tensor

Target = dict[str, np.ndarray]  # boxes (n, 4) float32, labels (n,) int64, weights (n,) float32
PixelMap = Callable[[np.ndarray], np.ndarray]  # a colour change of each pixel on its own
INTERPOLATIONS = (
    cv2.INTER_NEAREST,
    cv2.INTER_LINEAR,
    cv2.INTER_AREA,
    cv2.INTER_CUBIC,
    cv2.INTER_LANCZOS4,
)
# YIQ from RGB and back, to three decimals as GluonCV's `random_color_distort` has them.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]], dtype=np.float64
)
YIQ_TO_RGB = np.array(
    [[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]], dtype=np.float64
)
HUE_MODES = ("ssd", "gluoncv")
MIN_CROP_SCALE = 0.3  # the SSD crop keeps at least this fraction of each side
GLUONCV_EXPAND_RATIO = 4.0  # random expand's largest canvas side over the image's
EXPAND_FILL = tuple(int(v) for v in np.round(IMAGENET_MEAN * 255))  # random expand's RGB fill
# SSD crop constraints (min IoU, max IoU) with every box; None is unbounded.
CROP_CONSTRAINTS = ((0.1, None), (0.3, None), (0.5, None), (0.7, None), (0.9, None), (None, 1.0))


def select_boxes(target: Target, keep: np.ndarray) -> Target:
    """The boxes (with their labels and weights) where `keep` is True."""
    return {key: value[keep] for key, value in target.items()}


@dataclass
class Canvas:
    """An image at (`top`, `left`) of a `height` x `width` canvas of the mean colour.

    Random expand makes canvases up to 16 times the image's area; only the part the SSD
    crop keeps is ever materialised, which gives the same pixels for a fraction of the
    memory and time.
    """

    image: np.ndarray
    height: int
    width: int
    top: int = 0
    left: int = 0

    @classmethod
    def of(cls, image: np.ndarray) -> Canvas:
        """The image itself, unexpanded."""
        return cls(image, image.shape[0], image.shape[1])

    def crop(self, x0: int, y0: int, x1: int, y1: int, paint: PixelMap | None = None) -> np.ndarray:
        """The canvas pixels of the window [x0, x1) x [y0, y1), with `paint` (a pointwise
        colour change) applied to the image's pixels in it, not to the fill.

        The image's part of the window, bordered with the mean colour in one OpenCV call
        (filling the window and then copying the image in took three times as long).
        """
        paint = paint or (lambda pixels: pixels)
        h, w = self.image.shape[:2]
        if (self.top, self.left, self.height, self.width) == (0, 0, h, w):
            return paint(self.image[y0:y1, x0:x1])
        ix0, ix1 = max(x0, self.left), min(x1, self.left + w)
        iy0, iy1 = max(y0, self.top), min(y1, self.top + h)
        if ix1 <= ix0 or iy1 <= iy0:
            return np.full((y1 - y0, x1 - x0, 3), EXPAND_FILL, dtype=self.image.dtype)
        inside = self.image[iy0 - self.top : iy1 - self.top, ix0 - self.left : ix1 - self.left]
        return cv2.copyMakeBorder(
            paint(inside),
            iy0 - y0,
            y1 - iy1,
            ix0 - x0,
            x1 - ix1,
            cv2.BORDER_CONSTANT,
            value=EXPAND_FILL,
        )

    def full(self, paint: PixelMap | None = None) -> np.ndarray:
        return self.crop(0, 0, self.width, self.height, paint)


def random_expand(
    image: np.ndarray,
    target: Target,
    rng: np.random.Generator,
    max_ratio: float = GLUONCV_EXPAND_RATIO,
) -> tuple[Canvas, Target]:
    """Place the image at a random spot of a canvas up to `max_ratio` times larger, filled
    with the mean colour (a zoom-out: objects become smaller)."""
    h, w = image.shape[:2]
    ratio = rng.uniform(1.0, max_ratio)
    out_h, out_w = int(h * ratio), int(w * ratio)
    top, left = int(rng.integers(0, out_h - h + 1)), int(rng.integers(0, out_w - w + 1))
    boxes = target["boxes"] + np.array([left, top, left, top], dtype=np.float32)
    return Canvas(image, out_h, out_w, top, left), {**target, "boxes": boxes}


def pairwise_iou(windows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of every window (m, 4) with every box (n, 4), xyxy: an (m, n) array."""
    top_left = np.maximum(windows[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(windows[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(2)
    window_areas = (windows[:, 2:] - windows[:, :2]).prod(1)
    box_areas = (boxes[:, 2:] - boxes[:, :2]).prod(1)
    return inter / (window_areas[:, None] + box_areas[None, :] - inter)


def crop_boxes(target: Target, window: np.ndarray) -> Target:
    """Boxes seen through a crop window: those whose centre lies inside, clipped and
    shifted to the window's coordinates."""
    boxes = target["boxes"]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = np.all((centres > window[:2]) & (centres < window[2:]), axis=1)
    kept = select_boxes(target, inside)
    clipped = np.clip(kept["boxes"], np.tile(window[:2], 2), np.tile(window[2:], 2))
    return {**kept, "boxes": (clipped - np.tile(window[:2], 2)).astype(np.float32)}


def random_windows(
    height: int,
    width: int,
    rng: np.random.Generator,
    trials: int,
    min_scale: float = MIN_CROP_SCALE,
    max_aspect_ratio: float = 2.0,
) -> np.ndarray:
    """`trials` random crop windows (x0, y0, x1, y1) of an image, as SSD draws them (scale
    `min_scale`-1 of each side, aspect ratio up to `max_aspect_ratio`), less those that do
    not fit in the image."""
    scale = rng.uniform(min_scale, 1.0, trials)
    ratio = rng.uniform(
        np.maximum(1 / max_aspect_ratio, scale * scale),
        np.minimum(max_aspect_ratio, 1 / (scale * scale)),
    )
    crop_h = (height * scale / np.sqrt(ratio)).astype(np.int64)
    crop_w = (width * scale * np.sqrt(ratio)).astype(np.int64)
    top = rng.integers(0, np.maximum(height - crop_h + 1, 1))
    left = rng.integers(0, np.maximum(width - crop_w + 1, 1))
    fits = (crop_h >= 1) & (crop_w >= 1) & (crop_h <= height) & (crop_w <= width)
    windows = np.stack([left, top, left + crop_w, top + crop_h], axis=1)
    return windows[fits].astype(np.float32)


def ssd_crop_window(
    boxes: np.ndarray, height: int, width: int, rng: np.random.Generator, trials: int = 50
) -> list[np.ndarray]:
    """Candidate crop windows (x0, y0, x1, y1): the whole image, plus for each constraint
    of `CROP_CONSTRAINTS` the first of `trials` random windows whose IoU with every box
    lies within the constraint's bounds.

    GluonCV (`random_crop_with_constraints`) tries the windows one by one in Python; here
    each constraint's trials are drawn and scored at once, the same rule in a fraction of
    the time (the crop was three quarters of a demo sample's loading time).
    """
    candidates = [np.array([0, 0, width, height], dtype=np.float32)]
    for min_iou, max_iou in CROP_CONSTRAINTS:
        windows = random_windows(height, width, rng, trials)
        if len(boxes):
            iou = pairwise_iou(windows, boxes)
            low = -np.inf if min_iou is None else min_iou
            high = np.inf if max_iou is None else max_iou
            windows = windows[(iou.min(axis=1) >= low) & (iou.max(axis=1) <= high)]
        if len(windows):
            candidates.append(windows[0])
    return candidates


def random_ssd_crop(
    canvas: Canvas, target: Target, rng: np.random.Generator, paint: PixelMap | None = None
) -> tuple[np.ndarray, Target]:
    """SSD's random crop: one of the candidate windows at random that keeps at least one
    box (the whole canvas when none does); `paint` as in `Canvas.crop`."""
    candidates = ssd_crop_window(target["boxes"], canvas.height, canvas.width, rng)
    while candidates:
        window = candidates.pop(int(rng.integers(len(candidates))))
        cropped = crop_boxes(target, window)
        if len(cropped["boxes"]) or not len(target["boxes"]):
            return canvas.crop(*(int(v) for v in window), paint), cropped
    return canvas.full(paint), target


def resize(
    image: np.ndarray, target: Target, size: int, interpolation: int = cv2.INTER_LINEAR
) -> tuple[np.ndarray, Target]:
    """Resize to `size` x `size` (no aspect-ratio keeping, as GluonCV's YOLO presets)."""
    h, w = image.shape[:2]
    out = cv2.resize(image, (size, size), interpolation=interpolation)
    scale = np.array([size / w, size / h, size / w, size / h], dtype=np.float32)
    return out, {**target, "boxes": target["boxes"] * scale}


def limit_size(image: np.ndarray, target: Target, max_side: int) -> tuple[np.ndarray, Target]:
    """Shrink an image (and its boxes) whose longer side exceeds `max_side`.

    Training outputs are at most S pixels and the SSD crop keeps at least 30% of a side,
    so no output pixel needs more than `S / MIN_CROP_SCALE` source pixels per side: larger photos
    only cost decoding-sized arrays in every later step.
    """
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, target
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    factors = np.array([size[0] / w, size[1] / h] * 2, dtype=np.float32)
    return out, {**target, "boxes": target["boxes"] * factors}


def limit_canvas(canvas: Canvas, target: Target, max_side: int) -> tuple[Canvas, Target]:
    """Shrink an expanded canvas (its image, offsets and boxes) whose longer side exceeds
    `max_side`, by the rule of `limit_size`.

    Random expand makes canvases up to 4x the photo's side, and the SSD crop and the resize
    to the training size then worked on up to 16x the pixels that the output can use:
    on real photos at 416 px this was the largest cost of a sample. The image lands within
    half a pixel of where the unshrunk one would, in the shrunk canvas's coordinates.
    """
    if max(canvas.height, canvas.width) <= max_side:
        return canvas, target
    scale = max_side / max(canvas.height, canvas.width)
    height, width = max(1, round(canvas.height * scale)), max(1, round(canvas.width * scale))
    factors = np.array([width / canvas.width, height / canvas.height] * 2, dtype=np.float32)
    h, w = canvas.image.shape[:2]
    size = (max(1, min(width, round(w * factors[0]))), max(1, min(height, round(h * factors[1]))))
    image = cv2.resize(canvas.image, size, interpolation=cv2.INTER_AREA)
    top = min(round(canvas.top * factors[1]), height - size[1])
    left = min(round(canvas.left * factors[0]), width - size[0])
    shrunk = Canvas(image, height, width, top, left)
    return shrunk, {**target, "boxes": target["boxes"] * factors}


def rotate_hue_yiq(image: np.ndarray, angle: float) -> np.ndarray:
    """Rotate every pixel's hue by `angle` radians in YIQ space (GluonCV's hue step): Y
    (luma) is kept, the chroma plane (I, Q) turns; RGB uint8 in and out, saturated."""
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[1.0, 0.0, 0.0], [0.0, cos, -sin], [0.0, sin, cos]])
    return cv2.transform(image, YIQ_TO_RGB @ turn @ RGB_TO_YIQ)


def to_tensors(image: np.ndarray, target: Target) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Normalised (3, H, W) float image and the target as tensors."""
    tensors = {
        "boxes": torch.from_numpy(np.ascontiguousarray(target["boxes"], dtype=np.float32)),
        "labels": torch.from_numpy(target["labels"].astype(np.int64)),
        "weights": torch.from_numpy(target["weights"].astype(np.float32)),
    }
    return to_normalized_tensor(image), tensors


class DetectionTrainTransform:
    """GluonCV's YOLOv3 training preset; call with an RGB uint8 image, its target, the
    output size and a generator.

    Args:
        expand_ratio: random expand's largest canvas side over the image's (GluonCV: 4);
            1 skips the expand, for data whose objects are already as small as they get.
        max_side: the longest canvas side the crop and resize work on (`limit_canvas`);
            None keeps every expanded canvas at full resolution.
        hue: `ssd`, a shift of up to +-18 OpenCV hue units; `gluoncv`, a uniformly random
            rotation in YIQ (module docstring). Each with probability 0.5.
    """

    def __init__(
        self,
        expand_ratio: float = GLUONCV_EXPAND_RATIO,
        max_side: int | None = None,
        hue: str = "ssd",
    ) -> None:
        import albumentations as A  # imported when a transform is built, not with the package

        if hue not in HUE_MODES:
            raise ValueError(f"hue must be one of {HUE_MODES}, got {hue!r}")
        self.expand_ratio = expand_ratio
        self.max_side = max_side
        self.hue = hue
        steps = [
            A.RandomBrightnessContrast(
                brightness_limit=(-32 / 255, 32 / 255), contrast_limit=0.0, p=0.5
            ),
            A.RandomBrightnessContrast(brightness_limit=0.0, contrast_limit=0.5, p=0.5),
            A.ColorJitter(brightness=0, contrast=0, saturation=(0.5, 1.5), hue=0, p=0.5),
        ]
        if hue == "ssd":
            steps.append(
                A.HueSaturationValue(
                    hue_shift_limit=18, sat_shift_limit=0, val_shift_limit=0, p=0.5
                )
            )
        self.color = A.Compose(steps)

    def __call__(
        self, image: np.ndarray, target: Target, size: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The transformed sample as tensors (`apply`, then `to_tensors`)."""
        return to_tensors(*self.apply(image, target, size, rng))

    def jitter_and_flip(
        self, image: np.ndarray, target: Target, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, Target]:
        """The colour jitter and the flip alone, for an image whose geometry is done (a
        mosaic of `size` x `size`)."""
        image = self._draw_colour_jitter(rng)(image)
        if image.shape[:2] != (size, size):
            image, target = resize(image, target, size)
        return self._flip(image, target, rng)

    def apply(
        self, image: np.ndarray, target: Target, size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, Target]:
        """The whole preset on RGB uint8 pixels: a `size` x `size` image and its boxes."""
        paint = self._draw_colour_jitter(rng)
        canvas = Canvas.of(image)
        if self.expand_ratio > 1 and rng.uniform() < 0.5:
            canvas, target = random_expand(image, target, rng, self.expand_ratio)
            if self.max_side is not None and max(canvas.height, canvas.width) > self.max_side:
                # shrinking mixes neighbouring pixels: jitter them all before, as GluonCV
                canvas.image, paint = paint(canvas.image), None
                canvas, target = limit_canvas(canvas, target, self.max_side)
        image, target = random_ssd_crop(canvas, target, rng, paint)
        interpolation = INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
        image, target = resize(image, target, size, interpolation)
        return self._flip(image, target, rng)

    def _draw_colour_jitter(self, rng: np.random.Generator) -> PixelMap:
        """Draw the colour jitter's parameters now (GluonCV jitters first) and return it as
        a function of the pixels, to apply later.

        Every step changes each pixel from its own value alone (brightness and contrast by
        one lookup table, saturation towards the pixel's own grey, hue), so jittering only
        the pixels that the crop keeps gives the pixels of jittering the whole photo and
        then cropping, for a fraction of the work on large photos: the same to within one
        level of 255 on about 1% of them (OpenCV's colour conversions round a row's last
        few pixels by another path, and cropping moves which pixels those are).
        """
        seed = int(rng.integers(2**31))
        hue_angle = None
        if self.hue == "gluoncv" and rng.uniform() < 0.5:
            hue_angle = rng.uniform(-np.pi, np.pi)

        def paint(pixels: np.ndarray) -> np.ndarray:
            self.color.set_random_seed(seed)
            pixels = self.color(image=pixels)["image"]
            return pixels if hue_angle is None else rotate_hue_yiq(pixels, hue_angle)

        return paint

    @staticmethod
    def _flip(
        image: np.ndarray, target: Target, rng: np.random.Generator
    ) -> tuple[np.ndarray, Target]:
        """Mirror left-right with probability 0.5; box x's become `width - x`."""
        if rng.uniform() >= 0.5:
            return image, target
        width = image.shape[1]
        boxes = target["boxes"][:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32)
        boxes += np.array([width, 0, width, 0], np.float32)
        return np.ascontiguousarray(image[:, ::-1]), {**target, "boxes": boxes}


class DetectionEvalTransform:
    """Resize to `size` x `size` (bilinear) and normalise; boxes are not needed."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        resized = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return to_normalized_tensor(resized)
