"""Statistics of a ladder: mean +- std over seeds, seed-paired differences with 95%
intervals (Student's t). A difference whose interval holds zero is "no measurable
effect": at a few hundred images one run per config proves nothing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (any statistics
# table); past 30 the normal quantile is within 2%.
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile_975(dof: int) -> float:
    """The two-sided 95% quantile of Student's t with `dof` degrees of freedom."""
    if dof < 1:
        raise ValueError("an interval needs at least two seeds")
    return T_975[dof - 1] if dof <= len(T_975) else 1.96


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample standard deviation (n - 1); 0 for one value
    n: int


def summarize(values: list[float]) -> Summary:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return Summary(statistics.fmean(values), std, len(values))


@dataclass(frozen=True)
class Difference:
    """Mean of seed-paired differences `a - b` with its 95% interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        if self.n < 2 or self.low <= 0 <= self.high:
            return "no measurable effect"
        return "better" if self.mean > 0 else "worse"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> Difference | None:
    """`a - b` over the seeds both have; None when they share fewer than two seeds."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.fmean(diffs)
    half = t_quantile_975(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return Difference(mean, mean - half, mean + half, len(diffs))
