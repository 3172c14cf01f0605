"""The clock that binds host, VMs and hypervisor.

Data flows one way: scenario -> state (vmemsim.build: the arrays of kernels.state) -> kernels
(per-page work, kernels.timeline runs each tick's references) -> counters ->
metrics.recorder (one row per second) -> Result. Each tick: the hypervisor's control plane
(hypervisor.control) on ESX's cadences, the guest's side of each VM (guest.scheduler), then
the compiled timeline over every VM's threads and swappers. The baseline that slowdown needs
is vmemsim.baseline's; `simulate` is there.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable
from typing import Any

from vmemsim.build import build, costs
from vmemsim.config.schema import Scenario
from vmemsim.config.units import pages
from vmemsim.guest import scheduler
from vmemsim.hypervisor.control import Hypervisor
from vmemsim.hypervisor.events import Events
from vmemsim.hypervisor.sharing import Sharing
from vmemsim.kernels import timeline
from vmemsim.kernels.jit import bind
from vmemsim.kernels.layout import HC_MFREE_N, PS_ACTIVE
from vmemsim.kernels.state import HostArrays, new_host
from vmemsim.metrics.recorder import Recorder
from vmemsim.metrics.result import Result

# How far a thread may run on hits past the earliest other agent's clock (kernels.timeline).
# Hits touch nothing another agent reads; a bound keeps the agents' clocks together so that
# what one does to a VM's pages (an eviction, a host swap-out) is seen near its time. Measured
# (docs/performance.md): smaller skews cost turns of the scheduler, larger ones gain nothing.
SKEW = 1e-3


class Simulation:
    """One run of a scenario. Drive it with `step_second()` or `run()`; read `result()`."""

    def __init__(self, scenario: Scenario, *, check: bool | int = False,
                 policies: Iterable[str] = ()) -> None:
        """`check`: verify the invariants (vmemsim.invariants) every tick (True), every
        `check` ticks (an int), and after the last tick; a check costs a pass over every page
        array, 0.2-0.5 s on an 8 GiB host. `policies`: guest policies to compile the
        timeline for besides the scenario's (a baseline group's simulation takes its whole
        scenario's, and so the same compiled code)."""
        if check is None or isinstance(check, bool):
            every = 1 if check else 0
        else:
            try:
                every = operator.index(check)  # any integer, numpy's too; not a float
            except TypeError:
                every = -1
        if every < 0:
            raise ValueError(f"check must be True, False or a number of ticks >= 1, got {check!r}")
        self.scenario = sc = scenario
        self.check = every
        self.dt = sc.tick
        self.ticks_per_s = int(round(1.0 / sc.tick))
        self.tick = 0
        self.wall0 = time.perf_counter()
        self.interrupted = False
        self.host_bytes = sc.host.memory
        self.n_mpn = pages(sc.host.memory - sc.host.vmkernel)
        self.host: HostArrays = new_host(self.n_mpn)
        self.cost = costs(sc)
        b = build(sc, self.cost, policies)
        self.pool, self.th, self.vms, self.canon = b.pool, b.th, b.vms, b.canon
        self.sched, self.reclaim, self.uses = b.sched, b.reclaim, b.uses
        for v in self.vms:
            v.hc = self.host.hc  # TPS: a VM's consumed memory counts its part of shared pages
        self.hv = Hypervisor(sc, self.host, self.canon, self.th, self.reclaim, sc.tick)
        self.sharing = self.hv.sharing = Sharing(self)  # TPS: the sharing scanner
        self.hv.admit()
        # Events during the run (hypervisor.events), applied at their ticks' starts.
        self.events = Events(self)
        self.recorder = Recorder(self)
        self.hv.on_transition.append(self.recorder.transition)
        # Pages in the working sets of the threads that ran, last tick and this tick so far
        # (refpath.lookahead).
        self._host_wss = 0
        # The least free machine memory at a tick's end, and when (summary: the headroom).
        self.min_free = (self.n_mpn, 0.0)
        # Called with the simulation after each simulated second (Baseline.watch).
        self.watchers: list[Callable[[Simulation], None]] = []

    # ---- what the metrics read ----------------------------------------------------------
    @property
    def time_s(self) -> float:
        return self.tick * self.dt

    @property
    def done(self) -> bool:
        return self.tick >= self.total_ticks or self.interrupted

    @property
    def total_ticks(self) -> int:
        return int(round(self.scenario.duration / self.dt))

    @property
    def free_pages(self) -> int:
        return int(self.host.hc[HC_MFREE_N])

    @property
    def state(self) -> int:
        """The host's memory state (hypervisor.states index)."""
        return self.hv.state

    @property
    def thresholds(self) -> Any:  # hypervisor.states.Thresholds
        return self.hv.thresholds

    @property
    def _tick_state(self) -> str:
        """The state the last tick ran in."""
        return self.hv.tick_state

    # ---- the tick ----------------------------------------------------------------------
    def step_tick(self) -> None:
        now = self.time_s
        if 0 <= self.events.next_tick <= self.tick:
            self.events.due(self, now)
        self.hv.begin_tick(now, self.tick)
        self.sharing.tick(now)  # TPS: the scanner's pages for this tick
        active: list[int] = []
        wss = 0
        for v in self.canon:
            v.blocked_now = False
            if not v.powered_on:
                continue
            v.on_ticks += 1
            if self.hv.blocks(v):
                continue
            wss += scheduler.prepare(v, self.th, self.host, now, self.dt, self._host_wss,
                                     active)
        ps = self.th.ps
        ps[:, PS_ACTIVE] = 0
        ps[active, PS_ACTIVE] = 1
        if active or self.hv.reclaiming:
            self.slices += self._timeline(self.pool, self.host, self.th, self.reclaim,
                                          self.sched, self.cost, float(now), float(now + self.dt),
                                          SKEW, self.tick, self.hv.cfg.swap_cluster,
                                          self.uses)
        free = int(self.host.hc[HC_MFREE_N])
        if free < self.min_free[0]:  # the headroom: the least free memory, and when
            self.min_free = (free, now + self.dt)
        # issue 21: per tick into the recorder (time in each state, largest targets per second)
        self.recorder.tick(self.state)
        self.tick += 1
        self._host_wss = wss
        if self.check and (self.tick % self.check == 0 or self.tick >= self.total_ticks):
            from vmemsim.invariants import check_all

            check_all(self)

    slices = 0  # the timeline's agent turns so far (benchmarks)

    @property
    def _timeline(self) -> Callable[..., int]:
        """The timeline's compiled entry, bound to this simulation's argument types once
        (jit.bind skips numba's dispatch, which inspects every array of every argument)."""
        f = self.__dict__.get("_bound")
        if f is None:
            f = self.__dict__["_bound"] = bind(
                timeline.run_timeline, self.pool, self.host, self.th, self.reclaim,
                self.sched, self.cost, 0.0, 0.0, SKEW, 0, 1, self.uses)
        return f

    def step_second(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        for _ in range(self.ticks_per_s):
            if self.tick >= self.total_ticks:
                break
            self.step_tick()
        row = self.recorder.record(self.time_s)
        for watch in self.watchers:
            watch(self)
        return row

    def run(self, progress: Any = None) -> Result:
        try:
            while not self.done:
                self.step_second()
                if progress is not None:
                    progress(self)
        except KeyboardInterrupt:
            self.interrupted = True
        return self.result()

    def result(self, base: Result | None = None) -> Result:
        return self.recorder.result(complete=not self.interrupted
                                    and self.tick >= self.total_ticks,
                                    wall_s=time.perf_counter() - self.wall0, base=base)

