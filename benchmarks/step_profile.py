"""Where one training step of our detector goes, phase by phase, from `torch.profiler`.

    python benchmarks/step_profile.py [--device cpu|cuda] [--precision fp32|bf16|fp16]
        [--arch yolov3_resnet50_d] [--size 416] [--batch 4] [--steps 5]

The step mirrors `Trainer.train_step` (detect_tricks/engine/trainer.py) with the project's
own pieces (`build_runtime`, `build_optimizer`, `YOLOv3Loss`, `all_reduce_mean`), each
phase wrapped in `torch.profiler.record_function`:

- data: a batch of `DetectionTrainSet` samples (the real GluonCV training transform) of
  generated demo images, collated (and pinned on cuda, as the loader does). Made here in
  the main process; in training the loader's workers overlap it with the step, so its
  share says how much the workers must hide.
- h2d: the images (to channels_last) and targets to the device.
- forward, assign+loss: the model, then target assignment and `YOLOv3Loss`.
- read-back: the loss terms stacked, all-reduced and their copy to the host queued
  (`read_back_later`), as the trainer does every step;
- backward: the scaled backward, queued before the host waits;
- host sync: the wait for that copy, the step's one wait; on cuda the host waits for the
  forward while the backward runs;
- optimizer: the scaler's step and update, zero_grad.

Per phase: host milliseconds per step (the profiler's `key_averages` CPU time of the label)
and its share of the step's wall time; on cuda also the milliseconds the GPU stream spends
between the phase's start and end (CUDA events). One warm-up step is not profiled.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from common import write_results
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

from detect_tricks.core.config import DetConfig, OptimConfig, TrainConfig
from detect_tricks.core.config_loader import config_from_dict
from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.detection import collate_detection
from detect_tricks.data.sampling import SampleKey
from detect_tricks.data.synthetic import generate
from detect_tricks.engine.optim import build_optimizer
from detect_tricks.engine.setup import build_runtime, configure_device
from detect_tricks.engine.trainer import read_back_later
from detect_tricks.models import DETECTORS
from detect_tricks.tasks.detection import build_train_set
from detect_tricks.utils.distributed import DistContext, all_reduce_mean
from detect_tricks.yolo.loss import YOLOv3Loss

PHASES = (
    "data",
    "h2d",
    "forward",
    "assign+loss",
    "read-back",
    "backward",
    "host sync",
    "optimizer",
)
AMP = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}
NUM_CLASSES = 80
WARMUP_STEPS = 1
MISSING = "-"


class PhaseClock:
    """Labels phases for the profiler and, on cuda, times them on the GPU stream."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.events: dict[str, list[tuple[torch.cuda.Event, torch.cuda.Event]]] = {
            name: [] for name in PHASES
        }

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if not self.cuda:
            with record_function(name):
                yield
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with record_function(name):
            start.record()
            yield
            end.record()
        self.events[name].append((start, end))

    def device_ms(self, name: str) -> float | None:
        """Mean GPU-stream milliseconds of a phase per step (None on the CPU)."""
        pairs = self.events[name]
        if not pairs:
            return None
        torch.cuda.synchronize()
        return sum(start.elapsed_time(end) for start, end in pairs) / len(pairs)

    def reset(self) -> None:
        for pairs in self.events.values():
            pairs.clear()


def batch_maker(
    root: Path, size: int, batch: int, device: torch.device
) -> Callable[[int], tuple[torch.Tensor, list]]:
    """Step number -> a collated batch of `DetectionTrainSet` samples of the images in `root`."""
    source = CocoDetection(root / "annotations" / "instances_train.json", root / "images")
    dataset = build_train_set(config_from_dict({"data": {"size": size}}, DetConfig), source)

    def make(step: int) -> tuple[torch.Tensor, list]:
        keys = [SampleKey(i % len(dataset), step * batch + i, size) for i in range(batch)]
        images, targets = collate_detection([dataset[key] for key in keys])
        return (images.pin_memory(), targets) if device.type == "cuda" else (images, targets)

    return make


def build_step(
    args: argparse.Namespace,
    device: torch.device,
    clock: PhaseClock,
    make_batch: Callable[[int], tuple[torch.Tensor, list]],
) -> Callable[[int], None]:
    """Step number -> one training step as `Trainer.train_step` does it, phase by phase."""
    model = DETECTORS[args.arch](NUM_CLASSES).to(device, memory_format=torch.channels_last)
    model.train()
    loss_fn = YOLOv3Loss(NUM_CLASSES, model.anchors)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-4), args.batch)
    autocast = build_runtime(TrainConfig(amp=AMP[args.precision]), device).autocast
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "fp16")
    ctx = DistContext(device=device)

    def step(number: int) -> None:
        with clock("data"):
            images, targets = make_batch(number)
        with clock("h2d"):
            images = images.to(device, non_blocking=True, memory_format=torch.channels_last)
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with autocast():
            with clock("forward"):
                outputs = model(images)
            with clock("assign+loss"):
                losses = loss_fn(outputs, targets, (images.shape[-2], images.shape[-1]))
        with clock("read-back"):
            terms = [losses[k].detach().float().reshape(()) for k in losses]
            stop_flag = torch.full((), 0.0, device=device)
            read = read_back_later(all_reduce_mean(torch.stack([*terms, stop_flag]), ctx))
        with clock("backward"):
            scaler.scale(losses["loss"]).backward()
        with clock("host sync"):
            read()
        with clock("optimizer"):
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

    return step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_steps(args: argparse.Namespace, device: torch.device, root: Path) -> list[dict]:
    """Run the warm-up and `--steps` profiled steps; one row per phase, then the totals."""
    clock = PhaseClock(device)
    step = build_step(args, device, clock, batch_maker(root, args.size, args.batch, device))
    for number in range(WARMUP_STEPS):
        step(number)
    synchronize(device)
    clock.reset()
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    walls = []
    with profile(activities=activities) as prof:
        for number in range(WARMUP_STEPS, WARMUP_STEPS + args.steps):
            start = time.perf_counter()
            step(number)
            synchronize(device)
            walls.append(time.perf_counter() - start)
    wall_ms = 1000 * sum(walls) / len(walls)
    host = host_ms_per_step(prof, args.steps)
    rows = [phase_row(name, host[name], clock.device_ms(name), wall_ms) for name in PHASES]
    rows.append(phase_row("other (unlabelled)", wall_ms - sum(host.values()), None, wall_ms))
    rows.append(phase_row("step (wall)", wall_ms, None, wall_ms))
    return rows


def host_ms_per_step(prof: profile, steps: int) -> dict[str, float]:
    """Host milliseconds per step of each phase label, from the profiler's key averages."""
    totals = {name: 0.0 for name in PHASES}
    for event in prof.key_averages():
        if event.key in totals and event.device_type == DeviceType.CPU:
            totals[event.key] += event.cpu_time_total / 1000 / steps
    return totals


def phase_row(name: str, host_ms: float, device_ms: float | None, wall_ms: float) -> dict:
    """One table row: host and device milliseconds per step and their shares of the wall."""
    return {
        "phase": name,
        "host_ms": round(host_ms, 2),
        "share_of_step": f"{100 * host_ms / wall_ms:.1f}%",
        "device_ms": MISSING if device_ms is None else round(device_ms, 2),
        "device_share": MISSING if device_ms is None else f"{100 * device_ms / wall_ms:.1f}%",
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=list(AMP), default="fp32")
    parser.add_argument("--arch", choices=list(DETECTORS), default="yolov3_resnet50_d")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--batch", type=int, help="default 4 on cpu, 32 on cuda")
    parser.add_argument("--steps", type=int, default=5, help="profiled steps after one warm-up")
    args = parser.parse_args()
    args.batch = args.batch or (32 if args.device == "cuda" else 4)
    return args


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    configure_device(device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        # one more image than the batch: generate() always keeps one for validation
        root = generate(Path(tmp), args.batch + 1, seed=0, val_fraction=0.0)
        rows = profile_steps(args, device, root)
    notes = (
        f"{args.arch}, {NUM_CLASSES} classes, batch {args.batch} at {args.size}x{args.size}, "
        f"{args.precision}, channels_last, SGD (momentum 0.9), no EMA; mean of {args.steps} "
        f"profiled steps after {WARMUP_STEPS} warm-up. Data: DetectionTrainSet (GluonCV "
        "transform, no mixup) on generated demo images, in the main process. host_ms: CPU time "
        "of the phase's record_function range (profiler key_averages); share_of_step: of the "
        "wall time of a step (synchronised at its end, profiler overhead included); device_ms: "
        "GPU-stream time between the phase's CUDA events (cuda only). On cuda, host times of "
        "forward/backward are launch times: the wait for the GPU shows in host sync and at the "
        "step's closing synchronisation (other)."
    )
    path = write_results(f"step_profile_{device.type}", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
