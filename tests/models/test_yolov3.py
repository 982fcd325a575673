"""YOLOv3 over ResNet: shapes, channels read from the backbone, gradients, overfitting."""

from __future__ import annotations

import pytest
import torch

from detect_tricks.coco_eval import detections_to_results, evaluate_results, load_ground_truth
from detect_tricks.config import COCO_ANCHORS, DetModelConfig
from detect_tricks.losses import YOLOv3Loss
from detect_tricks.models import DETECTORS, build_detector
from detect_tricks.postprocess import postprocess


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
