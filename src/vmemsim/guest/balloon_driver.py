"""The balloon driver inside a guest (vmmemctl / vmw_balloon): polls the host's target once per
poll period and inflates or deflates toward it at an adaptive rate.

Rates follow Linux vmw_balloon: without guest memory pressure up to `nopressure` pages per poll;
once inflating makes the guest reclaim, between `rate_min` and `rate_max`, raised after a
success and halved after a failure.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BalloonDriver:
    installed: bool
    start_time: float  # when the driver starts running (after boot + tools_start)
    rate_min: int
    rate_max: int
    nopressure: int
    max_pages: int
    rate: int = 0
    pressured: bool = False
    target: int = 0

    def running(self, now: float) -> bool:
        return self.installed and now >= self.start_time

    def inflate_allowance(self) -> int:
        if not self.pressured:
            return self.nopressure
        return self.rate or self.rate_max

    def after_inflate(self, asked: int, got: int, evictions: int) -> None:
        if evictions > 0 and not self.pressured:
            self.pressured = True
            self.rate = self.rate_max
        if got < asked:
            self.rate = max(self.rate_min, (self.rate or self.rate_max) // 2)
        elif self.pressured:
            self.rate = min(self.rate_max, (self.rate or self.rate_min) + self.rate_min)
        if evictions == 0 and got == asked:
            self.pressured = False
