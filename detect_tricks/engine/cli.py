"""What the training tools share on the command line: arguments, config, run directory.

    tools/train_X.py --config C [--out DIR] [--resume] [--overwrite] [--set K=V ...]

A new run reads `--config` (plus `--set` overrides) and writes into `--out`
(default `runs/<config name>`). `--resume` continues `--out`'s `checkpoints/last.pt`
with the config stored in it; `--set` may still change keys (e.g. more epochs), while
a `--config` that differs from the stored one is an error naming the keys.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from detect_tricks.core.config_loader import config_diff, config_from_dict, load_config
from detect_tricks.core.errors import USER_ERRORS, CheckpointError, ConfigError, NonFiniteLossError
from detect_tricks.engine.run_dir import RunDirectory
from detect_tricks.utils.checkpoint import TOOLS, load_training_checkpoint, task_of
from detect_tricks.utils.distributed import DistContext
from detect_tricks.utils.progress import setup_logging

C = TypeVar("C")
logger = logging.getLogger(__name__)
# What --set may change when resuming: the length, logging, checkpoints, loading and
# evaluation; anything else would not match the saved weights, optimizer or data order.
RESUMABLE = (
    "train.epochs",
    "train.workers",
    "train.log_interval",
    "train.checkpoint_interval",
    "train.tensorboard",
    "train.device",
    "eval.interval",
    "eval.batch_size",
    "data.skip_bad_images",
)


def train_arg_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every training tool takes."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="YAML config (only what differs from defaults)")
    parser.add_argument("--out", type=Path, help="run directory (default: runs/<config name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from checkpoints/last.pt"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start again in a run directory that has a run"
    )
    add_set_argument(
        parser, "override a config key, e.g. --set optim.lr=0.01 (repeatable, values are YAML)"
    )
    return parser


def add_set_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--set KEY=VALUE`, repeatable, collected in `args.overrides`."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text
    )


def resolve_config(
    args: argparse.Namespace, cls: type[C], task: str | None = None
) -> tuple[C, Path, dict | None]:
    """The run's config, its directory, and the checkpoint to resume from (or None); a
    checkpoint of another `task` ("det", "cls") is refused."""
    if not args.resume:
        if args.config is None:
            raise ConfigError("--config is required to start a run (or --resume with --out)")
        cfg = load_config(args.config, cls, args.overrides)
        return cfg, args.out or Path("runs") / args.config.stem, None
    if args.out is None and args.config is None:
        raise ConfigError("--resume needs --out (the run directory) or the run's --config")
    out = args.out or Path("runs") / args.config.stem
    last = RunDirectory(out).last
    try:
        checkpoint = load_training_checkpoint(last, "tools/train_cls.py or tools/train_det.py")
    except CheckpointError as err:
        raise CheckpointError(f"--resume: {err}") from err
    written_by = task_of(checkpoint)
    if task is not None and written_by is not None and written_by != task:
        raise CheckpointError(
            f"--resume: {last} is a checkpoint of {TOOLS[written_by]}, not of {TOOLS[task]}"
        )
    source = f"the config stored in {last}"
    cfg = config_from_dict(checkpoint["config"], cls, args.overrides, source=source)
    changed = config_diff(cfg, config_from_dict(checkpoint["config"], cls, source=source))
    fixed = [key for key in changed if key not in RESUMABLE]
    if fixed:
        raise ConfigError(
            f"--resume: --set changes {', '.join(fixed)}, which the saved run depends on "
            f"(weights, optimizer state, data order); only {', '.join(RESUMABLE)} may change "
            "on resume: start a new run (--out) to change the others"
        )
    if args.config is not None:
        differing = config_diff(load_config(args.config, cls, args.overrides), cfg)
        if differing:
            raise ConfigError(
                f"--resume: {args.config} differs from {source} in {', '.join(differing)}; "
                "drop --config to continue with the stored config, or change keys with --set"
            )
    return cfg, out, checkpoint


def open_run_directory(out: Path, args: argparse.Namespace, ctx: DistContext) -> RunDirectory:
    """Create (or reopen, on --resume) the run directory and route logging into it."""
    run = RunDirectory(out, writes=ctx.is_main)
    run.prepare(resume=args.resume, overwrite=args.overwrite)
    setup_logging(run.log if ctx.is_main else None, ctx.is_main)
    if args.overrides:
        said = "Resuming with changed settings" if args.resume else "Overrides"
        logger.info("%s: %s", said, " ".join(args.overrides))
    return run


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a score in [0, 1], got {text}")
    return value


def input_size(text: str) -> int:
    """An argparse type: a positive multiple of 32 (YOLOv3's strides)."""
    value = int(text)
    if value <= 0 or value % 32:
        raise argparse.ArgumentTypeError(f"expected a positive multiple of 32, got {text}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def user_message(err: BaseException) -> str:
    """The error's own message on one line. An error raised in a DataLoader worker reaches
    the main process as the same type with the worker's whole traceback for a message
    ("Caught ImageReadError in DataLoader worker process 0. Original Traceback ..."): its
    last line, less the type's name, is the message the user needs."""
    text = str(err)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if f"{type(err).__name__}: " in last else last
    return " ".join(text.split())


def run_tool(main: Callable[[], Any]) -> None:
    """Run a tool's main; a user error prints one line naming its cause and exits 2, a
    non-finite loss exits 1 with its message."""
    try:
        main()
    except USER_ERRORS as err:
        sys.stderr.write(f"error: {user_message(err)}\n")
        sys.exit(2)
    except NonFiniteLossError as err:
        sys.stderr.write(f"error: {err}\n")
        sys.exit(1)
