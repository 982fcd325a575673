"""Evaluate a classifier trained by tools/train_cls.py: top-1, top-5 and loss.

The command lives in detect_tricks/commands/eval_cls.py (also installed as
`detect-tricks eval-cls`); `--help` describes it.
"""

from detect_tricks.commands.eval_cls import main

if __name__ == "__main__":
    main()
