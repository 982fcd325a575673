"""The ladder's report: results of every finished (run, seed), `ablation.json`,
`ablation.md` and `ablation.png`.

Each run's result is its final evaluation, not its best one (picking the best epoch
would select on the validation set).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from detect_tricks.ablation.ladder import Ladder, Run, point_of, reference_of
from detect_tricks.ablation.stats import paired_difference, summarize


def collect(ladder: Ladder, runs: list[Run], out: Path) -> dict[str, Any]:
    """Every finished (run, seed)'s final metrics and wall time, and the statistics."""
    results: dict[str, Any] = {}
    for run in runs:
        per_seed = {}
        for seed in ladder.seeds:
            summary = read_summary(out / run.name / f"seed{seed}")
            if summary is not None and summary.get("status") == "finished" and summary["final"]:
                final = summary["final"]
                per_seed[seed] = {
                    **{m: final[m] for m in ladder.metrics},
                    **{
                        f"train_{m}": final[f"train_{m}"]
                        for m in ladder.metrics
                        if f"train_{m}" in final
                    },
                    "wall_seconds": summary["wall_seconds"],
                }
        results[run.name] = {"switches": list(run.switches), "seeds": per_seed}
    for name, entry in results.items():
        stats = {}
        for metric in (*ladder.metrics, f"train_{ladder.metric}"):
            values = {s: v[metric] for s, v in entry["seeds"].items() if metric in v}
            if not values:
                continue
            summary = summarize(list(values.values()))
            stats[metric] = {"mean": summary.mean, "std": summary.std, "n": summary.n}
            for reference in ladder.references:
                compared = reference_of(name, reference)
                other = {s: v[metric] for s, v in results[compared]["seeds"].items() if metric in v}
                diff = paired_difference(values, other) if name != compared else None
                if diff is not None:
                    stats[metric][f"vs_{reference}"] = {
                        "mean": diff.mean,
                        "low": diff.low,
                        "high": diff.high,
                        "n": diff.n,
                        "verdict": diff.verdict,
                    }
        entry["stats"] = stats
    return results


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """A run's summary.json, or None when there is none or it cannot be read (a file cut
    short by a kill: the run is then treated as not finished)."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _signed(value: float) -> str:
    return f"{value:+.3f}"


def markdown_table(ladder: Ladder, results: dict[str, Any], command: str) -> str:
    """The report: one row per run, mean +- std per metric, differences with intervals."""
    metric = ladder.metric
    shown = list(ladder.metrics)
    if any(f"train_{metric}" in entry["stats"] for entry in results.values()):
        shown.append(f"train_{metric}")  # eval.train_images: the same metric on training images
    head = [f"{m} mean +- std" for m in shown]
    lines = [
        f"# Ablation: {ladder.source.name}",
        "",
        f"Made by `{command}`. Base config `{ladder.base}`; every run also sets: "
        + (", ".join(f"`{o}`" for o in ladder.common) or "nothing")
        + (
            "; and after the switches, from the command line: "
            + ", ".join(f"`{o}`" for o in ladder.last)
            if ladder.last
            else ""
        )
        + f". Seeds {ladder.seeds}; final evaluation of each run.",
        f"Differences are in {metric}, seed-paired, with 95% intervals (Student's t); an "
        'interval that holds zero is "no measurable effect".',
        "",
        "| run | seeds | "
        + " | ".join(head + [f"{metric} vs {r}" for r in ladder.references])
        + " | minutes per run |",
        "|---|---|" + "---|" * (len(head) + len(ladder.references)) + "---|",
    ]
    for name, entry in results.items():
        stats = entry["stats"]
        if not stats:
            lines.append(f"| {name} | 0 |" + " |" * (len(head) + len(ladder.references) + 1))
            continue
        cells = [
            f"{stats[m]['mean']:.3f} +- {stats[m]['std']:.3f}" if m in stats else "" for m in shown
        ]
        comparisons = []
        for reference in ladder.references:
            diff = stats.get(metric, {}).get(f"vs_{reference}")
            comparisons.append(
                f"{_signed(diff['mean'])} [{_signed(diff['low'])}, {_signed(diff['high'])}] "
                f"{diff['verdict']}"
                if diff
                else "-"
            )
        walls = [v["wall_seconds"] for v in entry["seeds"].values()]
        minutes = f"{statistics.fmean(walls) / 60:.1f}"
        lines.append(
            f"| {name} | {len(entry['seeds'])} | "
            + " | ".join(cells + comparisons + [minutes])
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot_results(ladder: Ladder, results: dict[str, Any], path: Path) -> None:
    """Bars of the headline metric's mean per run with the std over seeds; a scale curve
    is drawn as one (`plot_curve`)."""
    if ladder.points:
        plot_curve(ladder, results, path)
        return
    from matplotlib.figure import Figure

    names = [n for n, e in results.items() if ladder.metric in e["stats"]]
    means = [results[n]["stats"][ladder.metric]["mean"] for n in names]
    stds = [results[n]["stats"][ladder.metric]["std"] for n in names]
    fig = Figure(figsize=(max(4.0, 0.7 * len(names) + 1.5), 3.6))
    ax = fig.subplots()
    special = {"baseline": "#888888", "all": "#d95f02"}
    colors = [special.get(n, "#1b9e77") for n in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"{ladder.metric} (mean +- std over seeds)")
    ax.set_title(ladder.source.name, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_curve(ladder: Ladder, results: dict[str, Any], path: Path) -> None:
    """A scale curve: left, each run's gain over its point's baseline (mean and 95%
    interval) against the point (its number of training images); right, the val and
    training-sample metric of every run."""
    from matplotlib.figure import Figure

    metric = ladder.metric
    kinds = sorted({name.split("/")[-1] for name in results})
    fig = Figure(figsize=(9.0, 3.6))
    gain_ax, level_ax = fig.subplots(1, 2)
    for index, kind in enumerate(kinds):
        color = f"C{index}"
        points = [n for n in results if n.split("/")[-1] == kind]
        xs = [float(point_of(n)) for n in points]
        stats = [results[n]["stats"].get(metric, {}) for n in points]
        level_ax.plot(
            xs, [s.get("mean", float("nan")) for s in stats], "o-", color=color, label=f"{kind} val"
        )
        on_train = [results[n]["stats"].get(f"train_{metric}", {}) for n in points]
        if any(on_train):
            level_ax.plot(
                xs,
                [s.get("mean", float("nan")) for s in on_train],
                "x--",
                color=color,
                label=f"{kind} train",
            )
        if kind == "baseline":
            continue
        diffs = [s.get("vs_baseline") for s in stats]
        shown = [(x, d) for x, d in zip(xs, diffs, strict=True) if d]
        if shown:
            gain_ax.errorbar(
                [x for x, _ in shown],
                [d["mean"] for _, d in shown],
                yerr=[
                    [d["mean"] - d["low"] for _, d in shown],
                    [d["high"] - d["mean"] for _, d in shown],
                ],
                fmt="o-",
                color=color,
                capsize=3,
                label=kind,
            )
        lone = gains_without_interval(results, kind, metric)
        if lone:
            gain_ax.plot(
                [x for x, _ in lone],
                [gain for _, gain in lone],
                "o",
                color=color,
                markerfacecolor="none",
                label=f"{kind}, one seed (no interval)",
            )
    gain_ax.axhline(0.0, color="#888888", linewidth=1)
    gain_ax.set_xscale("log")
    gain_ax.set_xlabel("training images")
    gain_ax.set_ylabel(f"{metric} minus baseline (95% interval)")
    if gain_ax.get_legend_handles_labels()[0]:
        gain_ax.legend(fontsize=8)
    level_ax.set_xscale("log")
    level_ax.set_xlabel("training images")
    level_ax.set_ylabel(f"{metric} (mean over seeds)")
    level_ax.legend(fontsize=7)
    sizes = sorted({float(point_of(n)) for n in results})
    for ax in (gain_ax, level_ax):
        ax.set_xticks(sizes, [f"{x:,.0f}" for x in sizes])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.grid(alpha=0.3)
    fig.suptitle(ladder.source.name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def gains_without_interval(
    results: dict[str, Any], kind: str, metric: str
) -> list[tuple[float, float]]:
    """(point, difference from its baseline) for a scale curve's runs of `kind` that share
    one seed with their point's baseline, so have no interval yet: what that seed shows,
    drawn apart from the measured gains."""
    found = []
    for name, entry in results.items():
        point = point_of(name)
        baseline = results.get(f"{point}/baseline")
        if name.split("/")[-1] != kind or baseline is None:
            continue
        own = {s: v[metric] for s, v in entry["seeds"].items() if metric in v}
        base = {s: v[metric] for s, v in baseline["seeds"].items() if metric in v}
        shared = sorted(set(own) & set(base))
        if len(shared) == 1:
            found.append((float(point), own[shared[0]] - base[shared[0]]))
    return found
