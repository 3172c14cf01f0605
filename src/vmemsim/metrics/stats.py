"""Statistics over replicates (runs of one scenario with different seeds): a mean and its
95% confidence interval by Student's t, with no dependency beyond the standard library."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Student's t for a two-sided 95% interval, by degrees of freedom 1..30.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t95(n: int) -> float:
    """t for a 95% interval of the mean of n values (n - 1 degrees of freedom); 1.96 beyond."""
    return T95[n - 2] if 2 <= n <= len(T95) + 1 else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95% interval, mean ± t s / sqrt(n), over the finite
    values; the interval is the mean itself for one value, NaN for none."""
    xs = [float(x) for x in values if x == x and math.isfinite(float(x))]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = sum(xs) / n
    if n == 1:
        return m, m, m
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = t95(n) * s / math.sqrt(n)
    return m, m - h, m + h
