"""Command-line value types shared by vmemsim.cli and vmemsim.planning.cli: a bad value is one
argparse error line naming it (the commands turn it into exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from vmemsim.config.units import UnitError, parse_duration, parse_rate, parse_size

T = TypeVar("T", int, float)


def positive(parse: Callable[[str], T], what: str) -> Callable[[str], T]:
    """An argparse type: `parse` (a unit parser) of the text, above zero."""

    def value(text: str) -> T:
        try:
            v = parse(text)
        except UnitError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{what} must be above zero, got {text!r}")
        return v

    value.__name__ = what
    return value


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def value(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"between {low} and {high}, got {text}")
        return v

    return value


duration = positive(parse_duration, "duration")
size = positive(parse_size, "size")
rate = positive(parse_rate, "rate")
