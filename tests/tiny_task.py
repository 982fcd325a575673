"""A tiny classification task that exercises the engine in a second on the CPU.

The dataset draws its augmentation from `SampleKey.seed` like the real datasets do, so
resume and multi-process tests check the same determinism contract.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from detect_tricks.core.config import (
    ClsConfig,
    EvalConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)
from detect_tricks.data.sampling import SampleKey, TrainBatchSampler
from detect_tricks.engine.evaluation import Evaluation
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.engine.setup import (
    build_loader,
    build_train_parts,
    configure_device,
    seed_everything,
)
from detect_tricks.engine.trainer import Trainer
from detect_tricks.utils.distributed import DistContext
from detect_tricks.utils.progress import setup_logging

NUM_CLASSES = 3


class TinyDataset(Dataset):
    """`n` fixed 3x8x8 images whose label is the brightest channel, plus keyed noise."""

    def __init__(self, n: int = 48) -> None:
        generator = torch.Generator().manual_seed(1234)
        self.labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
        self.images = torch.rand(n, 3, 8, 8, generator=generator)
        self.images[torch.arange(n), self.labels] += 0.5

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(key.seed)
        image = self.images[key.index] + 0.1 * torch.randn(3, 8, 8, generator=generator)
        if torch.rand((), generator=generator) < 0.5:
            image = image.flip(-1)
        return image, self.labels[key.index]


def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*samples, strict=True)
    return torch.stack(images), torch.stack(labels)


class TinyNet(nn.Module):
    """Conv + GroupNorm (no batch statistics, so the batch split does not matter)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)
        self.fc = nn.Linear(8, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(self.conv(x)))
        return self.fc(x.mean(dim=(2, 3)))


def cross_entropy_objective(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epoch: int
) -> dict[str, torch.Tensor]:
    loss = F.cross_entropy(model(images), labels)
    return {"loss": loss, "loss_cls": loss}


def calls_then(at: int, action):
    """The cross-entropy objective, running `action()` during its `at`-th call (1-based):
    a signal, a crash or a kill at a chosen step."""
    calls = {"n": 0}

    def objective(model, images, labels, epoch):
        calls["n"] += 1
        if calls["n"] == at:
            action()
        return cross_entropy_objective(model, images, labels, epoch)

    return objective


def tiny_config(**train: object) -> ClsConfig:
    settings = {"epochs": 3, "batch_size": 8, "workers": 0, "log_interval": 2, **train}
    return ClsConfig(
        optim=OptimConfig(lr=0.2, reference_batch=8, weight_decay=1e-4, no_bias_decay=True),
        schedule=ScheduleConfig(name="cosine", warmup_epochs=1),
        train=TrainConfig(**settings),
        eval=EvalConfig(interval=1, batch_size=16),
    )


def accuracy_evaluator(dataset: TinyDataset):
    def evaluate(model: nn.Module) -> dict[str, float]:
        with torch.inference_mode():
            predicted = model(dataset.images).argmax(1)
        return {"top1": (predicted == dataset.labels).float().mean().item()}

    return evaluate


def make_trainer(
    out: Path,
    cfg: ClsConfig,
    ctx: DistContext | None = None,
    objective=cross_entropy_objective,
    evaluate: bool = True,
    resume: bool = False,
) -> tuple[Trainer, torch.utils.data.DataLoader, TrainBatchSampler]:
    """Build the tiny run the way the tools build theirs (seed, device settings, model,
    parts, trainer): every process that trains it, this one or another, runs with the
    same settings (the tools' `configure_device`), so that runs compare bit for bit."""
    ctx = ctx or DistContext()
    seed_everything(cfg.train.seed + ctx.rank)
    configure_device(ctx.device)
    dataset = TinyDataset()
    sampler = TrainBatchSampler(
        len(dataset), cfg.train.batch_size, ctx.rank, ctx.world_size, cfg.train.seed
    )
    loader = build_loader(dataset, sampler, cfg.train.workers, collate, cfg.train.seed, ctx.device)
    parts = build_train_parts(TinyNet(), objective, cfg, ctx, sampler.batches_per_epoch)
    run = RunDirectory(out, writes=ctx.is_main)
    run.prepare(resume=resume, overwrite=False)
    setup_logging(run.log, ctx.is_main)
    evaluation = (
        Evaluation(accuracy_evaluator(dataset), cfg.eval.interval, "top1") if evaluate else None
    )
    trainer = Trainer(parts, run, ctx, cfg, evaluation)
    return trainer, loader, sampler
