"""Where a detection training step's time goes by kind of operator, ours beside ultralytics'.

    python benchmarks/op_split.py [--device cpu|cuda] [--size 416] [--batch 4] [--steps 2]

`peers.py` gives the ratio of training speeds; this says why it is not the ratio of
FLOPs. Both sides run the training step of `peers.py` (forward, loss, backward; the same
models, inputs and boxes) under `torch.profiler`, and each operator's own time (without
its children: host time on cpu, GPU time on cuda) is put in one of four kinds:
convolutions (forward and backward), batch norm, activations (ReLU, leaky ReLU, SiLU and
their backward) and everything else (residual adds, copies, concatenation, the loss...).
The convolutions' FLOPs come from `torch.utils.flop_counter` over the same step (forward
and backward, a multiply-add is 2), so the table gives the rate the convolutions run at.
One warm-up step is not profiled. ultralytics is optional: without it only our row is
written.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import torch
from common import write_results
from peers import Subject, Unavailable, ours_detector, synchronize, ultralytics_detector
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

KINDS = {
    "conv": ("convolution",),
    "batch norm": ("batch_norm",),
    "activations": ("relu", "threshold_backward", "leaky_relu", "silu", "clamp_min"),
}


def kind_of(op: str) -> str:
    """The kind of an aten operator, by its name: conv, batch norm, activations or other."""
    for kind, parts in KINDS.items():
        if any(part in op for part in parts):
            return kind
    return "other"


def train_step(subject: Subject) -> None:
    """Forward, loss and backward, as `peers.py` times them (the SGD step is ~1% there)."""
    subject.model.zero_grad(set_to_none=True)
    subject.loss(nullcontext).backward()


def seconds_by_kind(subject: Subject, steps: int, device: torch.device) -> dict[str, float]:
    """Seconds per step of each kind of operator, from the operators' own times."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    train_step(subject)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            train_step(subject)
        synchronize(device)
    spent = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue  # autograd's and the profiler's own ranges: their children are aten ops
        own_us = event.self_device_time_total if cuda else event.self_cpu_time_total
        spent[kind_of(event.key)] += own_us / 1e6 / steps
    return spent


def conv_gflops(subject: Subject) -> float:
    """GFLOPs of the convolutions, forward and backward, in one training step."""
    with FlopCounterMode(display=False) as counter:
        train_step(subject)
    counts = counter.get_flop_counts()["Global"]
    return sum(flops for op, flops in counts.items() if "convolution" in str(op)) / 1e9


def split_row(subject: Subject, steps: int, device: torch.device) -> dict:
    """One model's table row: seconds per step by kind, shares, and the convolutions' rate."""
    subject.model.train()
    spent = seconds_by_kind(subject, steps, device)
    total = sum(spent.values())
    gflops = conv_gflops(subject)
    return {
        "model": subject.name,
        "step_s": round(total, 3),
        **{f"{kind}_s": round(seconds, 3) for kind, seconds in spent.items()},
        **{f"{kind}_%": round(100 * seconds / total, 1) for kind, seconds in spent.items()},
        "conv_gflops": round(gflops, 1),
        "conv_gflop_s": round(gflops / spent["conv"], 1),
    }


def ratio_row(ours: dict, peer: dict) -> dict:
    """The peer's seconds over ours, kind by kind (>1: ours spends less)."""
    return {
        key: (round(peer[key] / ours[key], 2) if key.endswith("_s") and ours[key] else "-")
        for key in ours
    } | {"model": "peer / ours", "conv_gflops": round(peer["conv_gflops"] / ours["conv_gflops"], 2)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps (after one warm-up)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    torch.manual_seed(0)
    subjects = [ours_detector(args, device), ultralytics_detector(args, device)]
    rows = [split_row(s, args.steps, device) for s in subjects if isinstance(s, Subject)]
    if len(rows) == 2:
        rows.append(ratio_row(*rows))
    missing = [s.reason for s in subjects if isinstance(s, Unavailable)]
    notes = (
        f"Training step (forward, loss, backward) at batch {args.batch}, {args.size}x"
        f"{args.size}, fp32, channels_last, as in peers.py; {args.steps} profiled steps after "
        "one warm-up. Seconds per step are the operators' own times "
        f"({'GPU' if device.type == 'cuda' else 'host'} time), by kind: conv (forward and "
        "backward), batch norm, activations (and their backward), other. conv_gflops: the "
        "convolutions' FLOPs in the step (forward and backward, multiply-add = 2); "
        "conv_gflop_s: the rate they ran at. peer / ours: the peer's seconds over ours."
        + (f" Not measured: {'; '.join(missing)}." if missing else "")
    )
    path = write_results(f"op_split_{device.type}", rows, notes)
    print(path.read_text())


if __name__ == "__main__":
    main()
