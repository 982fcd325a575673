"""The race over several seeds: ours against each ultralytics peer, seed-paired.

    python benchmarks/race_seeds.py results/time_to_accuracy.json \
        results/time_to_accuracy_seed1.json results/time_to_accuracy_seed2.json

Each file is one run of `benchmarks/time_to_accuracy.py` (one `--seed`). For every peer
and every metric (AP, AP50, AP75, training-loop minutes) the table gives each side's
mean +- std over the runs and the mean of the per-run differences `ours - peer` with its
95% interval (Student's t, as the ablation reports); an interval that holds zero is
"no measurable effect". Writes results/time_to_accuracy_seeds.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import write_results

from detect_tricks.ablation.stats import paired_difference, summarize

METRICS = ("AP", "AP50", "AP75", "train_min")
# For time a lower value is the better one: its difference reads shorter or longer.
WORDS = {"train_min": {"better": "longer", "worse": "shorter"}}
OURS = "ours "


def seed_of(run: dict) -> int:
    """The seed a run's notes name (`seed N.`)."""
    notes = run["notes"]
    return int(notes.split(" seed ", 1)[1].split(".", 1)[0])


def rows_by_trainer(runs: list[dict]) -> dict[str, dict[int, dict]]:
    """trainer -> seed -> its row, for the rows that trained (an AP)."""
    found: dict[str, dict[int, dict]] = {}
    for run in runs:
        for row in run["rows"]:
            if isinstance(row.get("AP"), float):
                found.setdefault(row["trainer"], {})[seed_of(run)] = row
    return found


def compare(ours: dict[int, dict], peer: str, theirs: dict[int, dict]) -> list[dict]:
    rows = []
    for metric in METRICS:
        a = {seed: row[metric] for seed, row in ours.items()}
        b = {seed: row[metric] for seed, row in theirs.items()}
        diff = paired_difference(a, b)
        shared = sorted(set(a) & set(b))
        mine, other = summarize(list(a.values())), summarize(list(b.values()))
        if diff:
            verdict = WORDS.get(metric, {}).get(diff.verdict, diff.verdict)
            text = f"{diff.mean:+.3f} [{diff.low:+.3f}, {diff.high:+.3f}] {verdict}"
        elif shared:
            text = f"{a[shared[0]] - b[shared[0]]:+.3f} (seed {shared[0]} alone: no interval)"
        else:
            text = "no shared seed"
        rows.append(
            {
                "peer": peer,
                "metric": metric,
                "seeds": len(shared),
                "ours": f"{mine.mean:.3f} +- {mine.std:.3f}",
                "peer_value": f"{other.mean:.3f} +- {other.std:.3f}",
                "ours - peer": text,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="time_to_accuracy JSON files")
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in args.results]
    trainers = rows_by_trainer(runs)
    ours_name = next(name for name in trainers if name.startswith(OURS))
    rows = [
        row
        for peer, theirs in trainers.items()
        if not peer.startswith(OURS)
        for row in compare(trainers[ours_name], peer, theirs)
    ]
    notes = (
        "`python benchmarks/race_seeds.py "
        + " ".join(str(p) for p in args.results)
        + f"`: {ours_name} against each peer over the runs' seeds (each side's mean +- std "
        "over all its runs; the difference over the seeds both ran), each run "
        "`benchmarks/time_to_accuracy.py` (its own notes give the settings). Differences "
        "are seed-paired, ours - peer, with 95% intervals (Student's t); train_min is the "
        "training loop's minutes (ours stops when its epochs end, ultralytics at its time=)."
    )
    print(write_results("time_to_accuracy_seeds", rows, notes))


if __name__ == "__main__":
    main()
