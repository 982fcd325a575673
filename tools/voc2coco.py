"""Convert a Pascal VOC split (XML annotations) to a COCO-format JSON.

The command lives in detect_tricks/commands/voc2coco.py (also installed as
`detect-tricks voc2coco`); `--help` describes it.
"""

from detect_tricks.commands.voc2coco import main

if __name__ == "__main__":
    main()
