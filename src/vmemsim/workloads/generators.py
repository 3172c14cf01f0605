"""Workloads: what each process references, decided per tick in Python and generated per
reference in compiled code (kernels.refpath.draw).

A workload is a distribution over the current working set (uniform, zipf, hot/cold, sequential
scan, or a trace) and a schedule saying how large the working set is and where it sits at time
t. The named workloads are presets of the two:

    uniform, zipf, hotcold, scan  that distribution over a fixed working set
    phases    the working set jumps between phases (size and offset from a schedule)
    toucher   the ESX paper's toucher: uniform over a working set that follows a schedule
    hog       a memory-hog benchmark: the working set ramps from `wss` to `size` over `ramp`

and the library of presets (workloads.presets, docs/scenarios.md), whose fields the scenario
may override: database, web, fileserver, vdi, idle (2% of a vCPU over 4 MiB), batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vmemsim.config.schema import ProcessConfig
from vmemsim.config.units import pages
from vmemsim.kernels.layout import DIST_CODES

DEFAULT_DIST = {
    "uniform": "uniform", "zipf": "zipf", "hotcold": "hotcold", "scan": "scan",
    "phases": "uniform", "toucher": "uniform", "hog": "uniform", "trace": "trace",
    # presets always set dist (workloads.presets); these are their defaults too
    "database": "zipf", "web": "zipf", "fileserver": "hotcold", "vdi": "hotcold",
    "idle": "uniform", "batch": "scan",
}
DEFAULT_CPU = {"idle": 0.02}


@dataclass(frozen=True)
class WorkloadShape:
    wss: int  # pages in the working set now
    offset: int  # first page of the working set within the process
    dist: int  # kernels.layout.DIST_CODES
    stride: int  # spreads zipf ranks over pages (coprime with wss)


class Workload:
    """The control-plane side of one process's workload."""

    def __init__(self, cfg: ProcessConfig) -> None:
        self.cfg = cfg
        self.size = pages(cfg.size)
        self.wss0 = pages(cfg.size if cfg.wss is None else cfg.wss)
        self.dist_name = cfg.dist or DEFAULT_DIST[cfg.workload]
        self.dist = DIST_CODES[self.dist_name]
        self.cpu = cfg.cpu if cfg.cpu is not None else DEFAULT_CPU.get(cfg.workload, 1.0)
        self.ref_cost = 1.0 / cfg.rate
        self._stride_cache: dict[int, int] = {}
        self._last: WorkloadShape | None = None

    def active(self, t: float) -> bool:
        c = self.cfg
        return t >= c.start and (c.stop is None or t < c.stop)

    def _stride(self, wss: int) -> int:
        s = self._stride_cache.get(wss)
        if s is None:
            # A large odd multiplier coprime with wss: hot zipf ranks land far apart.
            s = 2654435761 % max(wss, 1) or 1
            while math.gcd(s, wss) != 1:
                s += 1
            self._stride_cache[wss] = s
        return s

    def shape(self, t: float) -> WorkloadShape:
        """Working set at simulated time t (seconds since the scenario started)."""
        c = self.cfg
        local = t - c.start
        wss, offset = self.wss0, 0
        if c.schedule:
            for ph in c.schedule:
                if local >= ph.at:
                    wss, offset = pages(ph.wss), pages(ph.offset)
        elif c.workload == "hog":
            grow = 1.0 if c.ramp <= 0 else min(1.0, max(0.0, local / c.ramp))
            wss = int(self.wss0 + grow * (self.size - self.wss0))
        wss = max(1, min(wss, self.size - offset))
        last = self._last
        if last is None or (last.wss, last.offset, last.dist) != (wss, offset, self.dist):
            # A new object only when the shape changes: the engine rewrites the process's
            # parameters for the kernels only then (identity check, every tick).
            self._last = last = WorkloadShape(wss, offset, self.dist, self._stride(wss))
        return last
