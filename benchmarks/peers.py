"""Our models beside their usual peers, measured in one process on one device.

Detection: our YOLOv3-ResNet-50-D with `YOLOv3Loss` against ultralytics' YOLOv3u
(`DetectionModel("yolov3u.yaml")`) with its own loss; classification: our ResNet-50-D
against timm's `resnet50d`. One process, the same device, batch, inputs and optimizer for
both sides, so the ratios say how we stand whatever the machine.

    python benchmarks/peers.py [--device cpu|cuda] [--precision fp32,bf16,fp16] [--size 416]
        [--batch 4] [--cls-size 224] [--repeats 5] [--warmup 2] [--only det|cls]
        [--deadline-s 170] [--compile]

Per model and precision: the training step (forward, loss, backward, SGD step) in images/s,
inference latency at batch 1 (ms) and batched inference throughput (images/s), medians after
a warm-up, ours and the peer timed in turn (call for call) so that the machine's drift
during the run falls on both; GFLOPs per image come from `torch.utils.flop_counter` (a
multiply-add is 2). With `--compile`, every model (ours and the peers) is compiled with
`torch.compile` (inductor, static shapes), as our `train.compile` and ultralytics' `compile`
switch do; the compilation falls in the warm-up calls, and the tables are written to
`peers_<device>_compiled`.
ultralytics and timm are optional: a peer whose library is missing gets a row saying so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from common import synthetic_targets, write_results
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from detect_tricks.models import CLASSIFIERS, DETECTORS
from detect_tricks.tasks.detection import detect_batch
from detect_tricks.yolo.loss import YOLOv3Loss
from detect_tricks.yolo.postprocess import NMSSettings

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Score threshold 0: untrained weights score nothing above the evaluation threshold, so NMS
# would have nothing to do; at 0 both sides take their full 400 best (box, class) pairs.
NMS = NMSSettings(score_threshold=0.0, pre_nms_top_k=400, iou_threshold=0.45, max_detections=100)
NUM_CLASSES = 80
MISSING = "-"

AutocastFactory = Callable[[], AbstractContextManager]


@dataclass
class Subject:
    """One model under test: how to run its training loss and its inference.

    `loss(autocast)` returns the scalar to backpropagate for the training batch;
    `infer(images, autocast)` runs inference as a user would, post-processing included.
    """

    task: str
    name: str
    model: nn.Module
    gflops: float
    loss: Callable[[AutocastFactory], Tensor]
    infer: Callable[[Tensor, AutocastFactory], object]


@dataclass
class Unavailable:
    """A peer that could not be built, and why (its library is not installed)."""

    task: str
    name: str
    reason: str


def gflops_per_image(model: nn.Module, image: Tensor) -> float:
    """GFLOPs of one evaluation forward pass at batch 1."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(image)
    return counter.get_total_flops() / 1e9


def train_images(args: argparse.Namespace, size: int, device: torch.device) -> Tensor:
    """The synthetic training batch, channels_last on the device."""
    images = torch.randn(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    return images.to(device, memory_format=torch.channels_last)


def ours_detector(args: argparse.Namespace, device: torch.device) -> Subject:
    """Our YOLOv3-ResNet-50-D, `YOLOv3Loss` on 8 boxes per image, decode + class-wise NMS."""
    model = DETECTORS["yolov3_resnet50_d"](NUM_CLASSES).to(
        device, memory_format=torch.channels_last
    )
    loss_fn = YOLOv3Loss(NUM_CLASSES, model.anchors)
    images = train_images(args, args.size, device)
    targets = [
        {k: v.to(device) for k, v in t.items()} for t in synthetic_targets(args.batch, args.size)
    ]
    size = (args.size, args.size)

    def loss(autocast: AutocastFactory) -> Tensor:
        with autocast():
            return loss_fn(model(images), targets, size)["loss"]

    def infer(batch: Tensor, autocast: AutocastFactory) -> object:
        with autocast():
            return detect_batch(model, batch, NMS)

    flops = gflops_per_image(model, images[:1])
    return Subject("det", "ours yolov3_resnet50_d", model, flops, loss, infer)


def ultralytics_detector(args: argparse.Namespace, device: torch.device) -> Subject | Unavailable:
    """ultralytics' YOLOv3u with `v8DetectionLoss` (through `model.loss`) on the same boxes,
    and its Detect-head decode + `non_max_suppression` with our NMS settings."""
    name = "ultralytics yolov3u"
    try:
        import ultralytics
        from ultralytics.cfg import get_cfg
        from ultralytics.nn.tasks import DetectionModel
    except ImportError as err:
        return Unavailable("det", name, _missing_reason("ultralytics", err))
    try:
        from ultralytics.utils.nms import non_max_suppression
    except ImportError:  # ultralytics before 8.4
        from ultralytics.utils.ops import non_max_suppression

    model = DetectionModel("yolov3u.yaml", nc=NUM_CLASSES, verbose=False)
    model.args = get_cfg()  # the default hyperparameters: box, cls and dfl gains of the loss
    model = model.to(device, memory_format=torch.channels_last)
    images = train_images(args, args.size, device)
    batch = {"img": images, **_ultralytics_labels(args.batch, args.size, device)}

    def loss(autocast: AutocastFactory) -> Tensor:
        # Forward, then the loss on its predictions: what its trainer does when compiling
        # (and the same math as `model.loss(batch)`); its trainer sums (box, cls, dfl) too.
        with autocast():
            return model.loss(batch, model(images))[0].sum()

    @torch.inference_mode()
    def infer(batch_images: Tensor, autocast: AutocastFactory) -> object:
        with autocast():
            preds = model(batch_images)
        return non_max_suppression(
            preds[0].float(),
            conf_thres=NMS.score_threshold,
            iou_thres=NMS.iou_threshold,
            multi_label=True,
            max_det=NMS.max_detections,
            max_nms=NMS.pre_nms_top_k,
        )

    flops = gflops_per_image(model, images[:1])
    return Subject("det", f"{name} {ultralytics.__version__}", model, flops, loss, infer)


def _ultralytics_labels(batch: int, size: int, device: torch.device) -> dict[str, Tensor]:
    """`synthetic_targets`' boxes as ultralytics wants them: image index, class, normalised xywh."""
    targets = synthetic_targets(batch, size)
    boxes = torch.cat([t["boxes"] for t in targets]) / size
    xywh = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
    return {
        "batch_idx": torch.cat(
            [torch.full((len(t["labels"]),), float(i)) for i, t in enumerate(targets)]
        ).to(device),
        "cls": torch.cat([t["labels"] for t in targets]).float().view(-1, 1).to(device),
        "bboxes": xywh.to(device),
    }


def classifier_subject(
    name: str, model: nn.Module, args: argparse.Namespace, device: torch.device
) -> Subject:
    """A 1000-class classifier: cross-entropy on random labels, inference to logits."""
    model = model.to(device, memory_format=torch.channels_last)
    images = train_images(args, args.cls_size, device)
    labels = torch.randint(0, 1000, (args.batch,), generator=torch.Generator().manual_seed(0))
    labels = labels.to(device)

    def loss(autocast: AutocastFactory) -> Tensor:
        with autocast():
            return F.cross_entropy(model(images), labels)

    @torch.inference_mode()
    def infer(batch_images: Tensor, autocast: AutocastFactory) -> object:
        with autocast():
            return model(batch_images)

    return Subject("cls", name, model, gflops_per_image(model, images[:1]), loss, infer)


def ours_classifier(args: argparse.Namespace, device: torch.device) -> Subject:
    model = CLASSIFIERS["resnet50_d"](num_classes=1000)
    return classifier_subject("ours resnet50_d", model, args, device)


def timm_classifier(args: argparse.Namespace, device: torch.device) -> Subject | Unavailable:
    try:
        import timm
    except ImportError as err:
        return Unavailable("cls", "timm resnet50d", _missing_reason("timm", err))
    model = timm.create_model("resnet50d", pretrained=False)
    return classifier_subject(f"timm resnet50d {timm.__version__}", model, args, device)


def _missing_reason(package: str, err: ImportError) -> str:
    if err.name == package:
        return f"{package} not installed (pip install {package})"
    return f"{package} failed to import: {err}"


BUILDERS = {"det": (ours_detector, ultralytics_detector), "cls": (ours_classifier, timm_classifier)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    fns: list[Callable[[], object]], args: argparse.Namespace, device: torch.device
) -> list[float]:
    """Median wall time of each of `fns` over `--repeats` calls after `--warmup` calls, the
    timed calls taken in turn (a, b, a, b, ...): a machine that drifts during the run (these
    2-core machines drift by up to 30%) slows every side alike, so their ratio holds."""
    for _ in range(args.warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(args.repeats):
        for fn, spent in zip(fns, times, strict=True):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


@dataclass
class TimedCalls:
    """One model's three timed calls at one precision."""

    model: nn.Module
    train_step: Callable[[], None]
    latency: Callable[[], object]
    batched: Callable[[], object]


def timed_calls(
    subject: Subject, precision: str, args: argparse.Namespace, device: torch.device
) -> TimedCalls:
    """The training step (forward, loss, backward, SGD step) and inference at batch 1 and
    at `--batch`, for one model."""
    dtype = PRECISIONS[precision]
    autocast = nullcontext if dtype is None else partial(torch.autocast, device.type, dtype=dtype)
    optimizer = torch.optim.SGD(subject.model.parameters(), lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(subject.loss(autocast)).backward()
        scaler.step(optimizer)
        scaler.update()

    size = args.size if subject.task == "det" else args.cls_size
    batch = torch.randn(args.batch, 3, size, size, device=device)
    batch = batch.contiguous(memory_format=torch.channels_last)
    one = batch[:1].contiguous(memory_format=torch.channels_last)
    return TimedCalls(
        subject.model,
        train_step,
        lambda: subject.infer(one, autocast),
        lambda: subject.infer(batch, autocast),
    )


def measure(
    subjects: list[Subject], precision: str, args: argparse.Namespace, device: torch.device
) -> list[dict]:
    """Training images/s, batch-1 latency (ms) and batched inference images/s of each
    model, every figure timed in turn with the others (`interleaved_medians`)."""
    calls = [timed_calls(subject, precision, args, device) for subject in subjects]
    for call in calls:
        call.model.train()
    step_s = interleaved_medians([c.train_step for c in calls], args, device)
    for call in calls:
        call.model.eval()
    latency_s = interleaved_medians([c.latency for c in calls], args, device)
    batched_s = interleaved_medians([c.batched for c in calls], args, device)
    return [
        {
            "train_img_s": round(args.batch / step, 2),
            "latency_ms": round(1000 * latency, 2),
            "infer_img_s": round(args.batch / batched, 2),
        }
        for step, latency, batched in zip(step_s, latency_s, batched_s, strict=True)
    ]


def row(subject: Subject | Unavailable, precision: str, numbers: dict | None, note: str) -> dict:
    """One table row; numbers missing (peer unavailable, deadline, failure) show as '-'."""
    numbers = numbers or {}
    return {
        "task": subject.task,
        "model": subject.name,
        "precision": precision,
        "gflops": round(subject.gflops, 2) if isinstance(subject, Subject) else MISSING,
        **{k: numbers.get(k, MISSING) for k in ("train_img_s", "latency_ms", "infer_img_s")},
        "train_vs_peer": MISSING,
        "latency_vs_peer": MISSING,
        "note": note,
    }


def measure_rows(
    subjects: list[Subject | Unavailable],
    precision: str,
    args: argparse.Namespace,
    device: torch.device,
) -> list[dict]:
    """The rows of the models at one precision, measured together; a runtime failure is
    noted in the failing model's row, not fatal (each is then measured alone, to know
    which one failed)."""
    available = [s for s in subjects if isinstance(s, Subject)]
    try:
        results = measure(available, precision, args, device)
    except RuntimeError:
        results = [measure_alone(subject, precision, args, device) for subject in available]
    by_name = {subject.name: result for subject, result in zip(available, results, strict=True)}
    rows = []
    for subject in subjects:
        if isinstance(subject, Unavailable):
            rows.append(row(subject, precision, None, subject.reason))
        elif isinstance(by_name[subject.name], str):  # why it failed
            rows.append(row(subject, precision, None, by_name[subject.name]))
        else:
            rows.append(row(subject, precision, by_name[subject.name], ""))
    return rows


def measure_alone(
    subject: Subject, precision: str, args: argparse.Namespace, device: torch.device
) -> dict | str:
    """One model's numbers, or why they failed."""
    try:
        return measure([subject], precision, args, device)[0]
    except RuntimeError as err:
        print(f"{subject.name} {precision} failed: {err}", file=sys.stderr)
        return f"failed: {str(err).splitlines()[0][:120]}"


def add_ratios(ours: dict, peer: dict) -> None:
    """Ours over the peer: training images/s (>1: ours faster), latency (<1: ours faster)."""
    if isinstance(ours["train_img_s"], float) and isinstance(peer["train_img_s"], float):
        ours["train_vs_peer"] = round(ours["train_img_s"] / peer["train_img_s"], 3)
        ours["latency_vs_peer"] = round(ours["latency_ms"] / peer["latency_ms"], 3)
        print(
            f"{ours['task']} {ours['precision']}: train img/s ours/peer {ours['train_vs_peer']}, "
            f"latency ours/peer {ours['latency_vs_peer']}"
        )


def run_task(task: str, args: argparse.Namespace, device: torch.device, start: float) -> list[dict]:
    """Ours and the peer at each precision; no new pair starts after the deadline."""
    torch.manual_seed(0)
    subjects = [build(args, device) for build in BUILDERS[task]]
    if args.compile:
        for subject in subjects:
            if isinstance(subject, Subject):
                # In place, so that the subject's loss and inference closures call the
                # compiled module; static shapes: one graph per mode and batch size.
                subject.model.compile(dynamic=False)
    rows = []
    for precision in args.precision:
        if time.perf_counter() - start > args.deadline_s:
            rows += [row(s, precision, None, _skip_reason(s)) for s in subjects]
            continue
        ours, peer = measure_rows(subjects, precision, args, device)
        add_ratios(ours, peer)
        rows += [ours, peer]
    return rows


def _skip_reason(subject: Subject | Unavailable) -> str:
    if isinstance(subject, Unavailable):
        return subject.reason
    return "not measured: --deadline-s reached"


def parse_precisions(values: list[str] | None) -> list[str]:
    """`--precision` given repeatedly or as a comma list; fp32 when not given."""
    chosen = [p.strip() for value in values or ["fp32"] for p in value.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PRECISIONS))
    if unknown:
        raise SystemExit(f"--precision: unknown {unknown}; choose from {', '.join(PRECISIONS)}")
    return list(dict.fromkeys(chosen))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--precision", action="append", help="fp32, bf16, fp16 (repeat or comma list)"
    )
    parser.add_argument("--size", type=int, default=416, help="detection input size")
    parser.add_argument("--batch", type=int, help="default 4 on cpu, 32 on cuda")
    parser.add_argument("--cls-size", type=int, default=224, help="classification input size")
    parser.add_argument("--repeats", type=int, help="timed calls; default 5 on cpu, 20 on cuda")
    parser.add_argument(
        "--warmup", type=int, help="untimed calls first; default 2 on cpu, 5 on cuda"
    )
    parser.add_argument("--only", choices=["det", "cls"], help="one task only")
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=170.0,
        help="start no new (model pair, precision) after this many seconds; write what is done",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile every model (both sides); writes peers_<device>_compiled",
    )
    args = parser.parse_args()
    cuda = args.device == "cuda"
    args.precision = parse_precisions(args.precision)
    args.batch = args.batch or (32 if cuda else 4)
    args.repeats = args.repeats or (20 if cuda else 5)
    args.warmup = args.warmup if args.warmup is not None else (5 if cuda else 2)
    return args


def notes(args: argparse.Namespace) -> str:
    """The notes paragraph: the settings and what each side's numbers include."""
    size, cls_size = args.size, args.cls_size
    mode = (
        "every model compiled with torch.compile (inductor, static shapes; compilation in the "
        "warm-up calls)"
        if args.compile
        else "eager"
    )
    return (
        f"Batch {args.batch} (training and batched inference), detection at {size}x{size}, "
        f"classification at {cls_size}x{cls_size}, precision {', '.join(args.precision)} "
        "(autocast on the device; fp16 training with GradScaler), channels_last, "
        f"{mode}, "
        f"{NUM_CLASSES} detection / 1000 classification classes, untrained weights, synthetic "
        f"inputs; medians of {args.repeats} calls after {args.warmup} warm-up calls, ours and the "
        "peer's calls taken in turn so that drift falls on both alike. Training "
        "step: forward, loss, backward, SGD (momentum 0.9) step. Detection losses: ours "
        "`YOLOv3Loss`, ultralytics `v8DetectionLoss` via `DetectionModel.loss` (default cfg "
        "gains), both on the same 8 boxes per image; classification: cross-entropy. Inference "
        "includes: ours = forward + decode + class-wise NMS (`detect_batch`); ultralytics = "
        "forward with its Detect-head decode + `non_max_suppression` (multi-label, class-wise, "
        "Conv+BN not fused); both with score threshold 0, the 400 best (box, class) pairs, "
        "IoU 0.45, 100 detections per image (threshold 0 so untrained weights still give NMS "
        "its full load); classifiers: forward to logits. train_vs_peer = ours/peer training "
        "images/s (>1: ours faster); latency_vs_peer = ours/peer batch-1 latency (<1: ours "
        "faster). GFLOPs: one image, flop_counter (multiply-add = 2)."
    )


def main() -> None:
    start = time.perf_counter()
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_flush_denormal(True)
    rows = []
    for task in [args.only] if args.only else ["det", "cls"]:
        rows += run_task(task, args, device, start)
    name = f"peers_{device.type}" + ("_compiled" if args.compile else "")
    path = write_results(name, rows, notes(args))
    print(path.read_text())


if __name__ == "__main__":
    main()
