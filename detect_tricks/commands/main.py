"""`detect-tricks <command> [arguments]`: every tool as one installed command.

    detect-tricks --help
    detect-tricks train-det --config configs/det/yolov3_r18d_fruit_bof.yaml
    detect-tricks eval-det --checkpoint runs/X/checkpoints/best.pt --sizes 320 416

Each command is the same code as `python tools/<name>.py` (`detect_tricks/commands/`).
"""

from __future__ import annotations

import difflib
import importlib
import sys

from detect_tricks import __version__

# command -> (module, what it does: the first line of the module's docstring, written
# here so that `--help` imports no command and answers at once).
COMMANDS = {
    "train-det": (
        "detect_tricks.commands.train_det",
        "Train YOLOv3 on a ResNet backbone with the Bag of Freebies switches (COCO or VOC data).",
    ),
    "eval-det": (
        "detect_tricks.commands.eval_det",
        "COCO box evaluation of a trained detector (at one or more sizes) or of a results file.",
    ),
    "infer-det": (
        "detect_tricks.commands.infer_det",
        "Detect objects in images with a trained detector; write pictures and COCO-style JSON.",
    ),
    "train-cls": (
        "detect_tricks.commands.train_cls",
        "Train a classifier with the Bag of Tricks recipe on an ImageFolder / ImageNet layout.",
    ),
    "eval-cls": (
        "detect_tricks.commands.eval_cls",
        "Evaluate a classifier trained by tools/train_cls.py: top-1, top-5 and loss.",
    ),
    "export": (
        "detect_tricks.commands.export_det",
        "Export a trained detector to ONNX and check it against PyTorch on real images.",
    ),
    "voc2coco": (
        "detect_tricks.commands.voc2coco",
        "Convert a Pascal VOC split (XML annotations) to a COCO-format JSON.",
    ),
    "yolo2coco": (
        "detect_tricks.commands.yolo2coco",
        "Convert a split in YOLO txt labels (ultralytics, darknet) to a COCO-format JSON.",
    ),
    "shrink-coco": (
        "detect_tricks.commands.shrink_coco",
        "Copy a COCO-format set with its large photos shrunk once (faster loading, smaller set).",
    ),
    "ablate": (
        "detect_tricks.commands.ablate",
        "Run an ablation ladder: baseline, all tricks, all minus each, the stacked ladder, "
        "per seed.",
    ),
}


def usage() -> str:
    lines = [
        "usage: detect-tricks <command> [arguments]   (detect-tricks <command> --help)",
        "       detect-tricks --version",
        "",
    ]
    lines += [f"  {name:<11} {summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the command named by the first argument with the rest of the arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(usage())
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        sys.stdout.write(f"detect-tricks {__version__}\n")
        sys.exit(0)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        sys.stderr.write(
            f"error: unknown command '{name}'.{hint} Commands: {', '.join(COMMANDS)}\n"
        )
        sys.exit(2)
    sys.argv = [f"detect-tricks {name}", *rest]
    importlib.import_module(COMMANDS[name][0]).main()


if __name__ == "__main__":
    main()
