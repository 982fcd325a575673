"""Run an ablation ladder: baseline, all tricks, all minus each, the stacked ladder, per seed.

    python tools/ablate.py configs/ablations/fruit_bof.yaml
    python tools/ablate.py configs/ablations/fruit_bof.yaml --dry-run
    python tools/ablate.py configs/ablations/fruit_bof.yaml --jobs 4 --out runs/fruit_gpu
    python tools/ablate.py configs/ablations/helmet_scale.yaml --runs 1868/+bof --seeds 0
    python tools/ablate.py configs/ablations/fruit_bof.yaml --runs baseline,all \
        --set train.epochs=32 --out runs/ablations/fruit_bof_2x

Runs go to <out>/<run>/seed<k>/ (default out: runs/ablations/<ladder name>); finished runs
are skipped and interrupted ones resumed, so the same command continues a ladder. It
writes <out>/ablation.json, ablation.md (mean +- std over seeds, seed-paired differences
with 95% intervals) and ablation.png. --jobs K trains K runs at once, each with
OMP_NUM_THREADS = cores / K (on a 2-core CPU, --jobs 2 gets more done than one job on
two threads; on a GPU, as many as fit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detect_tricks.ablation.run_ladder import Selection, ablate
from detect_tricks.engine.cli import add_set_argument, run_tool
from detect_tricks.utils.progress import setup_logging


def run() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ladder", type=Path, help="a ladder file, e.g. configs/ablations/*.yaml")
    parser.add_argument("--out", type=Path, help="default: runs/ablations/<ladder name>")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, train nothing")
    parser.add_argument(
        "--overwrite", action="store_true", help="delete runs made with a different ladder"
    )
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the report from finished runs"
    )
    add_set_argument(
        parser, "override a config key in every run, after the switches (e.g. train.epochs=32)"
    )
    parser.add_argument(
        "--runs", default="", help="comma-separated runs to train (with their baseline and all)"
    )
    parser.add_argument(
        "--seeds", default="", help="comma-separated seeds, in place of the ladder's (e.g. 0)"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    seeds = [s.strip() for s in args.seeds.split(",") if s.strip()]
    if not all(s.isdigit() for s in seeds) or len(set(seeds)) != len(seeds):
        parser.error(f"--seeds: expected distinct whole numbers such as 0,1,2, got {args.seeds!r}")
    setup_logging(None, is_main=True)
    runs = tuple(name for name in args.runs.split(",") if name)
    selection = Selection(tuple(args.overrides), runs, tuple(int(s) for s in seeds))
    failed = ablate(
        args.ladder, args.out, args.jobs, args.dry_run, args.overwrite, args.report, selection
    )
    if failed:
        sys.stderr.write(f"error: {failed} run(s) failed; their output is named above\n")
        sys.exit(1)


def main() -> None:
    """`detect-tricks ablate` and `python tools/ablate.py`: one-line errors."""
    run_tool(run)


if __name__ == "__main__":
    main()
