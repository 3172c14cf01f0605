"""Units in scenario files: sizes ("16GiB"), rates ("200k/s"), durations ("10min").

Sizes follow VMware's usage: MB and GB mean MiB and GiB (powers of two), as in vSphere's UI.
"""

from __future__ import annotations

import re

PAGE_SIZE = 4096  # bytes in a small page: guest, hypervisor and machine pages alike
MIB = 1 << 20

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
    "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
    "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
    "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}
_RATE_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_TIME_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
    "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0,
}
_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


class UnitError(ValueError):
    """A value that is not a valid quantity; the message says what was expected."""


def _number(text: object, what: str, example: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UnitError(f"expected a {what} like {example!r}, got {text!r}")
    if isinstance(text, int | float):
        return float(text), ""
    if not isinstance(text, str):
        raise UnitError(f"expected a {what} like {example!r}, got {text!r}")
    m = re.fullmatch(r"\s*" + _NUM + r"\s*([A-Za-zµ/]*)\s*", text)
    if not m:
        raise UnitError(f"expected a {what} like {example!r}, got {text!r}")
    return float(m.group(1)), m.group(2)


def parse_size(text: object) -> int:
    """Bytes in a size such as "16GiB", "512MB", "4096" (plain numbers are bytes)."""
    value, unit = _number(text, "size", "512MiB")
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise UnitError(f"unknown size unit {unit!r} in {text!r} (use KiB, MiB, GiB or TiB)")
    return int(round(value * factor))


def parse_rate(text: object) -> float:
    """Events per second in a rate such as "200k/s", "1.5M/s", "5000"."""
    value, unit = _number(text, "rate", "200k/s")
    if unit.endswith("/s"):
        unit = unit[:-2]
    factor = _RATE_UNITS.get(unit.lower())
    if factor is None:
        raise UnitError(f"unknown rate unit in {text!r} (use /s, k/s, M/s or G/s)")
    return value * factor


def parse_duration(text: object) -> float:
    """Seconds in a duration such as "10min", "60s", "100ms" (plain numbers are seconds)."""
    value, unit = _number(text, "duration", "60s")
    if unit == "":
        return value
    factor = _TIME_UNITS.get(unit.lower()) or _TIME_UNITS.get(unit)
    if factor is None:
        raise UnitError(f"unknown time unit {unit!r} in {text!r} (use ms, s, min or h)")
    return value * factor


def pages(nbytes: int) -> int:
    """Whole 4 KiB pages in a size, rounding up."""
    return -(-int(nbytes) // PAGE_SIZE)


def mb(npages: float) -> float:
    """MB (MiB) in a number of 4 KiB pages."""
    return npages * PAGE_SIZE / MIB
