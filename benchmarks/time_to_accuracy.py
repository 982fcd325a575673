"""The race: COCO AP reached in the same wall-time budget by our trainer and by ultralytics'.

Each trainer gets the same budget (`--minutes`) and ONE thread, on the same split of
fruit (`../shared/data/fruit`) at the same image size, batch 16, no loader workers, one seed
(`--seed`, default 0; run several for an interval):

- ours: `tools/train_det.py --config <--ours-config>` with the race's data, size, batch,
  workers, seed and device forced by `--set` (an `--ours-set` may add others, not change
  these; the config says what the backbone starts from). Its budget starts when its
  training loop does (the run's `config.yaml` is written then); at the budget it gets
  SIGTERM, saves `last.pt` and stops (a config sized to finish in time is not stopped).
- ultralytics (`--peers`, default yolo11n and yolov3u): its own trainer on `<model>.yaml`
  from scratch (`pretrained=False`), with its own budget `time=` (hours; it counts from
  its training loop's start too, re-plans its epochs to fit and stops itself), `amp` and
  `plots` off, on a YOLO-format copy of the same split written to a temporary folder
  (images linked, labels from our own COCO reader: boxes clipped to the image, crowd
  boxes left out, class = position of the category id in id order; it re-encodes there
  the one photo whose JPEG lacks its end marker, the shared original untouched). It runs in
  `--peers-python` through a short script that keeps torch at one thread (ultralytics'
  `select_device` would set min(8, cores - 1)) and skips the font download that its
  dataset check makes (nothing is drawn). `YOLO_OFFLINE=1` stops its connectivity, pip and
  analytics checks, `YOLO_AUTOINSTALL=false` its installs, and `YOLO_CONFIG_DIR` keeps its
  settings file in the temporary folder. A trainer still running 3 minutes past its budget
  is stopped.

Every trainer is a subprocess with OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1, on the CPU;
`--parallel N` of them run at once (ours first, then the peers in order; on 2 cores two
single-thread trainers side by side), and the table says which ran alongside which.

Both sides' final weights (`last.pt`: picking `best.pt` on val would select on val) are
scored by the same pycocotools evaluation (`detect_tricks.metrics.coco_eval.evaluate_results`)
against the val annotations as our reader checks them. Ours: our detector at its run's
`eval` settings (by default score > 0.01, IoU 0.45, 100 per image). Ultralytics: the
detections of its own validator (`YOLO(last.pt).val(save_json=True)`: multi-label NMS at
conf 0.001, IoU 0.7, 100 per image, its letterboxed batches), its mAP left aside (its
interpolation is not COCO's). The AP at half the budget is each trainer's own log: ours'
eval.jsonl (our pycocotools AP, every `eval.interval` epochs, stamped by this script as
the lines appear) and ultralytics' results.csv (its own mAP50-95 per epoch, at its `time`
column), the entry nearest half the budget, with its time.

    python benchmarks/time_to_accuracy.py [--minutes 12] [--size 192] [--parallel 2]
        [--ours-config configs/det/yolov3_r18d_fruit_race.yaml] [--ours-set KEY=VALUE ...]
        [--peers yolo11n,yolov3u] [--peers-python /work/peers-venv/bin/python]
        [--data ../shared/data/fruit] [--workdir runs/<name>] [--name time_to_accuracy]

The runs stay in `--workdir` (each trainer's folder replaced at the start); the tables go
to `benchmarks/results/<name>.{json,md}`. Set up the peers' environment once:

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 ultralytics
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from common import write_results

from detect_tricks.data.coco import CocoDetection
from detect_tricks.data.detection import DetectionEvalSet, collate_detection
from detect_tricks.engine.run_dir import read_jsonl
from detect_tricks.engine.setup import build_eval_loader
from detect_tricks.inference.detector import Detector
from detect_tricks.metrics.coco_eval import evaluate_results, load_ground_truth
from detect_tricks.tasks.detection import collect_results
from detect_tricks.utils.distributed import DistContext

ROOT = Path(__file__).resolve().parents[1]
BATCH, WORKERS = 16, 0
GRACE_S = 180.0  # a trainer still running this long past its budget is stopped
POLL_S = 1.0
MISSING = "-"
# Runs one ultralytics call (train or val) in the peers' Python, on one thread.
ULTRALYTICS_RUNNER = """
import json, sys
import torch
torch.set_num_threads(1)
import ultralytics.data.utils, ultralytics.utils.torch_utils
from ultralytics import YOLO
ultralytics.utils.torch_utils.NUM_THREADS = 1  # select_device() sets torch's threads to it
ultralytics.data.utils.check_font = lambda *args, **kwargs: None  # a download; plots are off
mode, model, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
getattr(YOLO(model), mode)(**settings)
print(f"race: {mode} ran on {torch.get_num_threads()} torch thread(s)")
"""


@dataclass
class Split:
    """The race's data: COCO annotations, their images, and the YOLO-format copy."""

    train_ann: Path
    val_ann: Path
    images: Path
    yolo_yaml: Path
    category_ids: list[int]


@dataclass
class Entrant(ABC):
    """One trainer: its command, its process and when it ran (`time.time()` seconds)."""

    label: str
    name: str
    directory: Path
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    ended: float = 0.0
    stopped: str = ""  # how this script stopped it, if it did

    @property
    def log(self) -> Path:
        return self.directory.with_name(f"{self.directory.name}.log")

    def start(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        print(f"[race] {self.label} starts (log {self.log})", flush=True)
        with open(self.log, "w") as log:
            log.write(f"{shlex.join(self.command)}\n\n")
            log.flush()
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.started = time.time()

    def watch(self, budget_s: float) -> None:
        """Called every second while it runs: stop it when it overruns the grace."""
        if time.time() > self.started + budget_s + GRACE_S and not self.stopped:
            self.stop(f"stopped {GRACE_S / 60:.0f} min past the budget", signal.SIGKILL)

    def stop(self, why: str, how: signal.Signals) -> None:
        assert self.process is not None
        print(f"[race] {self.label}: {why}", flush=True)
        self.stopped = why
        self.process.send_signal(how)

    def finish(self) -> None:
        """After its process exits."""
        self.ended = time.time()
        assert self.process is not None
        print(
            f"[race] {self.label} ended after {(self.ended - self.started) / 60:.2f} min "
            f"(exit {self.process.returncode}; log {self.log})",
            flush=True,
        )

    def status(self) -> str:
        assert self.process is not None
        if self.process.returncode != 0 and not self.stopped:
            return f"failed (exit {self.process.returncode}, see {self.log})"
        return self.stopped or "stopped itself"

    @property
    @abstractmethod
    def checkpoint(self) -> Path:
        """Its final weights, `last.pt`."""

    @abstractmethod
    def epochs(self) -> int | str:
        """The epochs it completed."""

    @abstractmethod
    def train_seconds(self) -> float | None:
        """Its training loop's own time, as it logged it."""

    @abstractmethod
    def logged(self) -> list[tuple[float, float]]:
        """(seconds since its training loop began, AP) of each evaluation it logged."""

    @abstractmethod
    def results(self, split: Split) -> list[dict[str, Any]]:
        """Its `last.pt`'s detections on val, in the COCO results format."""


@dataclass
class Ours(Entrant):
    """`tools/train_det.py`, stopped by SIGTERM at the budget (it saves and exits)."""

    loop_started: float | None = None  # when the run wrote config.yaml
    stamped: list[tuple[float, float]] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.directory / "checkpoints" / "last.pt"

    def watch(self, budget_s: float) -> None:
        self.stamp()
        overdue = self.loop_started is not None and time.time() > self.loop_started + budget_s
        if overdue and not self.stopped:
            self.stop("stopped at the budget (SIGTERM: saves last.pt)", signal.SIGTERM)
        super().watch(budget_s)

    def stamp(self) -> None:
        """Note when its training loop began and when each new eval.jsonl line appeared."""
        config = self.directory / "config.yaml"
        if self.loop_started is None and config.is_file():
            self.loop_started = config.stat().st_mtime
        if self.loop_started is not None:
            records = read_jsonl(self.directory / "eval.jsonl")[len(self.stamped) :]
            self.stamped += [(time.time() - self.loop_started, r["AP"]) for r in records]

    def finish(self) -> None:
        super().finish()
        self.stamp()  # the evaluations of its last second

    def summary(self) -> dict[str, Any]:
        path = self.directory / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def status(self) -> str:
        if self.summary().get("status") == "finished" and not self.stopped:
            return "finished its epochs"
        return super().status()

    def epochs(self) -> int | str:
        return self.summary().get("epochs", MISSING)

    def train_seconds(self) -> float | None:
        return self.summary().get("wall_seconds")

    def logged(self) -> list[tuple[float, float]]:
        return self.stamped

    def results(self, split: Split) -> list[dict[str, Any]]:
        detector = Detector.from_checkpoint(self.checkpoint, device="cpu")
        ctx = DistContext()
        dataset = DetectionEvalSet(CocoDetection(split.val_ann, split.images), detector.size)
        loader = build_eval_loader(dataset, BATCH, WORKERS, collate_detection, ctx)
        return collect_results(
            detector.model, loader, ctx, detector.category_ids, detector.settings
        )


@dataclass
class Peer(Entrant):
    """An ultralytics model trained by its own trainer with its own `time=` budget."""

    size: int = 0  # its input size at evaluation

    @property
    def checkpoint(self) -> Path:
        return self.directory / "weights" / "last.pt"

    def rows(self) -> list[dict[str, str]]:
        path = self.directory / "results.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]

    def status(self) -> str:
        if self.process is not None and self.process.returncode == 0 and not self.stopped:
            return "stopped itself (time=)"
        return super().status()

    def epochs(self) -> int | str:
        rows = self.rows()
        return int(float(rows[-1]["epoch"])) if rows else MISSING

    def train_seconds(self) -> float | None:
        rows = self.rows()
        return float(rows[-1]["time"]) if rows else None

    def logged(self) -> list[tuple[float, float]]:
        return [(float(r["time"]), float(r["metrics/mAP50-95(B)"])) for r in self.rows()]

    def results(self, split: Split) -> list[dict[str, Any]]:
        settings = {
            "data": str(split.yolo_yaml),
            "split": "val",
            "imgsz": self.size,
            "batch": BATCH,
            "conf": 0.001,
            "iou": 0.7,
            "max_det": 100,
            "save_json": True,
            "plots": False,
            "workers": WORKERS,
            "device": "cpu",
            "project": str(self.directory),
            "name": "race_val",
            "exist_ok": True,
        }
        command = [*self.command[:3], "val", str(self.checkpoint), json.dumps(settings)]
        with open(self.log, "a") as log:
            subprocess.run(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, check=True
            )
        predictions = self.directory / "race_val" / "predictions.json"
        if not predictions.is_file():  # ultralytics writes none when nothing was detected
            return []
        # Its image ids are the file stems (our links are named by COCO image id), its
        # category ids 1 + the class index.
        return [
            {
                "image_id": int(p["image_id"]),
                "category_id": split.category_ids[p["category_id"] - 1],
                "bbox": p["bbox"],
                "score": p["score"],
            }
            for p in json.loads(predictions.read_text())
        ]


def write_yolo_dataset(train_ann: Path, val_ann: Path, images: Path, folder: Path) -> Split:
    """The split in ultralytics' layout under `folder`: `images/{train,val}/<id>.<ext>`
    linked to the photos, `labels/{train,val}/<id>.txt` with one `class cx cy w h` line per
    box (normalised by the image size), `data.yaml` with the class names. The boxes are
    what our reader trains on (clipped to the image, degenerate and crowd boxes out)."""
    sources = {"train": CocoDetection(train_ann, images), "val": CocoDetection(val_ann, images)}
    if sources["train"].category_ids != sources["val"].category_ids:
        raise SystemExit(f"{train_ann} and {val_ann} list different categories")
    for split, source in sources.items():
        (folder / "images" / split).mkdir(parents=True)
        (folder / "labels" / split).mkdir(parents=True)
        for record in source.records:
            photo = Path(record.path).resolve()
            (folder / "images" / split / f"{record.image_id}{photo.suffix}").symlink_to(photo)
            x0, y0, x1, y1 = (record.boxes / np.array([record.width, record.height] * 2)).T
            lines = [
                f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"
                for label, cx, cy, w, h in zip(
                    record.labels.tolist(),
                    (x0 + x1) / 2,
                    (y0 + y1) / 2,
                    x1 - x0,
                    y1 - y0,
                    strict=True,
                )
            ]
            (folder / "labels" / split / f"{record.image_id}.txt").write_text("".join(lines))
    data_yaml = folder / "data.yaml"
    names = dict(enumerate(sources["train"].class_names))
    data_yaml.write_text(
        yaml.safe_dump(
            {"path": str(folder), "train": "images/train", "val": "images/val", "names": names}
        )
    )
    return Split(train_ann, val_ann, images, data_yaml, sources["train"].category_ids)


def single_thread_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **extra}


def ours_entrant(args: argparse.Namespace, split: Split) -> Ours:
    """Our trainer with the race's settings forced; `--ours-set` may add, not contradict."""
    fixed = {
        "data.format": "coco",
        "data.train_ann": str(split.train_ann),
        "data.train_images": str(split.images),
        "data.val_ann": str(split.val_ann),
        "data.val_images": str(split.images),
        "data.size": args.size,
        "train.batch_size": BATCH,
        "train.workers": WORKERS,
        "train.seed": args.seed,
        "train.device": "cpu",
    }
    for override in args.ours_set:
        key, _, value = override.partition("=")
        if key in fixed and yaml.safe_load(value) != fixed[key]:
            raise SystemExit(f"--ours-set {override}: the race sets {key}={fixed[key]}")
    directory = args.workdir / "ours"
    command = [
        sys.executable,
        str(ROOT / "tools" / "train_det.py"),
        "--config",
        str(args.ours_config),
        "--out",
        str(directory),
    ]
    added = [o for o in args.ours_set if o.partition("=")[0] not in fixed]
    for override in [*added, *(f"{k}={v}" for k, v in fixed.items())]:
        command += ["--set", override]
    name = f"ours {args.ours_config.stem}"
    return Ours("ours", name, directory, command, single_thread_env())


def peer_env(config_dir: Path) -> dict[str, str]:
    return single_thread_env(
        YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false", YOLO_CONFIG_DIR=str(config_dir)
    )


def ultralytics_version(python: str, env: dict[str, str]) -> tuple[str | None, str]:
    """Its version, or None and why it cannot run."""
    try:
        check = subprocess.run(
            [python, "-c", "import ultralytics; print(ultralytics.__version__)"],
            env=env,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        return None, f"--peers-python {python} not found"
    if check.returncode == 0:  # the last line: a first import also announces its settings file
        return check.stdout.strip().splitlines()[-1], ""
    if "No module named 'ultralytics'" in check.stderr:
        return None, f"ultralytics not installed in {python} (pip install ultralytics)"
    return None, f"ultralytics failed to import: {check.stderr.strip().splitlines()[-1]}"


def peer_entrant(
    model: str, version: str, args: argparse.Namespace, split: Split, env: dict[str, str]
) -> Peer:
    settings = {
        "data": str(split.yolo_yaml),
        "imgsz": args.size,
        "batch": BATCH,
        "workers": WORKERS,
        "seed": args.seed,
        "time": args.minutes / 60,
        "pretrained": False,
        "amp": False,
        "plots": False,
        "device": "cpu",
        "project": str(args.workdir),
        "name": model,
        "exist_ok": True,
    }
    command = [
        args.peers_python,
        "-c",
        ULTRALYTICS_RUNNER,
        "train",
        f"{model}.yaml",
        json.dumps(settings),
    ]
    name = f"ultralytics {version} {model}"
    return Peer(model, name, args.workdir / model, command, env, size=args.size)


def race(entrants: list[Entrant], parallel: int, budget_s: float) -> None:
    """Run the entrants, `parallel` at a time in order, until all have ended."""
    waiting, running = list(entrants), []
    while waiting or running:
        while waiting and len(running) < parallel:
            entrant = waiting.pop(0)
            entrant.start()
            running.append(entrant)
        time.sleep(POLL_S)
        for entrant in list(running):
            assert entrant.process is not None
            if entrant.process.poll() is None:
                entrant.watch(budget_s)
            else:
                entrant.finish()
                running.remove(entrant)


def nearest(logged: list[tuple[float, float]], at_s: float) -> tuple[float, float] | None:
    return min(logged, key=lambda entry: abs(entry[0] - at_s)) if logged else None


def minutes(seconds: float | None) -> float | str:
    return round(seconds / 60, 2) if seconds is not None else MISSING


def result_row(
    entrant: Entrant, entrants: list[Entrant], split: Split, gt: Any, budget_s: float
) -> dict[str, Any]:
    """One trainer's row: its run, the AP of its last.pt, the AP it logged at half-way."""
    alongside = [
        other.label
        for other in entrants
        if other is not entrant and other.started < entrant.ended and entrant.started < other.ended
    ]
    status, stats = entrant.status(), {}
    if not entrant.checkpoint.is_file():
        status += "; no last.pt"
    else:
        try:
            stats = evaluate_results(gt, entrant.results(split), source=entrant.name)
        except Exception as err:  # the other trainers' rows must still be written
            traceback.print_exc()
            status += f"; evaluation failed: {err}"
    half = nearest(entrant.logged(), budget_s / 2)
    own = "AP (ours, eval.jsonl)" if isinstance(entrant, Ours) else "mAP50-95 (own, results.csv)"
    return {
        "trainer": entrant.name,
        "status": status,
        "wall_min": minutes(entrant.ended - entrant.started),
        "train_min": minutes(entrant.train_seconds()),
        "epochs": entrant.epochs(),
        **{k: round(stats[k], 4) if stats else MISSING for k in ("AP", "AP50", "AP75")},
        "half_AP": round(half[1], 4) if half else MISSING,
        "half_at_min": minutes(half[0]) if half else MISSING,
        "half_metric": own,
        "alongside": ", ".join(alongside) or "none",
    }


def missing_row(model: str, reason: str) -> dict[str, Any]:
    return {"trainer": f"ultralytics {model}", "status": reason}


def notes(args: argparse.Namespace, version: str | None) -> str:
    config = args.ours_config
    shown = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
    return (
        f"`python benchmarks/time_to_accuracy.py {shlex.join(sys.argv[1:])}`. Budget "
        f"{args.minutes:g} min of training loop per trainer (ours: SIGTERM at the budget, "
        "counted from its config.yaml; ultralytics: its own `time=` in hours), setup before "
        f"the loop not counted (wall_min counts it), {args.parallel} trainer(s) at a time, each "
        f"one thread (OMP/MKL_NUM_THREADS=1, ultralytics held at 1), CPU; fruit "
        f"({args.data}) train/val, {args.size} px, batch {BATCH}, {WORKERS} loader workers, "
        f"seed {args.seed}. Ours: `tools/train_det.py --config {shown}`"
        + "".join(f" --set {s}" for s in args.ours_set)
        + f"; ultralytics {version or 'not installed'}: `<model>.yaml` from scratch, its "
        "recipe (optimizer auto, mosaic, EMA), amp and plots off. AP/AP50/AP75: last.pt "
        "of each scored by the same pycocotools COCOeval (`detect_tricks.metrics.coco_eval."
        "evaluate_results`) on val: ours at its run's eval settings (default score > 0.01, "
        "NMS IoU 0.45, 100 per image); ultralytics' detections from its own validator (save_json, "
        "multi-label NMS, conf 0.001, IoU 0.7, 100 per image). half_AP: the trainer's own "
        "logged metric (half_metric) at the evaluation nearest half the budget, half_at_min "
        "minutes into its training loop; ultralytics' mAP50-95 interpolates precision its own "
        "way and is not comparable to COCO's to the last digit. train_min: the trainer's own "
        "loop time (ours summary.json, ultralytics results.csv); an ultralytics epoch cut by "
        "time= counts as done. alongside: trainers running at the same time."
    )


def repo_path(path: Path) -> Path:
    """A path as given, or else under the repository root."""
    return (path if path.is_absolute() or path.exists() else ROOT / path).resolve()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-time budget per trainer")
    parser.add_argument("--size", type=int, default=192, help="input size (train and val)")
    parser.add_argument("--parallel", type=int, default=2, help="trainers at once")
    parser.add_argument(
        "--ours-config", type=Path, default=Path("configs/det/yolov3_r18d_fruit_race.yaml")
    )
    parser.add_argument(
        "--ours-set", action="append", default=[], metavar="KEY=VALUE", help="a --set for ours"
    )
    parser.add_argument("--peers", default="yolo11n,yolov3u", help="ultralytics models, comma list")
    parser.add_argument("--peers-python", default="/work/peers-venv/bin/python")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fruit")
    parser.add_argument("--workdir", type=Path, help="where the runs go (default runs/<name>)")
    parser.add_argument("--name", default="time_to_accuracy", help="results file stem")
    parser.add_argument(
        "--seed", type=int, default=0, help="every trainer's seed (run several for an interval)"
    )
    args = parser.parse_args()
    if args.minutes <= 0 or args.parallel < 1:
        parser.error("--minutes must be > 0 and --parallel >= 1")
    args.ours_config = repo_path(args.ours_config)
    if not args.ours_config.is_file():
        parser.error(f"--ours-config {args.ours_config} does not exist")
    args.data = repo_path(args.data)
    args.workdir = repo_path(args.workdir or Path("runs") / args.name)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # our evaluation, after the race
    budget_s = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="time_to_accuracy_") as tmp:
        split = write_yolo_dataset(
            args.data / "annotations" / "instances_train.json",
            args.data / "annotations" / "instances_val.json",
            args.data / "images",
            Path(tmp) / "yolo",
        )
        env = peer_env(Path(tmp) / "ultralytics_config")
        version, reason = ultralytics_version(args.peers_python, env)
        entrants: list[Entrant] = [ours_entrant(args, split)]
        if version is not None:
            entrants += [peer_entrant(m, version, args, split, env) for m in args.peers]
        race(entrants, args.parallel, budget_s)
        gt = load_ground_truth(CocoDetection(split.val_ann, None).evaluation_ground_truth())
        rows = [result_row(e, entrants, split, gt, budget_s) for e in entrants]
    if version is None:
        rows += [missing_row(model, reason) for model in args.peers]
    path = write_results(args.name, rows, notes(args, version))
    print(path.read_text())


if __name__ == "__main__":
    main()
