"""Turn a config into the objects a training run is made of, decided once.

Precision (`train.amp`), memory format, device, SyncBatchNorm, DDP, EMA, optimizer and
schedule are chosen here, so the loop calls what it is given and checks no flags.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from detect_tricks.core.config import HasTrainSections, TrainConfig
from detect_tricks.core.errors import ConfigError
from detect_tricks.data.sampling import EvalBatchSampler
from detect_tricks.engine.ema import ModelEma
from detect_tricks.engine.optim import build_optimizer, scaled_lr
from detect_tricks.engine.parts import Objective, TrainParts
from detect_tricks.engine.schedules import build_lr_schedule
from detect_tricks.utils.distributed import DistContext
from detect_tricks.utils.runtime import Runtime

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (model init, main-process randomness)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_device(device: torch.device) -> None:
    """A tool process's compute settings, before it reads any data: OpenCV single-threaded
    (loading is parallel across DataLoader workers instead, and OpenCV's thread pool is
    not fork-safe: a worker forked after the parent used the pool deadlocks on its first
    OpenCV call); on the CPU, denormal floats flushed to zero, and a warning when the
    cores are already busy.

    Random-init training with BCE losses produced denormals on this machine's CPU and
    made some steps 10x slower (docs/design.md §6); flushing them costs no accuracy.
    Set here, in the tools, not when the package is imported: a user of the Python API
    keeps their own OpenCV and torch settings.
    """
    cv2.setNumThreads(1)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
        if hasattr(os, "getloadavg"):
            warning = busy_cores_warning(
                os.getloadavg()[0],
                usable_cores(),
                torch.get_num_threads(),
                os.environ.get("OMP_NUM_THREADS"),
            )
            if warning:
                logger.warning(warning)


def busy_cores_warning(
    load: float, cores: int, threads: int, omp_num_threads: str | None
) -> str | None:
    """Why a CPU run may crawl: other work already holds the cores it will use.

    torch gives every process one thread per core, so two trainings started by hand on
    one machine fight for the same cores: on 2 cores, two at once ran 4x slower each
    than with `OMP_NUM_THREADS=1` apiece (1.9 against 8 images/s, a third of the time in
    the kernel). A 1-minute load average of half the usable cores or more at start says
    something else runs; an `OMP_NUM_THREADS` the user (or `ablate --jobs`, or torchrun)
    set says the split is decided, and silences this.
    """
    if omp_num_threads is not None or load < cores / 2:
        return None
    return (
        f"the {cores} usable cores are already busy (1-minute load average {load:.1f}) and "
        f"this run starts {threads} threads: runs that each take every core slow each other "
        "down several times over; give each OMP_NUM_THREADS=<cores / runs> (ablate --jobs "
        "does)"
    )


def build_runtime(cfg: TrainConfig, device: torch.device) -> Runtime:
    """The run's `Runtime`: its device, `train.amp` (`off`, `fp16` or `bf16`) as an
    autocast dtype, and `train.channels_last`."""
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ConfigError(
            "train.amp=fp16 needs a CUDA device; on the CPU use train.amp=bf16 "
            "(fast on CPUs with AMX or AVX512-BF16) or off"
        )
    dtype = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[cfg.amp]
    return Runtime(device, dtype, cfg.channels_last)


def prepare_model(
    model: nn.Module, cfg: TrainConfig, ctx: DistContext
) -> tuple[nn.Module, nn.Module]:
    """Move to the device and memory format, wrap for DDP, then compile when
    `train.compile` (the DDP wrapper compiled, as torch's DDP notes advise, so its
    optimizer splits the graph at bucket boundaries); returns (what the step calls, bare)."""
    if cfg.sync_bn and ctx.is_distributed:
        if ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            logger.warning("train.sync_bn needs CUDA: each CPU process keeps its own BN stats")
    model = model.to(ctx.device, memory_format=build_runtime(cfg, ctx.device).memory_format)
    wrapped = model
    if ctx.is_distributed:
        device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = DistributedDataParallel(model, device_ids=device_ids)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    return wrapped, model


def build_train_parts(
    model: nn.Module,
    objective: Objective,
    cfg: HasTrainSections,
    ctx: DistContext,
    iters_per_epoch: int,
) -> TrainParts:
    """Everything the loop needs, from the config's optim, schedule and train sections."""
    train = cfg.train
    wrapped, module = prepare_model(model, train, ctx)
    optimizer = build_optimizer(module, cfg.optim, train.batch_size)
    peak_lr = scaled_lr(cfg.optim, train.batch_size)
    return TrainParts(
        model=wrapped,
        module=module,
        objective=objective,
        optimizer=optimizer,
        lr_schedule=build_lr_schedule(cfg.schedule, peak_lr, iters_per_epoch, train.epochs),
        scaler=torch.amp.GradScaler(ctx.device.type, enabled=train.amp == "fp16"),
        runtime=build_runtime(train, ctx.device),
        ema=ModelEma(module, train.ema_decay) if train.ema else None,
    )


# On the CPU the training threads need the cores: two workers keep a batch ready for
# the flowers5 and detection small configs, whose loading is a few percent of a step
# (README, "Speed"); the demo's tiny model is faster with none and sets 0.
CPU_AUTO_WORKERS = 2


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as `taskset` or a
    container's cpuset sets it), not the machine's total."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_workers(workers: int | Literal["auto"], ctx: DistContext) -> int:
    """`train.workers`, with `auto` decided for this machine and device.

    On a GPU the step waits for data: one core makes 44-72 detection samples/s with the
    GluonCV preset at 416 px (`benchmarks/results/det_loading_fruit_416.md`), and a
    YOLOv3 step on an H200 takes 670 images/s, so `auto` gives every usable core of this
    process's share of the node but one (the main process's), at least 2. On the CPU it
    is `CPU_AUTO_WORKERS`.
    """
    if workers != "auto":
        return workers
    if ctx.device.type != "cuda":
        return CPU_AUTO_WORKERS
    processes_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(2, usable_cores() // processes_here - 1)


def build_loader(
    dataset: Dataset,
    batch_sampler: Any,
    workers: int,
    collate_fn: Callable[[list[Any]], Any],
    seed: int,
    device: torch.device,
) -> DataLoader:
    """A DataLoader over `batch_sampler` whose workers never touch the global RNG.

    Datasets take their randomness from each `SampleKey.seed`; the loader's own
    generator keeps the main process's torch RNG (saved in checkpoints) untouched.
    """
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


def build_eval_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    collate_fn: Callable[[list[Any]], Any],
    ctx: DistContext,
    subset: Sequence[int] | None = None,
) -> DataLoader:
    """Every sample (or those of `subset`) once, in order, this process taking its share
    (rank r: r, r + N, ...)."""
    sampler = EvalBatchSampler(len(dataset), batch_size, ctx.rank, ctx.world_size, subset)
    return build_loader(dataset, sampler, workers, collate_fn, 0, ctx.device)
