"""Training throughput of the demo detector against the number of loader workers.

On a machine with few cores the loader workers and the training threads share the
cores, so more workers is not always faster. This runs `tools/train_det.py` with the
demo config on generated shapes (a temporary folder) for a few epochs per setting and
reports the images per second of the training loop (data wait + step, from
metrics.jsonl, the first epoch left out as warm-up).

    python benchmarks/loader_workers.py [--workers 0 1 2] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import write_results

from detect_tricks.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "det" / "yolov3_r18d_demo.yaml"


def loop_images_per_second(metrics: Path, batch_size: int) -> float:
    """Images per second over the logged intervals after the first epoch."""
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    timed = [r for r in records if r["epoch"] >= 1 and "step_s" in r]
    if not timed:
        raise SystemExit(f"{metrics}: no timed iterations after the first epoch")
    seconds = sum(r["data_s"] + r["step_s"] for r in timed) / len(timed)
    return batch_size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=250)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "data", args.images, seed=0)
        for workers in args.workers:
            out = Path(tmp) / f"run_w{workers}"
            overrides = {
                "data.train_ann": data / "annotations" / "instances_train.json",
                "data.train_images": data / "images",
                "data.val_ann": data / "annotations" / "instances_val.json",
                "data.val_images": data / "images",
                "train.epochs": args.epochs,
                "train.workers": workers,
                "train.log_interval": 5,
                "eval.interval": 1000,
            }
            command = [sys.executable, str(ROOT / "tools" / "train_det.py")]
            command += ["--config", str(CONFIG), "--out", str(out)]
            for key, value in overrides.items():
                command += ["--set", f"{key}={value}"]
            print(f"workers {workers}: training {args.epochs} epochs ...", flush=True)
            subprocess.run(command, check=True, capture_output=True)
            rate = loop_images_per_second(out / "metrics.jsonl", batch_size=16)
            rows.append({"workers": workers, "images_per_s": round(rate, 1)})
    path = write_results(
        "loader_workers",
        rows,
        notes=(
            f"configs/det/yolov3_r18d_demo.yaml (random shapes 96-160, batch 16, mixup) on "
            f"{args.images} generated images, epochs 2-{args.epochs}; data wait + step time."
        ),
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
