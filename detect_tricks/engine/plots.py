"""Training curves drawn from a run's `metrics.jsonl` and `eval.jsonl`, as PNG files.

Drawn on `matplotlib.figure.Figure` objects, which need no backend: the user's own
matplotlib backend (a notebook's, an interactive one) is left as it is.
"""

from __future__ import annotations

from pathlib import Path

from detect_tricks.engine.run_dir import RunDirectory, read_jsonl

EVAL_KEYS = ("AP", "AP50", "AP75", "top1", "top5")


def plot_curves(run: RunDirectory) -> list[Path]:
    """Write `plots/loss.png`, `plots/lr.png` and `plots/eval.png`; return their paths."""
    metrics, evals = read_jsonl(run.metrics), read_jsonl(run.evals)
    run.plots.mkdir(parents=True, exist_ok=True)
    written = []
    if metrics:
        iters = [m["iter"] for m in metrics]
        loss_keys = [k for k in metrics[0] if k == "loss" or k.startswith("loss_")]
        written.append(
            _plot(run.plots / "loss.png", "training loss", iters, metrics, loss_keys, log_y=True)
        )
        written.append(_plot(run.plots / "lr.png", "learning rate", iters, metrics, ["lr"]))
    keys = [k for k in EVAL_KEYS if evals and k in evals[0]]
    if keys:
        epochs = [e["epoch"] for e in evals]
        written.append(_plot(run.plots / "eval.png", "validation", epochs, evals, keys, "epoch"))
    return written


def _plot(
    path: Path,
    title: str,
    xs: list[float],
    records: list[dict[str, float]],
    keys: list[str],
    x_label: str = "iteration",
    log_y: bool = False,
) -> Path:
    from matplotlib.figure import Figure  # drawing only: not imported with the package

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.subplots()
    for key in keys:
        ax.plot(
            xs,
            [r.get(key, float("nan")) for r in records],
            label=key,
            marker="." if len(xs) < 30 else None,
        )
    ax.set_title(title)
    ax.set_xlabel(x_label)
    if log_y and all(r.get(k, 1) > 0 for r in records for k in keys):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path
