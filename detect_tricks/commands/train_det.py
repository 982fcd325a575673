"""Train YOLOv3 on a ResNet backbone with the Bag of Freebies switches (COCO or VOC data).

python tools/train_det.py --config configs/det/yolov3_r18d_fruit_bof.yaml
python tools/train_det.py --out runs/yolov3_r18d_fruit_bof --resume
torchrun --nproc_per_node=8 tools/train_det.py --config configs/det/yolov3_r50d_coco_bof.yaml
"""

from __future__ import annotations

from detect_tricks.engine.cli import run_tool
from detect_tricks.engine.launch import launch
from detect_tricks.tasks.table import DETECTION


def main() -> None:
    """`detect-tricks train-det` and `python tools/train_det.py`."""
    run_tool(lambda: launch(DETECTION, __doc__))


if __name__ == "__main__":
    main()
