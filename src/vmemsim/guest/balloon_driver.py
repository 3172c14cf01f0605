"""The balloon driver inside a guest (vmmemctl / Linux's vmw_balloon): polls the host's target
once per poll period and inflates or deflates toward it, at the rates Linux's driver uses.

Inflating, each poll (vmw_balloon.c, vmballoon_inflate):
- it first allocates without sleeping (the guest's free pages only, no reclaim), up to
  `nopressure` pages (VMW_BALLOON_NOSLEEP_ALLOC_MAX, 16384);
- when such an allocation fails, the guest is under memory pressure: for the next
  SLOW_CYCLES polls it allocates at `rate_alloc`, and in this poll it goes on with sleeping
  allocations (the guest reclaims, paging out what its policy values least) up to
  `rate_alloc` pages in all;
- a failed sleeping allocation halves `rate_alloc` (not below `rate_min`, 512); a poll that
  allocated at least `rate_alloc` pages without failure raises it by `rate_inc` (16) per
  `rate_alloc` pages allocated, up to `rate_max` (2048), its starting value.
Deflating, each poll: up to `nopressure` pages (VMW_BALLOON_RATE_FREE_MAX is the same 16384; it
only falls when the host refuses to unlock a page, which the model never does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The driver's own constants (Linux vmw_balloon), not ESX settings: fixed here.
SLOW_CYCLES = 4  # VMW_BALLOON_SLOW_CYCLES: polls at the reduced rate after memory pressure
RATE_ALLOC_INC = 16  # VMW_BALLOON_RATE_ALLOC_INC: the rate's ramp after a poll at full rate

# alloc(n, can_sleep) -> (pages allocated, guest evictions it caused, guest CPU time)
Alloc = Callable[[int, bool], tuple[int, int, float]]


@dataclass
class BalloonDriver:
    installed: bool
    start_time: float  # when the driver starts running (after boot + tools_start)
    rate_min: int
    rate_max: int
    nopressure: int
    max_pages: int
    rate_inc: int = RATE_ALLOC_INC
    rate_alloc: int = 0  # set to rate_max on start (__post_init__)
    slow_cycles: int = 0
    target: int = 0

    def __post_init__(self) -> None:
        self.rate_alloc = self.rate_max

    def running(self, now: float) -> bool:
        return self.installed and now >= self.start_time

    def poll(self) -> None:
        """A new poll period begins (vmballoon_work)."""
        if self.slow_cycles > 0:
            self.slow_cycles -= 1

    def next_rate(self) -> int:
        """The most pages this poll may inflate by: what the balloon can take back in time."""
        return self.rate_alloc if self.slow_cycles else self.nopressure

    def inflate(self, goal: int, alloc: Alloc) -> tuple[int, int, float, bool]:
        """Inflate by up to `goal` pages this poll. Returns (pages, guest evictions, guest
        CPU time, failed): failed when a sleeping allocation failed (the guest could not
        free more: ballooning cannot go further now)."""
        rate = self.next_rate()
        got, ev, spent = alloc(min(goal, rate), False)
        failed = False
        if got < min(goal, rate):  # a non-sleeping allocation failed: memory pressure
            self.slow_cycles = SLOW_CYCLES
            if got < min(goal, self.rate_alloc):
                more, ev2, spent2 = alloc(min(goal, self.rate_alloc) - got, True)
                ev += ev2
                spent += spent2
                if more < min(goal, self.rate_alloc) - got:
                    failed = True
                    self.rate_alloc = max(self.rate_min, self.rate_alloc // 2)
                got += more
        if not failed and got >= self.rate_alloc:
            self.rate_alloc = min(self.rate_max,
                                  self.rate_alloc + (got // self.rate_alloc) * self.rate_inc)
        return got, ev, spent, failed

    def deflate_rate(self) -> int:
        return self.nopressure
