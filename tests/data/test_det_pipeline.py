"""The training sample as a list of operations: every committed config gives the samples
of the wiring it replaced, mosaic's tail and probability hold, and mosaic then mixup
keeps the per-box mixup weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict, load_config
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.det_pipeline import (
    GluonCVTransform,
    Mixup,
    Mosaic,
    Sample,
    SampleContext,
    build_det_train_pipeline,
)
from detect_tricks.data.det_transforms import DetectionTrainTransform, limit_size
from detect_tricks.data.detection import max_photo_side
from detect_tricks.data.mixup import blend_detection_samples, draw_mixup_lambda
from detect_tricks.data.sampling import SampleKey
from detect_tricks.data.synthetic import generate
from detect_tricks.tasks.detection import build_train_set, input_sizes

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs" / "det").glob("*.yaml"))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> CocoDetection:
    root = generate(tmp_path_factory.mktemp("scenes"), 12, seed=3, val_fraction=0.0)
    return CocoDetection(root / "annotations" / "instances_train.json", root / "images")


def _photo(source: CocoDetection, index: int, max_side: int):
    image, record = source.load(index)
    target = {
        "boxes": record.boxes.copy(),
        "labels": record.labels.copy(),
        "weights": np.ones(len(record.boxes), np.float32),
    }
    return limit_size(image, target, max_side)


def _before(source: CocoDetection, cfg: DetConfig, key: SampleKey):
    """The sample as the dataset made it before the pipeline: limit_size, then mixup with
    a random partner until the tail, then GluonCV's transform, all from the key's seed."""
    max_side = max_photo_side(max(input_sizes(cfg)))
    rng = np.random.default_rng(key.seed)
    image, target = _photo(source, key.index, max_side)
    tricks = cfg.tricks
    if tricks.mixup and key.epoch < cfg.train.epochs - tricks.mixup_off_epochs:
        lam = draw_mixup_lambda(tricks.mixup_alpha, rng)
        if lam < 1.0:
            partner = _photo(source, int(rng.integers(len(source))), max_side)
            image, target = blend_detection_samples((image, target), partner, lam)
    transform = DetectionTrainTransform(cfg.data.expand_ratio, max_side, cfg.data.hue)
    return transform(image, target, key.size or cfg.data.size, rng)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("mixup", [False, True])
def test_every_committed_config_gives_the_samples_of_before(source, path, mixup):
    cfg = load_config(
        path,
        DetConfig,
        [f"tricks.mixup={str(mixup).lower()}", "train.epochs=10", "tricks.mixup_off_epochs=4"],
    )
    dataset = build_train_set(cfg, source)
    sizes = input_sizes(cfg)
    for seed in range(24):
        key = SampleKey(seed % len(source), 1000 + seed, sizes[seed % len(sizes)], seed % 10)
        image, target = dataset[key]
        expected_image, expected_target = _before(source, cfg, key)
        assert torch.equal(image, expected_image), (path.stem, seed)
        for name in ("boxes", "labels", "weights"):
            assert torch.equal(target[name], expected_target[name]), (path.stem, seed, name)


def _context(seed: int, epoch: int, source: CocoDetection, size: int = 128) -> SampleContext:
    return SampleContext(
        np.random.default_rng(seed),
        epoch,
        size,
        lambda rng: _photo(source, int(rng.integers(len(source))), 400),
    )


def test_mosaic_stops_for_its_tail_and_draws_nothing_there(source):
    operation = Mosaic(probability=1.0, scale_range=(0.5, 1.5), until_epoch=8)
    photo = Sample(*_photo(source, 0, 400))
    for epoch in range(10):
        context = _context(epoch, epoch, source)
        out = operation(photo, context)
        if epoch < 8:
            assert out.placed and out.image.shape == (128, 128, 3)
            assert (out.target["boxes"] >= 0).all() and (out.target["boxes"] <= 128).all()
        else:
            assert out is photo
            assert context.rng.uniform() == np.random.default_rng(epoch).uniform()


def test_mixup_stops_for_its_tail_and_draws_nothing_there(source):
    # Bag of Freebies §3.1 / GluonCV's --no-mixup-epochs: mixup until the last N epochs
    operation = Mixup(alpha=1.5, until_epoch=6)
    photo = Sample(*_photo(source, 0, 400))
    for epoch in range(9):
        mixed = 0
        for seed in range(20):
            context = _context(seed, epoch, source)
            out = operation(photo, context)
            if epoch >= 6:
                assert out is photo
                assert context.rng.uniform() == np.random.default_rng(seed).uniform()
            elif len(out.target["weights"]) > len(photo.target["weights"]):
                mixed += 1
        # Beta(1.5, 1.5) clipped: a lam of 1 (no partner) is rare, so most samples mix
        assert (mixed >= 15) if epoch < 6 else (mixed == 0)


def test_limit_size_shrinks_the_longer_side_and_scales_the_boxes_by_hand():
    image = np.zeros((500, 1000, 3), np.uint8)
    target = {"boxes": np.array([[100, 50, 600, 250]], np.float32), "labels": np.zeros(1)}
    out, shrunk = limit_size(image, target, 300)
    assert out.shape == (150, 300, 3)  # 1000 -> 300, 500 -> 150: the factor 0.3
    np.testing.assert_allclose(shrunk["boxes"], [[30, 15, 180, 75]], rtol=1e-6)
    same, kept = limit_size(image, target, 1000)  # the longer side at the limit: untouched
    assert same is image and kept is target
    thin = np.zeros((1001, 3, 3), np.uint8)  # a side that rounds to 0 keeps one pixel
    out, shrunk = limit_size(thin, {"boxes": np.array([[0, 0, 3, 1001]], np.float32)}, 100)
    assert out.shape == (100, 1, 3)
    np.testing.assert_allclose(shrunk["boxes"], [[0, 0, 1, 100]], rtol=1e-6)


def test_mosaic_happens_with_its_probability(source):
    operation = Mosaic(probability=0.3, scale_range=(0.5, 1.5), until_epoch=1)
    photo = Sample(*_photo(source, 0, 400))
    placed = [operation(photo, _context(seed, 0, source)).placed for seed in range(600)]
    # Binomial(600, 0.3): mean 180, std 11.2; 5 std either way
    assert 124 <= sum(placed) <= 236


def test_mosaic_then_mixup_keeps_the_size_and_the_box_weights(source):
    mosaic_op = Mosaic(probability=1.0, scale_range=(0.5, 1.5), until_epoch=1)
    mixup_op = Mixup(alpha=1.5, until_epoch=1)
    mixed = 0
    for seed in range(40):
        context = _context(seed, 0, source)
        sample = mosaic_op(Sample(*_photo(source, seed % len(source), 400)), context)
        before = len(sample.target["boxes"])
        out = mixup_op(sample, context)
        assert out.placed and out.image.shape == (128, 128, 3)
        weights = out.target["weights"]
        if len(weights) > before:  # a partner came in: lam for the mosaic, 1 - lam for it
            lam = weights[0]
            np.testing.assert_allclose(weights[:before], lam)
            np.testing.assert_allclose(weights[before:], 1 - lam, rtol=1e-6)
            assert (out.target["boxes"] <= 128 + 1e-4).all()
            mixed += 1
    assert mixed > 20


def test_the_pipeline_follows_the_switches_in_order():
    base = {"train": {"epochs": 30}}
    plain = build_det_train_pipeline(config_from_dict(base, DetConfig), 100)
    assert [type(op) for op in plain] == [GluonCVTransform]
    cfg = config_from_dict(
        {
            **base,
            "tricks": {"mixup": True, "mosaic": True, "mosaic_prob": 0.5, "mosaic_off_epochs": 5},
        },
        DetConfig,
    )
    both = build_det_train_pipeline(cfg, 100)
    assert [type(op) for op in both] == [Mosaic, Mixup, GluonCVTransform]
    assert both[0] == Mosaic(0.5, (0.5, 1.5), 25) and both[1] == Mixup(1.5, 10)


@pytest.mark.parametrize(
    "tricks", [[], ["tricks.mixup=true"], ["tricks.mosaic=true", "tricks.mixup=true"]]
)
def test_the_ram_cache_gives_the_same_samples_and_its_photos_stay_unwritten(source, tricks):
    """Photos smaller than the largest side training uses are cached as decoded, so the
    samples are those of decoding every time; the cached arrays are read-only, so an
    operation that wrote into its input would fail here."""
    overrides = ["train.epochs=4", "tricks.mosaic_off_epochs=1", *tricks]
    plain_cfg = config_from_dict({"data": {"size": 128}}, DetConfig, overrides)
    cached_cfg = config_from_dict({"data": {"size": 128, "cache": "ram"}}, DetConfig, overrides)
    plain, cached = build_train_set(plain_cfg, source), build_train_set(cached_cfg, source)
    assert cached.cache is not None and len(cached.cache) == len(source)
    assert all(not image.flags.writeable for image, _ in cached.cache.values())
    for seed in range(30):
        key = SampleKey(seed % len(source), seed, 128, seed % 4)
        (a, ta), (b, tb) = plain[key], cached[key]
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"]), seed


def test_a_large_jpeg_is_decoded_reduced_into_the_cache_with_its_boxes_scaled(tmp_path):
    import json

    from PIL import Image

    pixels = np.zeros((1600, 2400, 3), np.uint8)
    pixels[400:800, 600:1200] = 255  # one white box
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    data = {
        "images": [{"id": 1, "file_name": "big.jpg", "width": 2400, "height": 1600}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [600, 400, 600, 400]}],
        "categories": [{"id": 1, "name": "box"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    big = CocoDetection(tmp_path / "ann.json", tmp_path)
    cfg = config_from_dict({"data": {"size": 96, "cache": "ram"}}, DetConfig)  # max side 320
    dataset = build_train_set(cfg, big)
    image, target = dataset.cache[0]
    assert max(image.shape[:2]) == 320 and image.shape[:2] == (213, 320)
    # 2400 x 1600 decoded at a quarter (600 x 400), shrunk to 320 x 213: y scale 213 / 1600
    np.testing.assert_allclose(target["boxes"], [[80, 53.25, 160, 106.5]], atol=0.01)
    ys, xs = np.nonzero(image[..., 0] > 127)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == pytest.approx(
        (80, 53, 160, 107), abs=1
    )
