"""Run by test_distributed.py under torchrun: the tiny task over N gloo processes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tiny_task

from tiny_task import make_trainer, tiny_config

from detect_tricks.utils.distributed import DistContext, distributed_job


def train(out: Path, epochs: int, ctx: DistContext) -> None:
    """The tools' shape: the run's objects live in a function that returns before the
    process group is left."""
    cfg = tiny_config(epochs=epochs, batch_size=8, ema=True)
    trainer, loader, sampler = make_trainer(out, cfg, ctx, evaluate=False)
    trainer.fit(loader, sampler)
    if ctx.is_main:
        torch.save(trainer.parts.module.state_dict(), out / "final.pt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with distributed_job("cpu") as ctx:
        train(args.out, args.epochs, ctx)


if __name__ == "__main__":
    main()
