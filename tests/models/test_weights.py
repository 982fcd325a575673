"""Weight import from torchvision / timm state dicts on disk (random weights, no download)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from detect_tricks.errors import WeightsError
from detect_tricks.models import CLASSIFIERS
from detect_tricks.models.weights import load_weights_file

timm = pytest.importorskip("timm", reason="timm (the dev extra) provides the reference models")


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BN statistics, so an unloaded buffer would change the logits."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)


@pytest.mark.parametrize(
    ("make_source", "make_ours", "suffix"),
    [
        (lambda: torchvision.models.resnet50(), CLASSIFIERS["resnet50_b"], ".pth"),
        (lambda: torchvision.models.resnet18(), CLASSIFIERS["resnet18_b"], ".safetensors"),
        (lambda: timm.create_model("resnet50d"), CLASSIFIERS["resnet50_d"], ".safetensors"),
        (lambda: timm.create_model("resnet18d"), CLASSIFIERS["resnet18_d"], ".pth"),
        (lambda: timm.create_model("resnet34d"), CLASSIFIERS["resnet34_d"], ".pt"),
    ],
)
def test_imported_model_gives_the_source_logits(tmp_path, make_source, make_ours, suffix):
    torch.manual_seed(0)
    source = make_source().eval()
    _randomise_bn(source)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    else:
        torch.save(source.state_dict(), path)
    ours = make_ours().eval()
    load_weights_file(ours, path)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert (ours(x) - source(x)).abs().max().item() < 1e-4


def test_a_state_dict_that_does_not_fit_lists_the_problems(tmp_path):
    path = tmp_path / "tv.pth"
    torch.save(torchvision.models.resnet50().state_dict(), path)
    with pytest.raises(WeightsError) as err:
        load_weights_file(CLASSIFIERS["resnet50_d"](num_classes=10), path)
    message = str(err.value)
    assert "do not fit ResNet" in message
    assert "missing keys (conv1.0.weight" in message
    assert "unexpected keys (conv1.weight" in message
    assert "shape mismatches (fc.bias: file (1000,) vs model (10,)" in message


def test_backbone_import_skips_the_classifier(tmp_path):
    path = tmp_path / "timm18d.pth"
    torch.save({"state_dict": timm.create_model("resnet18d").state_dict()}, path)
    backbone = CLASSIFIERS["resnet18_d"](num_classes=0)
    load_weights_file(backbone, path, skip_head=True)
    assert torch.equal(
        backbone.layer4[1].conv2.weight, torch.load(path)["state_dict"]["layer4.1.conv2.weight"]
    )
