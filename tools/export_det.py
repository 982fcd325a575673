"""Export a trained detector to ONNX and check it against PyTorch on real images.

The command lives in detect_tricks/commands/export_det.py (also installed as
`detect-tricks export`); `--help` describes it.
"""

from detect_tricks.commands.export_det import main

if __name__ == "__main__":
    main()
