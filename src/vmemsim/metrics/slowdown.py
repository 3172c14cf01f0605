"""How every output says slowdown: the ratio form, "4.93x" in a table, "4.93x slower" in words.

The verdict (`metrics.recorder._verdict`), the terminal summary, report.html and `compare` all
go through these two functions, so a table's cell and a verdict's sentence never disagree (a
percentage such as "393% slower" beside "4.926x" read as two different numbers). It is a metric's
wording, so it lives with the metrics (data flows from metrics to the report, not back).
"""

from __future__ import annotations

import math
from typing import Any

# Below this (as shown, to two decimals) a VM is "not measurably" slower: the baseline's own
# run-to-run noise is about that size.
NO_SLOWDOWN_BELOW = 1.01


def _value(slowdown: Any) -> float:
    try:
        x = float(slowdown)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def ratio(slowdown: Any) -> str:
    """`4.93x`: two decimals under 100x (the differences people act on are 1.05 against 1.3),
    whole numbers above (a VM 40,000x slower is stalled, the decimals mean nothing); `-` when
    unknown."""
    x = _value(slowdown)
    if math.isnan(x):
        return "-"
    return f"{x:.2f}x" if x < 99.995 else f"{x:,.0f}x"


def is_slower(slowdown: Any) -> bool:
    """Measurably slower, judged on the number `ratio` shows (1.006 shows as 1.01x: slower)."""
    text = ratio(slowdown)
    return text != "-" and float(text[:-1].replace(",", "")) >= NO_SLOWDOWN_BELOW


def phrase(slowdown: Any) -> str:
    """`4.93x slower`, `no measurable slowdown`, or `slowdown unknown (no baseline run)`."""
    if math.isnan(_value(slowdown)):
        return "slowdown unknown (no baseline run)"
    return f"{ratio(slowdown)} slower" if is_slower(slowdown) else "no measurable slowdown"
