"""Detection augmentation keeps boxes on their pixels; mixup; random shapes across ranks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from detect_tricks.data.cls_transforms import IMAGENET_MEAN, IMAGENET_STD
from detect_tricks.data.det_transforms import (
    RGB_TO_YIQ,
    Canvas,
    DetectionEvalTransform,
    DetectionTrainTransform,
    crop_boxes,
    limit_canvas,
    pairwise_iou,
    random_expand,
    random_ssd_crop,
    resize,
    rotate_hue_yiq,
    ssd_crop_window,
)
from detect_tricks.data.mixup import blend_detection_samples, draw_mixup_lambda
from detect_tricks.data.sampling import TrainBatchSampler, random_shape_schedule

MAGENTA = np.array([255, 0, 255], np.uint8)


def _scene(rng: np.random.Generator, h: int = 120, w: int = 160):
    """Grey noise with two solid magenta rectangles and their exact boxes."""
    image = rng.integers(60, 140, (h, w, 3), dtype=np.uint8)
    image[..., 1] = 100  # no noise pixel is magenta
    boxes = np.array([[20, 30, 70, 90], [100, 10, 150, 50]], np.float32)
    for x0, y0, x1, y1 in boxes.astype(int):
        image[y0:y1, x0:x1] = MAGENTA
    target = {"boxes": boxes, "labels": np.array([0, 1]), "weights": np.ones(2, np.float32)}
    return image, target


def _is_magenta(image: np.ndarray) -> np.ndarray:
    return (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] > 200)


def _assert_boxes_cover_the_drawn_pixels(image: np.ndarray, boxes: np.ndarray) -> None:
    """Every box is mostly magenta inside, and every magenta pixel lies in some box."""
    magenta = _is_magenta(image)
    covered = np.zeros_like(magenta)
    for x0, y0, x1, y1 in boxes:
        inner = magenta[int(np.ceil(y0)) + 1 : int(y1) - 1, int(np.ceil(x0)) + 1 : int(x1) - 1]
        if inner.size:
            assert inner.mean() > 0.9, (x0, y0, x1, y1)
        covered[
            max(int(y0) - 1, 0) : int(np.ceil(y1)) + 1, max(int(x0) - 1, 0) : int(np.ceil(x1)) + 1
        ] = True
    assert not (magenta & ~covered).any(), "magenta pixels outside every box"


@pytest.mark.parametrize("seed", range(12))
def test_geometric_steps_keep_boxes_on_their_pixels(seed):
    rng = np.random.default_rng(seed)
    image, target = _scene(rng)
    canvas, target = random_expand(image, target, rng)
    _assert_boxes_cover_the_drawn_pixels(canvas.full(), target["boxes"])
    image, target = random_ssd_crop(canvas, target, rng)
    assert len(target["boxes"]) >= 1
    # resize with nearest neighbour keeps colours exact
    image, target = resize(image, target, 96, interpolation=0)
    _assert_boxes_cover_the_drawn_pixels(image, target["boxes"])


@pytest.mark.parametrize("seed", range(8))
def test_full_training_transform_keeps_boxes_with_the_flip(seed):
    image, target = _scene(np.random.default_rng(100 + seed))
    transform = DetectionTrainTransform()
    tensor, out = transform(image, target, 128, np.random.default_rng(seed))
    assert tensor.shape == (3, 128, 128) and tensor.dtype == torch.float32
    assert set(out) == {"boxes", "labels", "weights"} and out["labels"].dtype == torch.int64
    assert len(out["boxes"]) == len(out["labels"]) == len(out["weights"]) >= 1
    assert (out["boxes"] >= 0).all() and (out["boxes"] <= 128).all()
    again, _ = transform(image, target, 128, np.random.default_rng(seed))
    assert torch.equal(tensor, again)  # deterministic given the seed


def test_flip_moves_boxes_to_the_mirrored_place():
    image, target = _scene(np.random.default_rng(0))
    transform = DetectionTrainTransform()
    for seed in range(20):
        flipped, out = transform._flip(image, target, np.random.default_rng(seed))
        if not np.array_equal(flipped, image):
            expected = target["boxes"].copy()
            expected[:, [0, 2]] = 160 - target["boxes"][:, [2, 0]]
            np.testing.assert_allclose(out["boxes"], expected)
            _assert_boxes_cover_the_drawn_pixels(flipped, out["boxes"])
            return
    pytest.fail("no flip in 20 draws at p=0.5")


def test_a_crop_of_the_virtual_canvas_equals_the_crop_of_the_materialised_one():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    canvas = Canvas(image, height=70, width=90, top=25, left=33)
    materialised = np.empty((70, 90, 3), np.uint8)
    materialised[:] = canvas.crop(0, 0, 1, 1)[0, 0]  # the mean colour
    materialised[25:55, 33:73] = image
    np.testing.assert_array_equal(canvas.full(), materialised)
    for window in [(0, 0, 20, 20), (30, 20, 80, 60), (50, 40, 90, 70), (35, 27, 70, 50)]:
        x0, y0, x1, y1 = window
        np.testing.assert_array_equal(canvas.crop(*window), materialised[y0:y1, x0:x1])
    assert Canvas.of(image).crop(1, 2, 5, 6).base is not None  # unexpanded: a view, no copy
    assert tuple(canvas.crop(0, 0, 1, 1)[0, 0]) == (124, 116, 104)  # round(255 * mean)
    # a paint changes the image's pixels, never the fill
    painted = canvas.crop(30, 20, 80, 60, paint=lambda pixels: 255 - pixels)
    expected = materialised[20:60, 30:80].copy()
    expected[5:35, 3:43] = 255 - image[:, :40]
    np.testing.assert_array_equal(painted, expected)


def _jitter_first(transform: DetectionTrainTransform, jitter: bool = True):
    """The same transform, but jittering the whole photo before anything else (GluonCV's
    order), or not at all: returns `(image, target, size, seed) -> output`. It reuses the
    module's jitter to test the order alone; the jitter's strengths are checked against
    GluonCV's values by `test_the_colour_jitter_has_gluoncvs_strengths`."""

    def run(image, target, size, seed):
        rng = np.random.default_rng(seed)
        paint = transform._draw_colour_jitter(rng)  # the same draws from the same stream
        if jitter:
            image = paint(image)
        transform._draw_colour_jitter = lambda _rng: lambda pixels: pixels
        try:
            return transform(image, target, size, rng)
        finally:
            del transform._draw_colour_jitter

    return run


@pytest.mark.parametrize("hue", ["ssd", "gluoncv"])
def test_jittering_only_the_cropped_pixels_gives_the_pixels_of_jittering_the_photo(hue):
    # max_side 200 shrinks most expanded canvases: that path jitters before shrinking
    transform = DetectionTrainTransform(max_side=200, hue=hue)
    reference = _jitter_first(DetectionTrainTransform(max_side=200, hue=hue))
    unjittered = _jitter_first(DetectionTrainTransform(max_side=200, hue=hue), jitter=False)
    level = 1 / 255 / IMAGENET_STD.min()  # one level of 255, normalised
    worst, shares, jittered = 0.0, [], 0
    for seed in range(40):
        image, target = _scene(np.random.default_rng(seed), h=97, w=131)
        ours, ours_target = transform(image, target, 64, np.random.default_rng(seed))
        theirs, their_target = reference(image, target, 64, seed)
        torch.testing.assert_close(ours_target, their_target)
        diff = (ours - theirs).abs()
        worst = max(worst, float(diff.max()))
        shares.append(float((diff > 1e-5).float().mean()))
        plain, _ = unjittered(image, target, 64, seed)
        jittered += float((ours - plain).abs().max()) > 10 * level
    # OpenCV rounds a row's last pixels by another path; cropping moves which they are
    assert worst <= 2 * level + 1e-5  # one level, at most doubled by a sharpening resize
    assert np.mean(shares) < 0.02
    assert jittered >= 10  # the jitter moved 17 of these 40 by over 10 levels (steps: p 0.5)


@pytest.mark.parametrize("seed", range(6))
def test_a_shrunk_canvas_keeps_boxes_on_their_pixels_and_its_picture(seed):
    rng = np.random.default_rng(seed)
    image, target = _scene(rng)
    canvas, target = random_expand(image, target, rng, max_ratio=4.0)
    shrunk, shrunk_target = limit_canvas(canvas, target, max_side=150)
    assert max(shrunk.height, shrunk.width) == 150
    assert shrunk.top + shrunk.image.shape[0] <= shrunk.height
    assert shrunk.left + shrunk.image.shape[1] <= shrunk.width
    _assert_boxes_cover_the_drawn_pixels(shrunk.full(), shrunk_target["boxes"])
    # the same picture as shrinking the materialised canvas, but for edge pixels
    expected = cv2.resize(
        canvas.full(), (shrunk.width, shrunk.height), interpolation=cv2.INTER_AREA
    )
    difference = np.abs(shrunk.full().astype(int) - expected.astype(int))
    assert np.median(difference) <= 1 and (difference > 40).mean() < 0.05
    small = Canvas(image, 140, 150, 10, 5)
    assert limit_canvas(small, target, max_side=150)[0] is small  # fits: untouched


def test_crop_drops_boxes_whose_centre_leaves_the_window():
    target = {
        "boxes": np.array([[0, 0, 10, 10], [30, 30, 50, 50]], np.float32),
        "labels": np.array([4, 5]),
        "weights": np.array([1.0, 0.5], np.float32),
    }
    out = crop_boxes(target, np.array([8, 8, 45, 60], np.float32))
    np.testing.assert_array_equal(out["boxes"], [[22, 22, 37, 42]])
    assert out["labels"].tolist() == [5] and out["weights"].tolist() == [0.5]


@pytest.mark.parametrize(("low", "high"), [(0.3, None), (0.7, None), (None, 0.2)])
def test_ssd_crop_windows_respect_their_iou_constraint(monkeypatch, low, high):
    import detect_tricks.data.det_transforms as det_transforms

    monkeypatch.setattr(det_transforms, "CROP_CONSTRAINTS", ((low, high),))
    boxes = np.array([[30, 20, 130, 100]], np.float32)
    found = 0
    for seed in range(30):
        windows = ssd_crop_window(boxes, 120, 160, np.random.default_rng(seed))
        assert windows[0].tolist() == [0, 0, 160, 120]  # the whole image, always
        for window in windows[1:]:
            found += 1
            w, h = window[2] - window[0], window[3] - window[1]
            assert window[0] >= 0 and window[2] <= 160 and window[1] >= 0 and window[3] <= 120
            assert 0.5 * 0.95 <= (w / h) * (120 / 160) <= 2 * 1.05  # aspect ratio, rounded
            assert w * h >= 0.3**2 * 160 * 120 * 0.95  # scale >= 0.3
            iou = pairwise_iou(window[None], boxes)[0, 0]
            assert (low or 0.0) <= iou <= (high or 1.0)
    assert found >= 5


def test_eval_transform_resizes_without_keeping_the_aspect_ratio():
    out = DetectionEvalTransform(64)(np.zeros((30, 90, 3), np.uint8))
    assert out.shape == (3, 64, 64)


def test_mixup_blends_on_a_top_left_canvas_and_weights_the_boxes():
    a = np.full((4, 6, 3), 100, np.uint8)
    b = np.full((5, 3, 3), 200, np.uint8)
    ta = {
        "boxes": np.array([[0, 0, 2, 2]], np.float32),
        "labels": np.array([0]),
        "weights": np.ones(1, np.float32),
    }
    tb = {
        "boxes": np.array([[1, 1, 3, 4]], np.float32),
        "labels": np.array([2]),
        "weights": np.ones(1, np.float32),
    }
    mixed, target = blend_detection_samples((a, ta), (b, tb), lam=0.25)
    assert mixed.shape == (5, 6, 3)
    assert mixed[0, 0, 0] == 175  # 0.25 * 100 + 0.75 * 200
    assert mixed[0, 5, 0] == 25  # only the first image: 0.25 * 100
    assert mixed[4, 0, 0] == 150  # only the second: 0.75 * 200
    assert mixed[4, 5, 0] == 0  # neither
    np.testing.assert_array_equal(target["boxes"], [[0, 0, 2, 2], [1, 1, 3, 4]])
    assert target["labels"].tolist() == [0, 2]
    np.testing.assert_allclose(target["weights"], [0.25, 0.75])


def test_mixup_lambda_is_beta_drawn_and_clipped():
    rng = np.random.default_rng(0)
    draws = [draw_mixup_lambda(1.5, rng) for _ in range(2000)]
    assert all(0 <= d <= 1 for d in draws)
    assert abs(np.mean(draws) - 0.5) < 0.02  # Beta(1.5, 1.5) is symmetric
    assert abs(np.var(draws) - 1 / 16) < 0.01  # var = a^2 / ((2a)^2 (2a + 1)) = 1/16


def test_random_shapes_identical_on_every_rank_and_changing_every_10_iterations():
    sizes = list(range(320, 609, 32))
    schedule = random_shape_schedule(seed=5, sizes=sizes, interval=10)
    per_rank = []
    for rank in (0, 1):
        sampler = TrainBatchSampler(400, 8, rank, 2, seed=5, size_schedule=schedule)
        sampler.set_epoch(2)
        per_rank.append([batch[0].size for batch in sampler])
    assert per_rank[0] == per_rank[1]
    runs = [per_rank[0][i : i + 10] for i in range(0, 50, 10)]
    assert all(len(set(run)) == 1 for run in runs)  # constant within 10 iterations
    assert len({run[0] for run in runs}) > 1 and set(per_rank[0]) <= set(sizes)


def test_pairwise_iou_matches_hand_computed_values():
    windows = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], np.float32)
    boxes = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [30, 30, 40, 40]], np.float32)
    expected = [[25 / 175, 1.0, 0.0], [100 / 400, 100 / 400, 0.0]]
    np.testing.assert_allclose(pairwise_iou(windows, boxes), expected, rtol=1e-6)


def test_expand_ratio_one_never_expands(monkeypatch):
    import detect_tricks.data.det_transforms as det_transforms

    def fail(*args, **kwargs):
        raise AssertionError("random_expand called with expand_ratio=1")

    image, target = _scene(np.random.default_rng(3))
    expanded = 0
    original = det_transforms.random_expand

    def count(*args, **kwargs):
        nonlocal expanded
        expanded += 1
        assert args[3] == 2.5  # the configured ratio reaches the expand
        return original(*args, **kwargs)

    monkeypatch.setattr(det_transforms, "random_expand", count)
    for seed in range(20):
        DetectionTrainTransform(expand_ratio=2.5)(image, target, 64, np.random.default_rng(seed))
    assert 3 <= expanded <= 17  # p = 0.5 over 20 draws
    monkeypatch.setattr(det_transforms, "random_expand", fail)
    for seed in range(20):
        DetectionTrainTransform(expand_ratio=1.0)(image, target, 64, np.random.default_rng(seed))


# GluonCV's RGB -> YIQ matrix (data/transforms/experimental/image.py), written out here.
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])


def test_gluoncv_hue_rotation_keeps_luma_and_turns_chroma_by_the_angle():
    np.testing.assert_allclose(RGB_TO_YIQ, YIQ)
    rng = np.random.default_rng(0)
    image = rng.integers(90, 170, (16, 16, 3), dtype=np.uint8)  # chroma too small to clip
    for angle in (0.0, 0.7, -2.0, np.pi):
        out = rotate_hue_yiq(image, angle)
        turn = np.array(
            [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
        )
        yiq_in = image.reshape(-1, 3) @ YIQ.T
        yiq_out = out.reshape(-1, 3).astype(np.float64) @ YIQ.T
        # GluonCV's three-decimal matrices are inverses to about 1e-3: a unit of rounding
        np.testing.assert_allclose(yiq_out[:, 0], yiq_in[:, 0], atol=2.0)  # luma kept
        np.testing.assert_allclose(yiq_out[:, 1:], yiq_in[:, 1:] @ turn[1:, 1:].T, atol=2.5)
    grey = np.full((2, 2, 3), 128, np.uint8)
    assert np.abs(rotate_hue_yiq(grey, 1.0).astype(int) - 128).max() <= 1


def _output_hue(tensor: torch.Tensor) -> float:
    """OpenCV hue (0-180) of the centre pixel of a normalised training tensor."""
    rgb = tensor[:, 32, 32].numpy() * IMAGENET_STD + IMAGENET_MEAN
    pixel = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)[None, None]
    return float(cv2.cvtColor(pixel, cv2.COLOR_RGB2HSV)[0, 0, 0])


@pytest.mark.parametrize(("hue", "far_share"), [("ssd", (0.0, 0.0)), ("gluoncv", (0.15, 0.45))])
def test_the_hue_mode_sets_how_far_a_colour_moves(hue, far_share):
    """ssd moves hue by at most 18 OpenCV units (a few more where brightness clips a
    channel); gluoncv's rotation is uniform, so about a third of the draws land more
    than 30 units (60 degrees) away."""
    orange = np.zeros((64, 64, 3), np.uint8)
    orange[:] = (230, 120, 30)  # OpenCV hue 14
    target = {
        "boxes": np.array([[8, 8, 56, 56]], np.float32),
        "labels": np.array([0]),
        "weights": np.ones(1, np.float32),
    }
    transform = DetectionTrainTransform(expand_ratio=1.0, hue=hue)
    shifts = []
    for seed in range(60):
        tensor, _ = transform(orange, target, 64, np.random.default_rng(seed))
        shift = abs(_output_hue(tensor) - 14)
        shifts.append(min(shift, 180 - shift))  # hue is circular
    shifts = np.array(shifts)
    low, high = far_share
    assert low <= np.mean(shifts > 30) <= high, np.sort(shifts)[-8:]
    assert 0.3 <= np.mean(shifts <= 2) <= 0.75  # p = 0.5 of no hue step at all


def test_the_colour_jitter_has_gluoncvs_strengths():
    # GluonCV's random_color_distort (data/transforms/experimental/image.py), each step with
    # probability 0.5: brightness `src += U(-32, 32)`, then contrast `src *= U(0.5, 1.5)`
    # (about zero, not the mean), saturation towards the pixel's grey, hue. On a grey photo
    # of two levels (top 40, bottom 120; the flip is left-right) saturation and hue change
    # nothing: top = (40 + delta) * alpha and bottom = (120 + delta) * alpha.
    image = np.full((40, 40, 3), 40, np.uint8)
    image[20:] = 120
    transform = DetectionTrainTransform(hue="ssd")
    alphas, deltas = [], []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        out, _ = transform.jitter_and_flip(image, {"boxes": np.zeros((0, 4))}, 40, rng)
        top, bottom = float(out[:20].mean()), float(out[20:].mean())
        alphas.append((bottom - top) / 80)
        deltas.append(top / alphas[-1] - 40)
    alphas, deltas = np.array(alphas), np.array(deltas)
    assert 0.5 - 0.02 <= alphas.min() < 0.6 and 1.4 < alphas.max() <= 1.5 + 0.02
    assert -32 - 2 <= deltas.min() < -25 and 25 < deltas.max() <= 32 + 2  # levels round
    # each step with probability 0.5: Binomial(300, 0.5) untouched, 150 +- 5 std (43)
    assert 107 <= int((np.abs(alphas - 1) < 0.01).sum()) <= 193
    assert 107 <= int((np.abs(deltas) < 0.6).sum()) <= 193
