"""YOLOv3 over ResNet: shapes, channels read from the backbone, gradients, overfitting."""

from __future__ import annotations

import pytest
import torch

from detect_tricks.core.config import COCO_ANCHORS, DetModelConfig
from detect_tricks.metrics.coco_eval import (
    detections_to_results,
    evaluate_results,
    load_ground_truth,
)
from detect_tricks.models import DETECTORS, build_detector
from detect_tricks.yolo.loss import YOLOv3Loss
from detect_tricks.yolo.postprocess import postprocess


def test_output_shapes_for_any_size_divisible_by_32():
    model = DETECTORS["yolov3_resnet18_d"](num_classes=3, width=0.25).eval()
    for h, w in [(128, 128), (96, 160), (320, 224)]:
        outputs = model(torch.randn(2, 3, h, w))
        assert [tuple(o.shape) for o in outputs] == [(2, 3, h // s, w // s, 8) for s in (8, 16, 32)]


def test_head_reads_the_backbone_channels():
    r18, r50 = (
        DETECTORS["yolov3_resnet18_d"](num_classes=1),
        DETECTORS["yolov3_resnet50_d"](num_classes=1),
    )
    assert r18.blocks[0].body[0][0].in_channels == 512  # ResNet-18 stride-32 tap
    assert r50.blocks[0].body[0][0].in_channels == 2048
    assert r50.blocks[1].body[0][0].in_channels == 256 + 1024
    assert r50.blocks[2].body[0][0].in_channels == 128 + 512
    assert [h.out_channels for h in r50.heads] == [3 * 6] * 3
    assert len(DETECTORS) == 16


def test_objectness_starts_at_the_prior():
    model = DETECTORS["yolov3_resnet18_d"](num_classes=2, width=0.25)
    bias = model.heads[0].bias.view(3, 7)
    torch.testing.assert_close(bias[:, 4].sigmoid(), torch.full((3,), 0.01))
    assert bias[:, :4].abs().sum() == 0 and bias[:, 5:].abs().sum() == 0


def test_every_parameter_gets_a_finite_gradient():
    torch.manual_seed(0)
    model = build_detector(DetModelConfig(arch="yolov3_resnet18_d", width=0.25, num_classes=2))
    loss_fn = YOLOv3Loss(2, torch.tensor(COCO_ANCHORS), label_smoothing=True)
    targets = [
        {
            "boxes": torch.tensor([[4.0, 8, 60, 50], [70, 70, 120, 126]]),
            "labels": torch.tensor([0, 1]),
            "weights": torch.tensor([1.0, 0.4]),
        },
        {
            "boxes": torch.zeros(0, 4),
            "labels": torch.zeros(0, dtype=torch.int64),
            "weights": torch.zeros(0),
        },
    ]
    losses = loss_fn(model(torch.randn(2, 3, 128, 128)), targets, (128, 128))
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def _two_images() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Two 128 px images of coloured rectangles on noise, 3 classes by colour."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 128, 128, generator=generator) * 0.3
    specs = [
        [(0, [10, 12, 50, 70]), (1, [70, 30, 118, 60])],
        [(2, [30, 40, 100, 110]), (0, [4, 90, 30, 124])],
    ]
    colours = torch.tensor([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], [0.1, 0.1, 1.0]])
    targets = []
    for image, objects in zip(images, specs, strict=True):
        for label, (x0, y0, x1, y1) in objects:
            image[:, y0:y1, x0:x1] = colours[label][:, None, None]
        targets.append(
            {
                "boxes": torch.tensor([box for _, box in objects], dtype=torch.float32),
                "labels": torch.tensor([label for label, _ in objects]),
                "weights": torch.ones(len(objects)),
            }
        )
    return images, targets


def _coco_ground_truth(targets) -> dict:
    images, annotations = [], []
    for image_id, target in enumerate(targets, start=1):
        images.append({"id": image_id, "width": 128, "height": 128})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": f"c{i}"} for i in range(3)]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.mark.slow
def test_overfits_two_images_to_ap50_above_0_9():
    """Loss, assignment and decoding agree: a small model learns 2 images perfectly."""
    torch.manual_seed(0)
    torch.set_flush_denormal(True)
    images, targets = _two_images()
    model = DETECTORS["yolov3_resnet18_d"](num_classes=3, width=0.25)
    loss_fn = YOLOv3Loss(3, model.anchors)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):
        loss = loss_fn(model(images), targets, (128, 128))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        detections = postprocess(model(images), model.anchors, model.strides, (128, 128))
    results = []
    for image_id, det in enumerate(detections, start=1):
        results += detections_to_results(
            image_id, det["boxes"], det["scores"], det["labels"], [1, 2, 3]
        )
    stats = evaluate_results(load_ground_truth(_coco_ground_truth(targets)), results)
    assert stats["AP50"] >= 0.9, stats["table"]


# --- PP-YOLO's head switches --------------------------------------------------------------


def _detector(**tricks):
    from detect_tricks.core.config import DetTricksConfig

    cfg = DetModelConfig(arch="yolov3_resnet18_d", width=0.25, num_classes=2)
    return build_detector(cfg, DetTricksConfig(**tricks))


def test_all_switches_off_is_the_gluoncv_head_key_for_key():
    torch.manual_seed(0)
    plain = build_detector(DetModelConfig(arch="yolov3_resnet18_d", width=0.25, num_classes=2))
    torch.manual_seed(0)
    same = _detector()
    assert plain.state_dict().keys() == same.state_dict().keys()
    for name, value in plain.state_dict().items():
        assert torch.equal(value, same.state_dict()[name]), name


def test_spp_pools_5_9_13_on_the_deepest_level_only():
    from detect_tricks.models.yolov3 import SpatialPyramidPooling

    model = _detector(spp=True)
    spp = [m for m in model.modules() if isinstance(m, SpatialPyramidPooling)]
    assert len(spp) == 1 and spp[0] is model.blocks[0].body[3]
    assert [p.kernel_size for p in spp[0].pools] == [5, 9, 13]
    channels = model.blocks[0].body[2][0].out_channels
    assert spp[0].conv[0].in_channels == 4 * channels and spp[0].conv[0].out_channels == channels
    # one bright pixel: maxpool k spreads it over k x k, the identity keeps it at one
    x = torch.zeros(1, channels, 15, 15)
    x[0, :, 7, 7] = 1.0
    pooled = torch.cat([x, *(pool(x) for pool in spp[0].pools)], 1)
    assert [int(pooled[0, i * channels].sum()) for i in range(4)] == [1, 25, 81, 169]
    assert [tuple(o.shape) for o in model.eval()(torch.randn(1, 3, 64, 64))] == [
        (1, 3, 8, 8, 7),
        (1, 3, 4, 4, 7),
        (1, 3, 2, 2, 7),
    ]


def test_dropblock_drops_at_its_gamma_rate_in_training_only():
    from detect_tricks.models.yolov3 import DropBlock

    model = _detector(dropblock=True)
    blocks = [m for m in model.modules() if isinstance(m, DropBlock)]
    assert len(blocks) == 3
    assert blocks[0] is model.blocks[0].body[4] and blocks[1] is model.blocks[1].body[2]
    drop = DropBlock(rate=0.1, block_size=3)
    torch.manual_seed(0)
    x = torch.ones(400, 1, 20, 20)
    out = drop(x)
    # gamma = p / b^2 * HW / ((H - b + 1)(W - b + 1)) = 0.1 / 9 * 400 / 324 = 0.013717;
    # away from the borders a pixel is dropped when any of the 9 seeds around it is:
    # 1 - (1 - gamma)^9 = 0.1169 of the interior
    gamma = 0.1 / 9 * 400 / 324
    interior = (out[:, :, 2:-2, 2:-2] == 0).float().mean().item()
    assert interior == pytest.approx(1 - (1 - gamma) ** 9, abs=0.006)
    kept = out[out != 0]
    assert torch.allclose(kept, kept[0].expand_as(kept))  # survivors rescaled alike
    assert kept[0].item() == pytest.approx(1 / (1 - (out == 0).float().mean().item()), rel=1e-4)
    drop.eval()
    assert torch.equal(drop(x), x)  # evaluation is untouched
    model.eval()
    image = torch.randn(1, 3, 64, 64)
    first, second = model(image), model(image)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_coord_conv_joins_x_and_y_from_minus_one_to_one():
    from detect_tricks.models.yolov3 import CoordConvBNLeaky

    model = _detector(coord_conv=True)
    coord = [m for m in model.modules() if isinstance(m, CoordConvBNLeaky)]
    assert len(coord) == 6  # the first conv and the tip of each of the three levels
    layer = CoordConvBNLeaky(1, 1, 1)
    seen = {}
    layer[0].register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0]))
    layer(torch.zeros(2, 1, 3, 5))
    joined = seen["x"]
    assert joined.shape == (2, 3, 3, 5)
    torch.testing.assert_close(joined[0, 1, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    torch.testing.assert_close(joined[1, 2, :, 4], torch.tensor([-1.0, 0.0, 1.0]))


def test_iou_aware_adds_one_output_per_anchor_starting_at_zero():
    model = _detector(iou_aware=True)
    outputs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outputs] == [8, 8, 8]
    assert model.iou_aware_factor == 0.4 and _detector().iou_aware_factor is None
    bias = model.heads[0].bias.view(3, 8)
    assert bias[:, 7].abs().sum() == 0 and torch.allclose(
        bias[:, 4].sigmoid(), torch.full((3,), 0.01)
    )
