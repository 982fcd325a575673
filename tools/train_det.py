"""Train YOLOv3 on a ResNet backbone with the Bag of Freebies switches (COCO or VOC data).

The command lives in detect_tricks/commands/train_det.py (also installed as
`detect-tricks train-det`); `--help` describes it.
"""

from detect_tricks.commands.train_det import main

if __name__ == "__main__":
    main()
