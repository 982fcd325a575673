"""Convert a split in YOLO txt labels (ultralytics, darknet) to a COCO-format JSON.

The command lives in detect_tricks/commands/yolo2coco.py (also installed as
`detect-tricks yolo2coco`); `--help` describes it.
"""

from detect_tricks.commands.yolo2coco import main

if __name__ == "__main__":
    main()
