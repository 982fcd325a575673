"""Train a classifier with the Bag of Tricks recipe on an ImageFolder / ImageNet layout.

python tools/train_cls.py --config configs/cls/resnet18_d_flowers5_tricks.yaml
python tools/train_cls.py --out runs/resnet18_d_flowers5_tricks --resume
torchrun --nproc_per_node=8 tools/train_cls.py --config configs/cls/resnet50_d_mixup.yaml
"""

from __future__ import annotations

from detect_tricks.engine.cli import run_tool
from detect_tricks.engine.launch import launch
from detect_tricks.tasks.table import CLASSIFICATION


def main() -> None:
    """`detect-tricks train-cls` and `python tools/train_cls.py`."""
    run_tool(lambda: launch(CLASSIFICATION, __doc__))


if __name__ == "__main__":
    main()
