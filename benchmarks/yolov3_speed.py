"""YOLOv3-ResNet-50-D at 416: parameters, FLOPs, CPU time of a training step and of
inference, and the share of the step spent in target assignment + loss.

    python benchmarks/yolov3_speed.py [--arch yolov3_resnet50_d] [--size 416] [--batch 4]

FLOPs are counted by `torch.utils.flop_counter` (a multiply-add is 2 FLOPs). Timings are
medians over `--repeats` steps after a warm-up, fp32, contiguous and channels_last.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import synthetic_targets, write_results
from torch.utils.flop_counter import FlopCounterMode

from detect_tricks.models import DETECTORS
from detect_tricks.yolo.loss import YOLOv3Loss


def _median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(model, loss_fn, batch, image, targets, layout: str, repeats: int) -> dict:
    """Median seconds of a training step, of assignment + loss alone, of inference."""
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model.to(memory_format=fmt)
    x, one = batch.to(memory_format=fmt), image.to(memory_format=fmt)
    size = (x.shape[-2], x.shape[-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    detached = [o.detach().requires_grad_() for o in model.train()(x)]

    def train_step():
        loss = loss_fn(model(x), targets, size)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def loss_only():
        loss_fn(detached, targets, size)["loss"].backward()

    def infer():
        with torch.inference_mode():
            model(one)

    step = _median_seconds(train_step, repeats)
    loss = _median_seconds(loss_only, repeats)
    model.eval()
    inference = _median_seconds(infer, repeats)
    return {
        "train_step_s": round(step, 3),
        "assign_and_loss_s": round(loss, 4),
        "assign_and_loss_share": f"{100 * loss / step:.1f}%",
        "inference_batch1_s": round(inference, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", default="yolov3_resnet50_d")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = DETECTORS[args.arch](80)
    params = sum(p.numel() for p in model.parameters())
    image = torch.randn(1, 3, args.size, args.size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(image)
    flops = counter.get_total_flops()
    loss_fn = YOLOv3Loss(80, model.anchors)
    batch = torch.randn(args.batch, 3, args.size, args.size)
    targets = synthetic_targets(args.batch, args.size)
    rows = [
        {"layout": layout, **measure(model, loss_fn, batch, image, targets, layout, args.repeats)}
        for layout in ("contiguous", "channels_last")
    ]
    notes = (
        f"{args.arch}, 80 classes, {params / 1e6:.2f} M parameters, {flops / 1e9:.1f} GFLOPs "
        f"at {args.size}x{args.size} (batch 1, flop_counter). Training step: batch "
        f"{args.batch}, SGD, fp32, 8 boxes per image; inference: batch 1."
    )
    path = write_results(f"{args.arch}_speed", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
