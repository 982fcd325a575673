"""Mixed precision changes a training step by its precision only: a bf16 step (CPU and
CUDA) and an fp16 step with its GradScaler (CUDA) against the fp32 step. The CUDA tests
are marked `gpu` and skipped without CUDA; `benchmarks/device/session.sh` runs them."""

from __future__ import annotations

import pytest
import torch

from detect_tricks.core.config import DetConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.tasks.table import DETECTION

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the GPU machine)")


def _detector_and_batch(device: str):
    model_cfg = {"arch": "yolov3_resnet18_d", "width": 0.25, "num_classes": 2}
    cfg = config_from_dict({"model": model_cfg, "data": {"size": 64}}, DetConfig)
    torch.manual_seed(0)
    model = DETECTION.build_model(cfg).to(device)
    objective = DETECTION.build_objective(cfg, None)
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(device)
    box = {"boxes": torch.tensor([[4.0, 6, 40, 50]]), "labels": torch.tensor([0])}
    target = {**box, "weights": torch.ones(1)}
    targets = [{k: v.to(device) for k, v in target.items()} for _ in range(4)]
    return model, objective, images, targets


def _head_gradient(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([head.weight.grad.flatten() for head in model.heads]).float()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, CUDA])])
def test_a_bf16_step_is_the_fp32_step_within_bf16_precision(device):
    """bf16 autocast changes a step by its precision (8 bits of mantissa): the loss within
    1% of fp32's and the output layer's gradient within a cosine of 0.9 (0.99 measured on
    the CPU). Deeper layers' gradients agree less at a random start (cosines of 0.5-0.7
    measured: BatchNorm over a batch of 4 amplifies the rounding), the noise of a minibatch."""
    model, objective, images, targets = _detector_and_batch(device)
    results = []
    for enabled in (False, True):
        model.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=enabled):
            loss = objective(model, images, targets, 0)["loss"]
        loss.backward()
        results.append((loss.item(), _head_gradient(model)))
    (fp32, g32), (bf16, g16) = results
    assert bf16 == pytest.approx(fp32, rel=0.01)
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0).item() > 0.9


@pytest.mark.gpu
@CUDA
def test_an_fp16_step_with_its_grad_scaler_unscales_to_the_fp32_gradients():
    model, objective, images, targets = _detector_and_batch("cuda")
    model.zero_grad()
    objective(model, images, targets, 0)["loss"].backward()
    g32 = _head_gradient(model)
    weights = [p.detach().clone() for p in model.parameters()]

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    assert scaler.get_scale() == 2.0**16  # PyTorch's initial scale
    optimizer.zero_grad()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = objective(model, images, targets, 0)["loss"]
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # the gradients back at the loss's scale
    g16 = _head_gradient(model)
    assert torch.nn.functional.cosine_similarity(g32, g16, dim=0).item() > 0.9
    assert g16.norm().item() == pytest.approx(g32.norm().item(), rel=0.05)
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0**16  # finite gradients: the step was taken, scale kept
    assert any(not torch.equal(w, p) for w, p in zip(weights, model.parameters(), strict=True))
