"""Memory states: free machine memory decides what the host does (esx-reference.md, table).

Two presets. "seed": the seed's and ESX 2.x's percentages of host memory (soft < 6%,
hard < 4%, low < 2%). "vsphere": vSphere 6's scale of minFree (clear < 100%, soft < 64%,
hard < 32%, low < 16%). A state is entered as soon as free memory falls below its threshold,
and left upward only once free memory climbs `hysteresis` (a fraction) above it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmemsim.config.schema import HypervisorConfig
from vmemsim.config.units import MIB, PAGE_SIZE

STATES = ("high", "clear", "soft", "hard", "low")
HIGH, CLEAR, SOFT, HARD, LOW = range(5)

# What each state does, per preset. Deflating a balloon is always allowed.
ACTIONS: dict[str, dict[int, frozenset[str]]] = {
    "seed": {
        HIGH: frozenset(),
        SOFT: frozenset({"balloon", "swap_if_no_balloon"}),
        HARD: frozenset({"balloon", "compress", "swap"}),
        LOW: frozenset({"balloon", "compress", "swap", "block"}),
    },
    "vsphere": {
        HIGH: frozenset(),
        CLEAR: frozenset(),  # would call page sharing, not simulated yet
        SOFT: frozenset({"balloon", "swap_if_no_balloon"}),
        HARD: frozenset({"compress", "swap"}),  # vSphere 6: ballooning stops here
        LOW: frozenset({"compress", "swap", "block"}),
    },
}


def minfree_mb(host_mb: float) -> float:
    """vSphere's minFree: 6% of the first 4 GB, 4% of 4-12 GB, 2% of 12-28 GB, 1% of the rest."""
    tiers = ((4096.0, 0.06), (8192.0, 0.04), (16384.0, 0.02), (float("inf"), 0.01))
    left, total = host_mb, 0.0
    for size, rate in tiers:
        part = min(left, size)
        total += part * rate
        left -= part
        if left <= 0:
            break
    return total


@dataclass(frozen=True)
class Thresholds:
    """Entry thresholds in pages of free memory, per state index (None: state unused)."""

    preset: str
    enter: tuple[float | None, ...]  # index = state; free < enter[s] enters s
    hysteresis: float
    minfree_pages: float

    @classmethod
    def build(cls, cfg: HypervisorConfig, host_bytes: int) -> Thresholds:
        host_pages = host_bytes / PAGE_SIZE
        mf_pages = minfree_mb(host_bytes / MIB) * MIB / PAGE_SIZE
        if cfg.thresholds == "seed":
            soft = 6.0 if cfg.soft_pct is None else cfg.soft_pct
            hard = 4.0 if cfg.hard_pct is None else cfg.hard_pct
            low = 2.0 if cfg.low_pct is None else cfg.low_pct
            enter = (None, None, soft / 100 * host_pages, hard / 100 * host_pages,
                     low / 100 * host_pages)
        else:
            soft = 64.0 if cfg.soft_pct is None else cfg.soft_pct
            hard = 32.0 if cfg.hard_pct is None else cfg.hard_pct
            low = 16.0 if cfg.low_pct is None else cfg.low_pct
            enter = (None, mf_pages, soft / 100 * mf_pages, hard / 100 * mf_pages,
                     low / 100 * mf_pages)
        return cls(cfg.thresholds, enter, cfg.hysteresis, mf_pages)

    def used_states(self) -> list[int]:
        return [HIGH] + [s for s in range(1, 5) if self.enter[s] is not None]

    def goal_free(self) -> float:
        """Free memory the allocation targets aim for: enough to return to high."""
        first = next(s for s in range(1, 5) if self.enter[s] is not None)
        return float(self.enter[first]) * (1.0 + self.hysteresis)

    def next_state(self, state: int, free_pages: float) -> int:
        raw = HIGH
        for s in range(1, 5):
            t = self.enter[s]
            if t is not None and free_pages < t:
                raw = s
        if raw >= state:
            return raw
        # Climbing: leave each state only with free memory well above its threshold.
        while state > raw:
            t = self.enter[state]
            if t is None or free_pages >= t * (1.0 + self.hysteresis):
                state -= 1
            else:
                break
        return state

    def actions(self, state: int) -> frozenset[str]:
        return ACTIONS[self.preset].get(state, frozenset())
