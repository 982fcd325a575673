"""Copy a COCO-format set with its large photos shrunk once.

The command lives in detect_tricks/commands/shrink_coco.py (also installed as
`detect-tricks shrink-coco`); `--help` describes it.
"""

from detect_tricks.commands.shrink_coco import main

if __name__ == "__main__":
    main()
