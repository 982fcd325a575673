"""COCO box evaluation of a trained detector (at one or more sizes) or of a results file.

The command lives in detect_tricks/commands/eval_det.py (also installed as
`detect-tricks eval-det`); `--help` describes it.
"""

from detect_tricks.commands.eval_det import main

if __name__ == "__main__":
    main()
