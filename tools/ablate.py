"""Run an ablation ladder: baseline, all tricks, all minus each, the stacked ladder, per seed.

The command lives in detect_tricks/commands/ablate.py (also installed as
`detect-tricks ablate`); `--help` describes it.
"""

from detect_tricks.commands.ablate import main

if __name__ == "__main__":
    main()
