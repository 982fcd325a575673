"""Jobs that the fault cases start in another process (python fault_jobs.py KIND OUT).

train OUT        the tiny task for 3 epochs with checkpoints every 4 steps; at step 11
                 it writes OUT/at_step_11 and waits (to be killed)
dead-rank OUT    under torchrun: rank 1 dies at step 3 while rank 0 trains on
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tiny_task

from tiny_task import calls_then, make_trainer, tiny_config

from detect_tricks.utils.distributed import DistContext, distributed_job


def wait_to_be_killed(out: Path) -> None:
    (out / "at_step_11").write_text("")
    time.sleep(120)


def train(out: Path, ctx: DistContext, objective) -> None:
    cfg = tiny_config(ema=True, checkpoint_interval=4, batch_size=8)
    trainer, loader, sampler = make_trainer(out, cfg, ctx, objective=objective)
    trainer.fit(loader, sampler)


def main() -> None:
    kind, out = sys.argv[1], Path(sys.argv[2])
    if kind == "train":
        train(out, DistContext(), calls_then(11, lambda: wait_to_be_killed(out)))
    else:
        with distributed_job("cpu") as ctx:
            die = (lambda: os._exit(3)) if ctx.rank == 1 else (lambda: None)
            train(out, ctx, calls_then(3, die))


if __name__ == "__main__":
    main()
