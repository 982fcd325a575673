"""Train a classifier with the Bag of Tricks recipe on an ImageFolder / ImageNet layout.

The command lives in detect_tricks/commands/train_cls.py (also installed as
`detect-tricks train-cls`); `--help` describes it.
"""

from detect_tricks.commands.train_cls import main

if __name__ == "__main__":
    main()
