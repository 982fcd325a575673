"""Writing benchmark results: a JSON file and a markdown table, with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

# The committed tables; BENCH_RESULTS sends a rehearsal's tables elsewhere instead.
RESULTS = Path(os.environ.get("BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def machine() -> dict[str, object]:
    """What the numbers depend on: CPU, cores, vector units, torch, GPU."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "vector_units": sorted(
            f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
        ),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def write_results(name: str, rows: list[dict[str, object]], notes: str = "") -> Path:
    """Write `results/<name>.json` and `results/<name>.md`; returns the markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    (RESULTS / f"{name}.json").write_text(
        json.dumps({"machine": info, "rows": rows, "notes": notes}, indent=2) + "\n"
    )
    header = list(dict.fromkeys(key for row in rows for key in row))  # every row's columns
    lines = [
        f"# {name}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores ({', '.join(info['vector_units'])}), "
        f"torch {info['torch']}, GPU: {info['gpu'] or 'none'}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(_cell(row.get(k, "")) for k in header) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    path = RESULTS / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def synthetic_targets(batch: int, size: int) -> list[dict[str, torch.Tensor]]:
    """Eight random boxes of the 80 COCO classes per image, in `size` pixels, for timing."""
    generator = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        xy = torch.rand(8, 2, generator=generator) * size * 0.7
        wh = 16 + torch.rand(8, 2, generator=generator) * size * 0.3
        targets.append(
            {
                "boxes": torch.cat([xy, (xy + wh).clamp(max=size)], 1),
                "labels": torch.randint(0, 80, (8,), generator=generator),
                "weights": torch.ones(8),
            }
        )
    return targets
