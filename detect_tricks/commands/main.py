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

# command -> module; each module has `main()` and a docstring whose first line says what
# the command does.
COMMANDS = {
    "train-det": "detect_tricks.commands.train_det",
    "eval-det": "detect_tricks.commands.eval_det",
    "infer-det": "detect_tricks.commands.infer_det",
    "train-cls": "detect_tricks.commands.train_cls",
    "eval-cls": "detect_tricks.commands.eval_cls",
    "export": "detect_tricks.commands.export_det",
    "voc2coco": "detect_tricks.commands.voc2coco",
    "shrink-coco": "detect_tricks.commands.shrink_coco",
    "ablate": "detect_tricks.commands.ablate",
}


def usage() -> str:
    lines = ["usage: detect-tricks <command> [arguments]   (detect-tricks <command> --help)", ""]
    for name, module in COMMANDS.items():
        summary = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
        lines.append(f"  {name:<10} {summary}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the command named by the first argument with the rest of the arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(usage())
        sys.exit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        sys.stderr.write(
            f"error: unknown command '{name}'.{hint} Commands: {', '.join(COMMANDS)}\n"
        )
        sys.exit(2)
    sys.argv = [f"detect-tricks {name}", *rest]
    importlib.import_module(COMMANDS[name]).main()


if __name__ == "__main__":
    main()
