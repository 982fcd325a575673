"""Detect objects in images with a trained detector; write pictures and COCO-style JSON.

The command lives in detect_tricks/commands/infer_det.py (also installed as
`detect-tricks infer-det`); `--help` describes it.
"""

from detect_tricks.commands.infer_det import main

if __name__ == "__main__":
    main()
