"""Weight import from torchvision / timm state dicts on disk (random weights, no download)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from detect_tricks.core.errors import WeightsError
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
        (lambda: timm.create_model("resnet50c"), CLASSIFIERS["resnet50_c"], ".pth"),
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


# --- Weights by name, and fine-tuning from a detector --------------------------------------


def _detector(num_classes: int, **model):
    from detect_tricks.core.config import DetModelConfig
    from detect_tricks.models import build_detector

    return build_detector(DetModelConfig(num_classes=num_classes, width=0.25, **model))


def test_torchvision_weights_by_name_come_from_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # torch.hub's cache, written here
    source = torchvision.models.resnet18()
    _randomise_bn(source)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    from detect_tricks.core.config import DetModelConfig
    from detect_tricks.models import build_detector

    cfg = DetModelConfig(
        arch="yolov3_resnet18", num_classes=2, backbone_weights="torchvision/resnet18"
    )
    model = build_detector(cfg)
    for name, value in source.state_dict().items():
        if not name.startswith("fc."):
            assert torch.equal(model.backbone.state_dict()[name], value), name


def test_timm_weights_by_name_come_from_the_hugging_face_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    source = timm.create_model("resnet18d", num_classes=0)
    _randomise_bn(source)
    repo = tmp_path / "models--timm--resnet18d.ra2_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    save_file(source.state_dict(), snapshot / "model.safetensors")
    from detect_tricks.models.weights import resolve_weights

    assert resolve_weights("timm/resnet18d.ra2_in1k", "key") == snapshot / "model.safetensors"
    ours = CLASSIFIERS["resnet18_d"](num_classes=0)
    load_weights_file(ours, resolve_weights("timm/resnet18d.ra2_in1k", "key"), skip_head=True)
    torch.testing.assert_close(
        ours.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"]
    )


def test_named_weights_offline_without_a_cache_name_the_file_to_fetch(tmp_path, monkeypatch):
    from detect_tricks.models.weights import resolve_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _offline)
    with pytest.raises(WeightsError, match="fetch it and put it at .*resnet18-f37072fd.pth"):
        resolve_weights("torchvision/resnet18", "model.backbone_weights")
    with pytest.raises(WeightsError, match="no weight file at runs/x/checkpoints/best.pt"):
        resolve_weights("runs/x/checkpoints/best.pt", "model.backbone_weights")


def _offline(*args, **kwargs):
    raise OSError("no network")


def test_fine_tuning_from_a_detector_of_other_classes(tmp_path, caplog):
    trained = _detector(3)
    path = tmp_path / "detector.pt"
    torch.save({"model": trained.state_dict()}, path)
    with caplog.at_level("INFO", logger="detect_tricks.models"):
        tuned = _detector(2, init_from=str(path))
    fresh = {k for k, v in tuned.state_dict().items() if v.shape != trained.state_dict()[k].shape}
    assert fresh == {f"heads.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    for name, value in tuned.state_dict().items():
        if name not in fresh:
            assert torch.equal(value, trained.state_dict()[name]), name
    assert "freshly initialised (other classes or head): heads.0.bias" in caplog.text
    with pytest.raises(
        WeightsError, match="holds a whole detector, not a backbone.*model.init_from"
    ):
        _detector(2, backbone_weights=str(path))
