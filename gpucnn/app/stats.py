"""Means, spreads and 95% intervals of repeated runs (Student's t, two-sided).

interval of a mean:  mean +- t(0.975, n - 1) * sd / sqrt(n)
(n = 1: no interval; sd is the sample standard deviation, n - 1 in the denominator)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# t(0.975, df) for df = 1..30, as printed in standard t tables; beyond, a few anchors.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980))
Z975 = 1.960


def t975(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom (3 decimals;
    between the anchors above 30, the next smaller df's value, which errs wide)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    below = [t for d, t in ((len(T975), T975[-1]), *T975_LARGE) if d <= df]
    return below[-1] if df < 1000 else Z975


@dataclass(frozen=True)
class Estimate:
    """The mean of ``n`` values, their sample standard deviation and the mean's 95% interval
    (``low``/``high`` are NaN when n < 2)."""

    n: int
    mean: float
    sd: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values: list[float]) -> Estimate:
    """Estimate of the finite ``values`` (NaN everywhere if there are none)."""
    xs = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not xs:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    sd = statistics.stdev(xs)
    half = t975(len(xs) - 1) * sd / math.sqrt(len(xs))
    return Estimate(len(xs), mean, sd, mean - half, mean + half)
