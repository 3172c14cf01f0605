"""The tick loop that binds host, VMs and workloads.

Data flows one way: scenario -> state arrays (kernels.state) -> kernels (per-page work) ->
counters -> metrics.recorder (one row per second) -> Result. The control plane here runs on
ESX's cadences: memory state every tick, allocation targets every balance period (and at once
when the state worsens), balloon drivers every poll, sampling every sample period. Nothing here
walks every page every tick.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from vmemsim import _fork, basecache
from vmemsim.config.schema import OS_PRESETS, Scenario, VMConfig
from vmemsim.config.units import MIB, mb, pages
from vmemsim.guest.balloon_driver import BalloonDriver
from vmemsim.guest.policies import policy_id
from vmemsim.hypervisor import allocation, sampling, states
from vmemsim.hypervisor.balloon import balloon_target, swap_target
from vmemsim.kernels import guestmm, hostmm, mmu, refpath, timeline
from vmemsim.kernels.jit import bind
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BALLOON_N,
    C_BOOT_CURSOR,
    C_SAMPLE_TOUCHED,
    C_TOUCHED,
    C_ZIP_MPNS,
    HC_MFREE_N,
    HC_SCARCE,
    K_BALLOON_PAGE,
    K_COMPRESS,
    K_DECOMPRESS,
    K_GDEV_LAT,
    K_GDEV_SVC,
    K_GUEST_FAULT,
    K_HDEV_LAT,
    K_HDEV_SVC,
    K_HV_FIRST,
    K_HV_SAMPLE,
    N_COSTS,
    N_PP,
    N_PS,
    N_WRNG,
    PP_AHEAD,
    PP_ALPHA,
    PP_BASE,
    PP_CARRY_CPU,
    PP_CARRY_RUN,
    PP_CLOCK,
    PP_COST,
    PP_DIST,
    PP_FILE,
    PP_HOT_FRAC,
    PP_HOT_PROB,
    PP_KPAGES,
    PP_KREF,
    PP_OFFSET,
    PP_SIZE,
    PP_SPEED,
    PP_STRIDE,
    PP_TOFF,
    PP_WRITE,
    PP_WSS,
    PS_ACTIVE,
    PS_PENDING,
    PS_SHARED,
    PS_TLEN,
    PS_TPOS,
    PS_VM,
    T_BLOCKED,
    T_FAULT,
)
from vmemsim.kernels.rng import new_state
from vmemsim.kernels.state import (
    O_GPPN,
    HostArrays,
    Threads,
    VMArrays,
    VMSpec,
    new_host,
    new_pool,
)
from vmemsim.kernels.timeline import RECLAIM_SWAP, RECLAIM_ZIP, Sched, new_reclaim
from vmemsim.metrics.recorder import Recorder
from vmemsim.metrics.result import Result
from vmemsim.workloads.generators import Workload, WorkloadShape
from vmemsim.workloads.trace import WINDOW

if TYPE_CHECKING:
    import pandas as pd


class AdmissionError(ValueError):
    """A VM cannot power on: its reservation cannot be guaranteed."""


def overhead_bytes(vm: VMConfig) -> int:
    """Per-VM overhead memory: given, or 20 MiB + 8 MiB per vCPU + 1% of memory (approximate
    vSphere overhead tables; unconfirmed, documented in docs/esx-model.md)."""
    if vm.overhead is not None:
        return vm.overhead
    return 20 * MIB + 8 * MIB * vm.vcpus + vm.memory // 100


def kernel_bytes(vm: VMConfig) -> int:
    """The guest kernel's memory: given, or its OS preset's share of memory, clipped."""
    if vm.guest.kernel is not None:
        return vm.guest.kernel
    os = OS_PRESETS[vm.guest.os]
    return max(os.kernel_min, min(os.kernel_max, int(vm.memory * os.kernel_pct / 100)))


def name_key(name: str) -> int:
    """A stable 63-bit number for a name (not Python's hash, which changes per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") >> 1


def stream(seed: int, *names: str | int) -> np.random.SeedSequence:
    """The random stream of the component these names name (a VM, a process of it, a thread):
    from the scenario's seed and the names alone, so that a VM draws the same numbers
    wherever it stands in the scenario and whichever other VMs run beside it."""
    key = tuple(n if isinstance(n, int) else name_key(n) for n in names)
    return np.random.SeedSequence(seed, spawn_key=key)


def threads_of(w: Workload) -> int:
    """Threads a process runs: one per vCPU it keeps busy (a trace is one stream: one)."""
    if w.cfg.trace is not None:
        return 1
    return max(1, math.ceil(w.cpu - 1e-9))


# How far a thread may run on hits past the earliest other agent's clock (kernels.timeline).
# Hits touch nothing another agent reads; a bound keeps the agents' clocks together so that
# what one does to a VM's pages (an eviction, a host swap-out) is seen near its time. Measured
# (docs/performance.md): smaller skews cost turns of the scheduler, larger ones gain nothing.
SKEW = 1e-3


@dataclass
class VM:
    """Control-plane state of one VM; its per-page state is `arrays`, its threads are rows
    `rows` of the simulation's thread table."""

    idx: int
    cfg: VMConfig
    arrays: VMArrays
    workloads: list[Workload]
    threads: list[list[int]]  # process j's rows in the thread table
    driver: BalloonDriver
    estimate: sampling.ActiveEstimate
    n_gppn: int
    kernel_pages: int
    overhead_pages: int
    zip_slots: int
    shares: float
    min_pages: int
    max_pages: int
    proc_order: list[int]  # processes by name: the order the control plane handles them in
    powered_on: bool = False
    on_ticks: int = 0  # ticks powered on (its vCPU time: vcpus x ticks x tick)
    boot_end: int = 0
    booted_at: float | None = None
    target: float = 0.0
    swtgt: float = 0.0
    debt: float = 0.0  # guest CPU time owed (balloon work)
    sample_base: int = 0
    sampling: bool = False  # a sampling period is running
    next_sample: float = 0.0  # its next sampling boundary
    active_true: int = 0
    blocked_now: bool = False
    ballooning_possible: bool = True
    host_acted: bool = False  # ballooned or reclaimed from, ever (Simulation.untouched)
    cost: np.ndarray = field(default_factory=lambda: np.zeros(N_COSTS))  # host's + its devices
    feeds: dict[int, Any] = field(default_factory=dict)  # process index -> TraceFeed
    exited: set[int] = field(default_factory=set)  # processes that stopped and freed memory
    zkey: dict[int, tuple[int, float]] = field(default_factory=dict)  # what ztab rows hold
    shapes: dict[int, WorkloadShape] = field(default_factory=dict)  # what pp rows hold
    ahead: dict[int, int] = field(default_factory=dict)  # ... and their PP_AHEAD
    speed: dict[int, float] = field(default_factory=dict)  # ... and their PP_SPEED

    @property
    def consumed(self) -> int:
        """Machine pages charged to the VM: backed pages plus compression-cache pages."""
        vc = self.arrays.vc
        return int(vc[C_BACKED] + vc[C_ZIP_MPNS])


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
        self.thresholds = states.Thresholds.build(sc.hypervisor, sc.host.memory)
        self.state = states.HIGH
        self.cost = self._costs()
        self._build(sc, policies)
        self._admission()
        self.recorder = Recorder(self)
        # The first targets come one balance period in: at power-on nothing is consumed yet,
        # and demand-based targets would read as a few MB.
        self._last_targets_at = 0.0
        # Pages in the working sets of the threads that ran, last tick and this tick so far
        # (refpath.lookahead).
        self._host_wss = 0
        self._wss_now = 0
        # The least free machine memory at a tick's end, and when (summary: the headroom).
        self.min_free = (self.n_mpn, 0.0)
        # Called with the simulation after each simulated second (Baseline.watch).
        self.watchers: list[Callable[[Simulation], None]] = []

    # ---- construction -------------------------------------------------------------------
    def _costs(self) -> np.ndarray:
        c = self.scenario.costs
        cost = np.zeros(N_COSTS)
        cost[K_GUEST_FAULT] = c.guest_fault
        cost[K_HV_FIRST] = c.hv_first_touch
        cost[K_HV_SAMPLE] = c.hv_sample_fault
        cost[K_DECOMPRESS] = c.decompress
        cost[K_COMPRESS] = c.compress
        cost[K_BALLOON_PAGE] = c.balloon_page
        cost[K_HDEV_LAT] = self.scenario.host.swap_device.latency
        cost[K_HDEV_SVC] = 1.0 / self.scenario.host.swap_device.iops
        return cost

    def _build(self, sc: Scenario, policies: Iterable[str]) -> None:
        """Every VM's arrays (one pool) and every thread's row (one table)."""
        hv = sc.hypervisor
        specs, parts = [], []
        for cfg in sc.vm:
            n_gppn = pages(cfg.memory)
            kernel = min(pages(kernel_bytes(cfg)), n_gppn // 2)
            workloads = [Workload(p) for p in cfg.process]
            n_gvpn = sum(w.size for w in workloads)
            guest_swap = pages(cfg.memory if cfg.guest.swap is None else cfg.guest.swap)
            if n_gvpn > n_gppn - kernel + guest_swap:
                raise ValueError(
                    f"vm {cfg.name!r}: processes need {mb(n_gvpn):.0f} MB, more than guest "
                    f"memory ({mb(n_gppn - kernel):.0f} MB for processes) plus guest swap "
                    f"({mb(guest_swap):.0f} MB): the guest would run out of memory")
            g = cfg.guest
            wm = tuple(int(n_gppn * pct / 100) for pct in
                       (g.free_min_pct, g.free_low_pct, g.free_high_pct))
            per = hostmm.slots_per_page(hv.zip_threshold)
            zip_slots = int(per * n_gppn * hv.zip_max_pct / 100) if hv.compression else 0
            hseq = stream(sc.seed, cfg.name, "host")
            specs.append(VMSpec(
                n_gppn=n_gppn, n_gvpn=n_gvpn, guest_swap_pages=guest_swap,
                host_swap_pages=max(0, n_gppn - pages(cfg.reservation)), zip_slots=zip_slots,
                sample_size=hv.sample_size, watermarks=wm, swap_cluster=g.swap_cluster,
                compressible=hostmm.fit_share(cfg.compressible, hv.zip_threshold),
                zip_per_page=per,
                content_seed=int(hseq.spawn(1)[0].generate_state(1, dtype=np.uint64)[0]),
                insert_referenced=g.clock_insert_referenced, rng=new_state(hseq),
                policy_id=policy_id(g.policy)))
            parts.append((n_gppn, kernel, workloads, zip_slots))
        self.pool, views = new_pool(specs)
        n_thr = sum(threads_of(w) for _, _, ws, _ in parts for w in ws)
        traced = sum(1 for _, _, ws, _ in parts for w in ws if w.cfg.trace is not None)
        self.th = Threads(
            pp=np.zeros((n_thr, N_PP)), ps=np.zeros((n_thr, N_PS), dtype=np.int64),
            wrng=np.zeros((n_thr, N_WRNG), dtype=np.uint64),
            ztab=np.ones((n_thr, refpath.ZIPF_KNOTS + 1)),
            tbuf=np.zeros(max(1, WINDOW * traced), dtype=np.int64),
            cost=np.zeros((n_thr, N_COSTS)), tlb=mmu.new_tlb(n_thr),
            lbroken=mmu.new_broken(int(self.pool.off[-1, O_GPPN])))
        self.th.ps[:, PS_PENDING] = -1
        self.vms: list[VM] = []
        row = 0
        tslot = 0
        ranks: list[tuple[str, str, int]] = []
        for i, (cfg, arrays, (n_gppn, kernel, workloads, zip_slots)) in enumerate(
                zip(sc.vm, views, parts, strict=True)):
            g = cfg.guest
            k_active = int(kernel * g.kernel_active)  # its first frames (kernel_frames)
            threads: list[list[int]] = []
            base = 0
            for w in workloads:
                rows = list(range(row, row + threads_of(w)))
                row += len(rows)
                threads.append(rows)
                for k, r in enumerate(rows):
                    # Each thread draws from its own stream, named by its VM, process and
                    # number: the same references on any host (the baseline relies on it).
                    self.th.wrng[r, :4] = new_state(stream(sc.seed, cfg.name, "process",
                                                           w.cfg.name, k))
                    pp = self.th.pp[r]
                    pp[PP_BASE] = base
                    pp[PP_SIZE] = w.size
                    pp[PP_ALPHA] = w.cfg.alpha
                    pp[PP_HOT_FRAC] = w.cfg.hot_frac
                    pp[PP_HOT_PROB] = w.cfg.hot_prob
                    pp[PP_WRITE] = w.cfg.write_frac
                    pp[PP_FILE] = w.cfg.file_frac
                    # A replayed trace is the whole reference stream: no kernel references
                    # are added to it.
                    if w.cfg.trace is None and k_active > 0:
                        pp[PP_KREF] = g.kernel_refs
                        pp[PP_KPAGES] = k_active
                    self.th.ps[r, PS_VM] = i
                    mmu.thread_row(pp, cfg.mmu, g.large_pages, hv.large_pages,
                                   w.cfg.pt_updates, w.cfg.ctx_switches, w.cfg.rate,
                                   int(self.pool.off[i, O_GPPN]))
                    ranks.append((cfg.name, w.cfg.name, k))
                base += w.size
            hv_ctl_max = int(n_gppn * hv.ctl_max_pct / 100)
            driver = BalloonDriver(
                installed=cfg.tools and hv.balloon, start_time=math.inf,
                rate_min=hv.balloon_rate_min, rate_max=hv.balloon_rate_max,
                nopressure=hv.balloon_rate_nopressure,
                max_pages=hv_ctl_max)
            max_pages = n_gppn if cfg.limit is None else min(n_gppn, pages(cfg.limit))
            vm = VM(idx=i, cfg=cfg, arrays=arrays, workloads=workloads, threads=threads,
                    driver=driver, estimate=sampling.ActiveEstimate(hv.fast_gain, hv.slow_gain),
                    n_gppn=n_gppn, kernel_pages=kernel,
                    overhead_pages=pages(overhead_bytes(cfg)), zip_slots=zip_slots,
                    shares=float(cfg.share_count()),
                    min_pages=min(pages(cfg.reservation), max_pages), max_pages=max_pages,
                    proc_order=sorted(range(len(workloads)),
                                      key=lambda j, ws=workloads: ws[j].cfg.name))
            vm.target = float(max_pages)
            vm.cost = self.cost.copy()
            vm.cost[K_GDEV_LAT] = cfg.guest.swap_device.latency
            vm.cost[K_GDEV_SVC] = 1.0 / cfg.guest.swap_device.iops
            mmu.vm_costs(vm.cost, cfg.mmu, sc.costs)
            for j, w in enumerate(workloads):
                if w.cfg.trace is not None:
                    from vmemsim.workloads.trace import TraceFeed

                    vm.feeds[j] = TraceFeed(w.cfg.trace, w.cfg.trace_format, w.size,
                                            w.cfg.loop, pace=w.cfg.pace)
                    self.th.pp[threads[j][0], PP_TOFF] = tslot * WINDOW
                    tslot += 1
            self.vms.append(vm)
        # The control plane visits VMs, and the timeline breaks ties, in the order of their
        # names, not their places in the file: no VM is favoured by where it stands.
        self.canon = sorted(self.vms, key=lambda v: v.cfg.name)
        n_vm = len(self.vms)
        order = sorted(range(n_thr), key=ranks.__getitem__)
        rank = np.empty(n_thr + n_vm, dtype=np.int64)
        rank[order] = np.arange(n_thr)
        rank[[n_thr + v.idx for v in self.canon]] = n_thr + np.arange(n_vm)
        vrow = np.zeros(n_vm + 1, dtype=np.int64)
        vrow[1:] = np.cumsum([sum(len(t) for t in v.threads) for v in self.vms])
        self.sched = Sched(heap=np.zeros(n_thr + n_vm, dtype=np.int64),
                           key=np.zeros(n_thr + n_vm), tie=np.zeros(n_thr + n_vm, np.int64),
                           rank=rank, live=np.zeros(n_thr + n_vm, np.int64), vrow=vrow)
        # Below this much free memory, who takes the last machine pages must follow time
        # (kernels.refpath._ordered): from the soft state down.
        self.host.hc[HC_SCARCE] = int(self.thresholds.enter[states.SOFT] or 0)
        self.reclaim = new_reclaim(n_vm, sc.hypervisor.swap_inflight)
        self.uses = refpath.policies_used({policy_id(p) for p in
                                           {*policies, *(v.guest.policy for v in sc.vm)}})

    def _refill_traces(self, vm: VM, now: float) -> None:
        th = self.th
        for j, feed in vm.feeds.items():
            r = vm.threads[j][0]
            off = int(th.pp[r, PP_TOFF])
            win = th.tbuf[off: off + WINDOW]
            pos, n = int(th.ps[r, PS_TPOS]), int(th.ps[r, PS_TLEN])
            if n - pos > WINDOW // 2 or (feed.done and pos >= n):
                continue
            keep = win[pos:n].copy()
            until = now + self.dt - vm.workloads[j].cfg.start
            th.ps[r, PS_TLEN] = feed.fill(win, keep, until)
            th.ps[r, PS_TPOS] = 0

    def _admission(self) -> None:
        # ESX admits a VM only if its reservation plus overhead fits in unreserved memory.
        unreserved = self.n_mpn - self.thresholds.minfree_pages
        for vm in sorted(self.vms, key=lambda v: (v.cfg.start, v.cfg.name)):
            need = vm.min_pages + vm.overhead_pages
            if need > unreserved:
                raise AdmissionError(
                    f"vm {vm.cfg.name!r} cannot power on: reservation {mb(vm.min_pages):.0f} MB"
                    f" + overhead {mb(vm.overhead_pages):.0f} MB exceeds the host's unreserved"
                    f" memory ({mb(max(0, unreserved)):.0f} MB left)")
            unreserved -= need

    # ---- helpers ------------------------------------------------------------------------
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

    def _power_on(self, vm: VM, now: float) -> None:
        hostmm.overhead_alloc(self.host, vm.idx, vm.overhead_pages)
        guestmm.kernel_frames(vm.arrays, self.host, vm.kernel_pages)
        vm.boot_end = vm.n_gppn if vm.cfg.guest.boot_touch else vm.kernel_pages
        vm.powered_on = True
        vm.next_sample = now

    # ---- control plane ------------------------------------------------------------------
    def _update_state(self, now: float) -> None:
        new = self.thresholds.next_state(self.state, self.free_pages)
        if new != self.state:
            self.recorder.transition(now, self.state, new)
            worse = new > self.state
            self.state = new
            if worse:
                self._set_targets(now)

    def _set_targets(self, now: float) -> None:
        hv = self.scenario.hypervisor
        on = [v for v in self.canon if v.powered_on]
        if not on:
            return
        overhead = sum(v.overhead_pages for v in on)
        available = self.n_mpn - overhead - self.thresholds.goal_free()
        demands = []
        for v in on:
            p = v.consumed
            grow = v.n_gppn * hv.growth_pct / 100
            demand = min(v.max_pages, p + grow)
            f = min(1.0, v.estimate.value * v.n_gppn / max(p, 1))
            demands.append(allocation.VMDemand(v.shares, v.min_pages, v.max_pages, demand, f))
        for v, t in zip(on, allocation.targets(demands, available, hv.idle_tax), strict=True):
            v.target = t
        self._last_targets_at = now

    def _balloon(self, now: float, acts: frozenset[str]) -> None:
        for v in self.canon:
            if not v.powered_on:
                continue
            d = v.driver
            size = int(v.arrays.vc[C_BALLOON_N])
            d.target = int(balloon_target(size, v.consumed, v.target, d.max_pages))
            over_limit = v.consumed > v.max_pages  # ESX enforces a limit in every state
            if "balloon" not in acts and not over_limit:
                d.target = min(d.target, size)  # outside balloon states it may only deflate
            running = d.running(now)
            v.ballooning_possible = running and d.target < d.max_pages
            if not running:
                d.target = size if size else 0
                continue
            d.poll()
            if d.target > size and ("balloon" in acts or over_limit):
                v.host_acted = True
                _, _, spent, failed = d.inflate(d.target - size,
                                                functools.partial(self._inflate, v, now))
                v.debt += spent
                if failed:
                    v.ballooning_possible = False
            elif d.target < size:
                v.host_acted = True
                guestmm.balloon_deflate(v.arrays, min(size - d.target, d.deflate_rate()))

    def _inflate(self, v: VM, now: float, n: int, can_sleep: bool) -> tuple[int, int, float]:
        """The balloon driver's allocation of n pages in VM v (BalloonDriver.inflate)."""
        got, ev, spent = guestmm.balloon_inflate(v.arrays, self.host, v.arrays.pol, n,
                                                 can_sleep, now, v.cost)
        return int(got), int(ev), float(spent)

    def _host_reclaim(self, now: float, acts: frozenset[str]) -> None:
        """Set each VM's swapper's work for this tick (kernels.timeline does it).

        The swap target is the VM's excess over its target that ballooning will not take
        back in time: in a state where the balloon works and the driver can inflate, what
        its next poll may inflate by (BalloonDriver.next_rate) is left to it. Compression
        comes first whenever the host swaps: a page chosen for swapping is compressed if it
        fits in the cache's slot, in any state (ESX 4.1+)."""
        hv = self.scenario.hypervisor
        rc = self.reclaim
        rc.want[:] = 0
        for v in self.canon:
            v.swtgt = 0.0
            if not v.powered_on:
                continue
            over_limit = v.consumed > v.max_pages
            soon = 0.0  # what the balloon will take back before swapping would
            if "balloon" in acts and v.ballooning_possible:
                pending = max(0.0, v.driver.target - v.arrays.vc[C_BALLOON_N])
                soon = min(pending, v.driver.next_rate())
            if "swap" in acts or "compress" in acts:
                v.swtgt = swap_target(v.consumed, v.target, soon)
            elif ("swap_if_no_balloon" in acts or over_limit) and not v.ballooning_possible:
                v.swtgt = swap_target(v.consumed, v.target, 0.0)
            if v.swtgt < 1:
                continue
            use_swap = hv.swap and ("swap" in acts or "swap_if_no_balloon" in acts
                                    or over_limit)
            if not (use_swap or hv.compression):
                continue
            v.host_acted = True  # even if it takes nothing: its draws come from the VM's stream
            rc.want[v.idx] = int(v.swtgt)
            rc.mode[v.idx] = ((RECLAIM_ZIP if hv.compression else 0)
                              | (RECLAIM_SWAP if use_swap else 0))

    def _sampling(self, now: float) -> None:
        """Active-memory sampling, each VM on its own period from its power-on: at each of
        its boundaries the period's sample updates the estimate and a new one starts. Until
        its first full period a VM counts as fully active (ESX's estimate starts at 100%)."""
        hv = self.scenario.hypervisor
        for v in self.canon:
            if not v.powered_on or now < v.next_sample - 1e-9:
                continue
            a = v.arrays
            if v.sampling:
                n = min(hv.sample_size, v.n_gppn)
                touched = int(a.vc[C_SAMPLE_TOUCHED]) - v.sample_base
                hostmm.end_sampling(a)
                v.estimate.update(touched / n)
                v.active_true = int(a.vc[C_TOUCHED])
                hostmm.clear_touched(a)
            v.sample_base = int(a.vc[C_SAMPLE_TOUCHED])
            hostmm.start_sampling(a, hv.sample_size)
            v.sampling = True
            v.next_sample += hv.sample_period

    # ---- the tick ----------------------------------------------------------------------
    def _prepare_vm(self, v: VM, now: float, active: list[int]) -> None:
        """Before the timeline runs the tick: boot, processes that start or stop, each
        process's working set, and each active thread's speed and clock (appended to
        `active`)."""
        a = v.arrays
        vcpu_time = v.cfg.vcpus * self.dt
        delay = 0.0
        if v.debt > 0:  # the balloon driver's work took the VM's vCPUs first
            use = min(v.debt, vcpu_time)
            v.debt -= use
            a.vt[T_FAULT] += use
            delay = use / v.cfg.vcpus
        if int(a.vc[C_BOOT_CURSOR]) < v.boot_end:
            budget = vcpu_time - delay * v.cfg.vcpus
            used = hostmm.boot_touch(a, self.host, v.boot_end, budget, now, v.cost)
            # Its last page may run past the tick: that part is the next tick's work.
            a.vt[T_FAULT] += min(used, budget)
            v.debt += max(0.0, used - budget)
            if int(a.vc[C_BOOT_CURSOR]) < v.boot_end:
                if budget - used > 0:  # boot stalled on machine memory
                    a.vt[T_BLOCKED] += budget - used
                return
            delay += used / v.cfg.vcpus
        if v.booted_at is None:
            v.booted_at = now
            v.driver.start_time = now + v.cfg.tools_start
        th = self.th
        pp = th.pp
        demand = 0.0
        run: list[int] = []
        for j in v.proc_order:
            w = v.workloads[j]
            if w.cfg.stop is not None and now >= w.cfg.stop and j not in v.exited:
                rows = v.threads[j]
                guestmm.free_process(a, int(pp[rows[0], PP_BASE]), w.size)
                for r in rows:
                    th.ps[r, PS_PENDING] = -1
                pp[rows, PP_CARRY_RUN:PP_CARRY_CPU + 1] = 0.0
                v.exited.add(j)
            if not w.active(now):
                continue
            shape = w.shape(now)
            if shape is not v.shapes.get(j):  # the same object while it does not change
                v.shapes[j] = shape
                for r in v.threads[j]:
                    pp[r, PP_WSS] = shape.wss
                    pp[r, PP_OFFSET] = shape.offset
                    pp[r, PP_DIST] = shape.dist
                    pp[r, PP_STRIDE] = shape.stride
                if shape.dist == 1 and v.zkey.get(j) != (shape.wss, w.cfg.alpha):
                    th.ztab[v.threads[j]] = refpath.zipf_table(shape.wss, w.cfg.alpha)
                    v.zkey[j] = (shape.wss, w.cfg.alpha)
            ahead = refpath.lookahead(shape.wss, self._host_wss)
            if ahead != v.ahead.get(j):
                v.ahead[j] = ahead
                pp[v.threads[j], PP_AHEAD] = ahead
            self._wss_now += shape.wss
            demand += w.cpu
            run.append(j)
        if not run:
            return
        if v.feeds:
            self._refill_traces(v, now)
        # The VM's vCPUs are shared by its threads in proportion to what each keeps busy.
        scale = min(1.0, v.cfg.vcpus / demand)
        first = len(active)
        for j in run:
            w = v.workloads[j]
            rows = v.threads[j]
            speed = w.cpu / len(rows) * scale
            if speed != v.speed.get(j):
                v.speed[j] = speed
                for r in rows:
                    pp[r, PP_SPEED] = speed
                    pp[r, PP_COST] = w.ref_cost / speed
                    c = th.cost[r]
                    c[:] = v.cost
                    c[CPU_COSTS] /= speed
            for r in rows:
                # The balloon's or the boot's work (delay) takes each vCPU first, whether its
                # thread was ready or still waiting on what it started last tick.
                pp[r, PP_CLOCK] = max(pp[r, PP_CLOCK], now) + delay
                active.append(r)
        shared = 1 if len(active) - first > 1 else 0
        for r in active[first:]:
            th.ps[r, PS_SHARED] = shared

    def step_tick(self) -> None:
        now = self.time_s
        hv = self.scenario.hypervisor
        for v in self.canon:
            if not v.powered_on and now >= v.cfg.start:
                self._power_on(v, now)
        self._update_state(now)
        self._tick_state = states.STATES[self.state]  # the state this tick runs in
        if now - self._last_targets_at >= hv.balance_period - 1e-9:
            self._set_targets(now)
        acts = self.thresholds.actions(self.state)
        period_ticks = max(1, int(round(hv.balloon_poll / self.dt)))
        if self.tick % period_ticks == 0:
            self._balloon(now, acts)
        self._host_reclaim(now, acts)
        self._sampling(now)
        block = "block" in acts and hv.blocking
        active: list[int] = []
        for v in self.canon:
            v.blocked_now = False
            if not v.powered_on:
                continue
            v.on_ticks += 1
            if block and v.consumed > v.target:
                v.blocked_now = True
                v.arrays.vt[T_BLOCKED] += self.dt * v.cfg.vcpus
                for rows in v.threads:
                    self.th.pp[rows, PP_CARRY_RUN:PP_CARRY_CPU + 1] = 0.0
                continue
            self._prepare_vm(v, now, active)
        ps = self.th.ps
        ps[:, PS_ACTIVE] = 0
        ps[active, PS_ACTIVE] = 1
        if active or self.reclaim.want.any():
            self.slices += self._timeline(self.pool, self.host, self.th, self.reclaim,
                                          self.sched, self.cost, float(now), float(now + self.dt),
                                          SKEW, self.tick, hv.swap_cluster, self.uses)
        free = int(self.host.hc[HC_MFREE_N])
        if free < self.min_free[0]:  # the headroom: the least free memory, and when
            self.min_free = (free, now + self.dt)
        self.tick += 1
        self._host_wss, self._wss_now = self._wss_now, 0
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

    def untouched(self) -> tuple[int, ...]:
        """The VMs (indices) whose run so far is their baseline, reference for reference: the
        hypervisor never acted on them (no balloon inflated or deflated, no reclamation, which
        draws from the VM's stream even when it takes nothing, no blocking), and the VMs are
        independent on an ample host (separable), so that nothing else of the host reaches a
        VM. Their baselines need not be run (Baseline.result); tested against the run ones."""
        if not self.scenario.baseline or not separable(self.scenario):
            return ()
        return tuple(i for i, v in enumerate(self.vms)
                     if not v.host_acted and v.arrays.vt[T_BLOCKED] == 0)

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


# The cost entries that are CPU work, done at a thread's speed (the others are device times).
CPU_COSTS = [K_GUEST_FAULT, K_HV_FIRST, K_HV_SAMPLE, K_DECOMPRESS, K_BALLOON_PAGE,
             *mmu.CPU_COSTS]


# Groups a baseline runs in. A simulation of fewer VMs keeps more of each VM's tables in the
# caches: the default scenario's baseline (300 s, one process) took 4.7-5.4 s of CPU whole,
# 4.4-4.8 s in two groups, 4.0-4.3 s in four. Each group's simulation costs its own per-tick
# work too, so not one group per VM of a host of a hundred VMs.
SERIAL_GROUPS = 4


def baseline_scenario(sc: Scenario, group: tuple[int, ...] | None = None) -> Scenario:
    """The same VMs (those of `group`, indices into sc.vm) on a host with memory to spare:
    their unconstrained throughput."""
    vms = sc.vm if group is None else tuple(sc.vm[i] for i in group)
    need = sc.host.vmkernel + sum(v.memory + overhead_bytes(v) for v in vms)
    memory = int(need / 0.85) + 64 * MIB
    host = sc.host.model_copy(update={"memory": memory})
    return sc.model_copy(update={"host": host, "vm": vms, "baseline": False})


def baseline_run(sc: Scenario, until: float,
                 group: tuple[int, ...] | None = None) -> Result | None:
    """Run the unconstrained baseline up to `until` simulated seconds (None if interrupted):
    the VMs of `group` (indices into sc.vm) in one simulation, or with no group all of them,
    one group after another (baseline_groups, SERIAL_GROUPS). The results are the same: on an
    ample host the VMs do not interact, and each draws the streams its name names (tested)."""
    if group is None:
        groups = baseline_groups(sc, SERIAL_GROUPS)
        if len(groups) > 1:
            return run_groups(sc, until, groups)
        group = groups[0]
    sim = baseline_sim(sc, until, group)
    try:
        while not sim.done:
            sim.step_second()
    except KeyboardInterrupt:
        return None
    return sim.result()


def baseline_sim(sc: Scenario, until: float, group: tuple[int, ...]) -> Simulation:
    """The baseline's simulation of the VMs of `group`, up to `until` simulated seconds."""
    bs = baseline_scenario(sc, group)
    return Simulation(bs.model_copy(update={"duration": max(until, bs.tick)}),
                      policies=[v.guest.policy for v in sc.vm])


def run_groups(sc: Scenario, until: float, groups: list[tuple[int, ...]]) -> Result | None:
    """The baseline of these groups, one simulation after another, merged."""
    parts = []
    for g in groups:
        part = baseline_run(sc, until, g)
        if part is None:
            return None
        parts.append(part)
    return merge_baselines(sc, parts)


def stays_high(bs: Scenario) -> bool:
    """Whether a (baseline) host can never leave the high state: its free memory with every
    VM's memory and overhead allocated stays at or above every state's threshold. A scenario
    may set thresholds so high (the seed preset's percentages go up to 100) that even the
    ample host reclaims, and its VMs then share memory by their targets."""
    th = states.Thresholds.build(bs.hypervisor, bs.host.memory)
    used = sum(pages(v.memory) + pages(overhead_bytes(v)) for v in bs.vm)
    free = pages(bs.host.memory - bs.host.vmkernel) - used
    return all(t is None or free >= t for t in th.enter[1:])


def separable(sc: Scenario) -> bool:
    """Whether the baseline's VMs run independently of each other, so that it can run as
    groups of VMs, each on its own host: on an ample host that stays in the high state the
    hypervisor reclaims nothing, except from a VM over its limit, and VMs over their limits
    would share the host's swap device."""
    return (all(v.limit is None or pages(v.limit) >= pages(v.memory) for v in sc.vm)
            and stays_high(baseline_scenario(sc)))


def expected_refs(sc: Scenario, vm: VMConfig) -> float:
    """References the VM makes when unconstrained, roughly: for balancing baseline groups."""
    cpus = [Workload(p).cpu for p in vm.process]
    scale = min(1.0, vm.vcpus / (sum(cpus) or 1.0))
    total = 0.0
    for p, cpu in zip(vm.process, cpus, strict=True):
        start = max(p.start, vm.start)
        stop = sc.duration if p.stop is None else min(p.stop, sc.duration)
        total += p.rate * cpu * scale * max(0.0, stop - start)
    return total


T = TypeVar("T")


def _deal(items: Iterable[T], work: Callable[[T], float], n: int) -> list[list[T]]:
    """Items into up to `n` non-empty bins of about equal work: largest first, each to the
    lightest bin so far (ties: the first)."""
    items = list(items)
    bins: list[list[T]] = [[] for _ in range(min(n, len(items)))]
    load = [0.0] * len(bins)
    for x in sorted(items, key=lambda x: -work(x)):
        k = load.index(min(load))
        bins[k].append(x)
        load[k] += work(x)
    return [b for b in bins if b]


def baseline_groups(sc: Scenario, n: int,
                    among: Iterable[int] | None = None) -> list[tuple[int, ...]]:
    """Up to `n` groups of VM indices (of those in `among`; default all) with about equal
    expected references (largest first, each to the lightest group), or one group when the
    VMs are not separable or a group's own host could leave the high state."""
    idx = tuple(sorted(range(len(sc.vm)) if among is None else among))
    whole = [idx]
    if not separable(sc):
        if len(idx) < len(sc.vm):  # their baselines would miss the others' effect on them
            raise ValueError("a baseline of some of the VMs needs VMs that run apart")
        return whole
    if n <= 1 or len(idx) < 2:
        return whole
    work = {i: expected_refs(sc, sc.vm[i]) for i in idx}
    out = [tuple(sorted(g)) for g in _deal(idx, work.__getitem__, n)]
    if not all(stays_high(baseline_scenario(sc, g)) for g in out):
        return whole
    return out


# What a run reads of its baseline (metrics.recorder): each VM's references per second.
BASE_COLUMNS = ["time_s", "vm", *basecache.COLUMNS[1:]]


def merge_baselines(sc: Scenario, parts: list[Result]) -> Result:
    """One baseline Result from its groups' runs. Only `vms` is meaningful (and of it, used:
    BASE_COLUMNS); each group ran on a host of its own."""
    import pandas as pd

    if len(parts) == 1:
        return parts[0]
    order = {v.name: i for i, v in enumerate(sc.vm)}
    vms = pd.concat([p.vms for p in parts], ignore_index=True)
    vms = vms.sort_values(["time_s", "vm"], key=lambda c: c.map(order) if c.name == "vm" else c,
                          kind="stable", ignore_index=True)
    summary = {"scenario": parts[0].summary.get("scenario"),
               "baseline_groups": [sorted(p.vms["vm"].unique().tolist()) for p in parts]}
    return Result(host=parts[0].host.iloc[0:0], vms=vms, summary=summary)


def worthwhile(sc: Scenario) -> bool:
    """Whether the baseline should run beside the scenario: a process that may fork a helper
    on a second core (`_fork.can_fork`: not a pool's daemonic worker, no other thread), and
    memory for a second simulation (about 40 B a simulated page)."""
    if not _fork.can_fork():
        return False
    bs = baseline_scenario(sc)
    need = 40 * (pages(bs.host.memory) + sum(pages(v.memory) for v in bs.vm))
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return True
    return need < avail // 2


@dataclass(frozen=True)
class GroupJob:
    """A baseline group for the runner: the scenario (as its fields), how far, which VMs."""

    scenario: dict[str, Any]
    until: float
    group: tuple[int, ...]


def run_group(job: GroupJob) -> pd.DataFrame:
    """A worker's side of a GroupJob: the group's baseline rows (BASE_COLUMNS)."""
    sc = Scenario.model_validate(job.scenario)
    part = baseline_run(sc, job.until, job.group)
    if part is None:
        raise KeyboardInterrupt
    return part.vms[BASE_COLUMNS]


def baseline_spec(sc: Scenario, i: int) -> str:
    """What VM i's whole baseline depends on, as JSON (basecache's key): its baseline scenario
    alone (its VM, whose name names its random streams, seed, tick, duration, hypervisor and
    costs). Not the scenario's name, the other VMs, the VM's place among them, or the host's
    memory, vmkernel and swap device: an ample host that stays high (cacheable) swaps nothing,
    whatever its size."""
    bs = baseline_scenario(sc, (i,))
    d = bs.model_dump(mode="json", exclude={"name", "description"})
    d["host"] = bs.host.model_dump(mode="json", exclude={"memory", "vmkernel", "swap_device"})
    return json.dumps({"scenario": d}, sort_keys=True)


def cacheable(sc: Scenario) -> tuple[int, ...]:
    """The VMs whose baselines can be kept and reused (basecache). None unless each VM's
    baseline is its own alone: separable, and each VM's own ample host stays high. Of those,
    not a VM that replays a trace: the key names the file, not what it holds."""
    if not (sc.baseline and separable(sc)
            and all(stays_high(baseline_scenario(sc, (i,))) for i in range(len(sc.vm)))):
        return ()
    return tuple(i for i, v in enumerate(sc.vm)
                 if not any(p.workload == "trace" for p in v.process))


def whole_run(sc: Scenario, until: float) -> bool:
    """Whether a run that reached `until` simulated seconds ran the scenario's whole duration."""
    return until >= sc.duration - sc.tick / 2


class Baseline:
    """A scenario's baseline for slowdown: the VMs whose baselines the cache holds from it
    (basecache), the others computed in groups (baseline_groups) beside the scenario's run,
    as jobs of the project's runner (vmemsim.runner: worker processes, one core's worth fewer
    than the machine's), or after it in this process.

    Only the groups with a VM the hypervisor acted on are needed: a VM it never acted on has
    its own run as its baseline (Simulation.untouched). So while the scenario runs, groups are
    handed to the runner one per free worker, those of VMs the hypervisor has acted on first
    (each simulated second, `watch`); at the end the groups not needed are cancelled, or
    stopped where they run, and the needed ones not done are run: on the workers, and here.
    A worker that dies fails its group's future; that group runs here."""

    def __init__(self, sc: Scenario, parallel: bool | None = None,
                 cache: bool = True) -> None:
        self.scenario = sc
        self.cached: dict[int, pd.DataFrame] = {}  # VM index -> its rows
        # The VMs whose baselines are looked up, and stored once computed.
        self.keep = cacheable(sc) if cache and basecache.folder() is not None else ()
        for i in self.keep:
            rows = basecache.get(baseline_spec(sc, i), sc.vm[i].name)
            if rows is not None:
                self.cached[i] = rows
        self.missing = tuple(i for i in range(len(sc.vm)) if i not in self.cached)
        self.from_run: list[str] = []  # VMs whose baselines are their own runs (result)
        self.runner: Any = None
        self.groups: list[tuple[int, ...]] = []
        self.urgent: set[tuple[int, ...]] = set()
        self.running: dict[tuple[int, ...], Any] = {}  # group -> its future
        self.got: dict[tuple[int, ...], pd.DataFrame] = {}
        if not (sc.baseline and self.missing):
            return
        if parallel is None:
            parallel = worthwhile(sc)
        if not parallel:
            return
        from vmemsim.runner import Runner

        self.groups = sorted(baseline_groups(sc, SERIAL_GROUPS, self.missing),
                             key=lambda g: -sum(expected_refs(sc, sc.vm[i]) for i in g))
        self.runner = Runner(workers=max(1, _fork.cores() - 1), method="fork")
        self._job = functools.partial(GroupJob, sc.model_dump(mode="json"), sc.duration)
        self._feed()

    @property
    def cached_names(self) -> list[str]:
        return [self.scenario.vm[i].name for i in sorted(self.cached)]

    def _feed(self) -> None:
        """Collect what finished; hand the next groups to free workers, urgent ones first,
        then the largest expected work (baseline_groups' order)."""
        for g, f in list(self.running.items()):
            if f.done():
                del self.running[g]
                if f.exception() is None:
                    self.got[g] = f.result()
        free = self.runner.backend.workers - len(self.running)
        waiting = [g for g in self.groups if g not in self.running and g not in self.got]
        waiting.sort(key=lambda g: g not in self.urgent)  # stable: urgent first
        for g in waiting[:max(0, free)]:
            self.running[g] = self.runner.submit(run_group, self._job(g))

    def watch(self, sim: Simulation) -> None:
        """Follow the scenario's run: each simulated second, the groups of the VMs the
        hypervisor has acted on become urgent, and free workers get the next groups."""
        if self.runner is not None:
            sim.watchers.append(self._observe)

    def _observe(self, sim: Simulation) -> None:
        for g in self.groups:
            if g not in self.urgent and any(sim.vms[i].host_acted
                                            or sim.vms[i].arrays.vt[T_BLOCKED] > 0
                                            for i in g):
                self.urgent.add(g)
        self._feed()

    def result(self, until: float, stopped_early: bool = False,
               run: Simulation | None = None, ran: Result | None = None) -> Result | None:
        """The baseline up to `until` simulated seconds (None if interrupted). `run`: the
        scenario's simulation; the VMs it leaves untouched (Simulation.untouched) have their
        own runs as baselines, not run again (`ran`: its result, if already built). The cache
        and the workers hold whole runs: for a run that stopped early, the baselines it needs
        run here, up to `until`."""
        import pandas as pd

        sc = self.scenario
        whole = not stopped_early and whole_run(sc, until)
        if not whole:  # the cache and the workers hold whole runs: what is needed runs here
            self.cancel()
            self.cached = {}
            self.missing = tuple(range(len(sc.vm)))
        own = set(run.untouched()) & set(self.missing) if run is not None else set()
        rows: dict[int, pd.DataFrame] = dict(self.cached)  # VM index -> its baseline's rows
        if self.missing:
            needed = tuple(i for i in self.missing if i not in own)
            parts = self._needed(until, needed) if needed else []
            if parts is None:
                return None  # interrupted
            base = merge_baselines(sc, parts) if parts else None
            computed = set() if base is None else set(base.vms["vm"])
            mine = None
            if own and run is not None:
                mine = (ran if ran is not None else run.result()).vms
            for i in self.missing:
                name = sc.vm[i].name
                if name in computed:
                    assert base is not None
                    rows[i] = base.vms[base.vms["vm"] == name][BASE_COLUMNS]
                else:
                    assert mine is not None and i in own
                    rows[i] = mine[mine["vm"] == name][BASE_COLUMNS]
                if whole and i in self.keep:
                    basecache.put(baseline_spec(sc, i), rows[i])
            self.from_run = [sc.vm[i].name for i in sorted(own) if sc.vm[i].name not in computed]
        parts = [Result(host=pd.DataFrame(), vms=rows[i], summary={}) for i in sorted(rows)]
        merged = merge_baselines(sc, parts)
        merged.summary["from_cache"] = self.cached_names
        merged.summary["from_run"] = list(self.from_run)
        return merged

    def _needed(self, until: float, needed: tuple[int, ...]) -> list[Result] | None:
        """The baselines of these VMs' groups: from the workers where they ran or run, the
        rest run here (None: interrupted)."""
        import pandas as pd

        sc = self.scenario
        if self.runner is None:
            part = run_groups(sc, until, baseline_groups(sc, SERIAL_GROUPS, needed))
            return None if part is None else [part]
        want = [g for g in self.groups if set(g) & set(needed)]
        try:
            for g, f in list(self.running.items()):  # not needed: stop it
                if g not in want:
                    self.runner.cancel(f)
                    del self.running[g]
            self._feed_only(want)
            parts: list[Result] = []
            for g in want:
                f = self.running.get(g)
                if g not in self.got and f is not None:
                    try:
                        self.got[g] = f.result()
                    except Exception as exc:  # noqa: BLE001 - a lost worker: run it here
                        warnings.warn(f"baseline group {[sc.vm[i].name for i in g]}: "
                                      f"{type(exc).__name__}; running it here", stacklevel=3)
                if g not in self.got:
                    part = baseline_run(sc, until, g)
                    if part is None:
                        return None
                    self.got[g] = part.vms[BASE_COLUMNS]
                parts.append(Result(host=pd.DataFrame(), vms=self.got[g], summary={}))
            return parts
        except KeyboardInterrupt:
            return None
        finally:
            self.cancel()

    def _feed_only(self, want: list[tuple[int, ...]]) -> None:
        """Hand the needed groups not started to the workers, but keep the last one for this
        process, whose core the scenario no longer uses."""
        start = [g for g in want if g not in self.running and g not in self.got]
        for g in start[:-1]:
            self.running[g] = self.runner.submit(run_group, self._job(g))

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.backend.abort(list(self.running.values()))
            self.running = {}
            self.runner.close()
            self.runner = None


def simulate(scenario: Scenario, *, progress: Any = None, check: bool | int = False,
             parallel: bool | None = None, cache: bool = True) -> Result:
    """Run a scenario and its unconstrained baseline for slowdown; return the Result.

    The baseline runs in a second process at the same time when the machine has a second core
    and the memory for it (parallel=None), always (True) or after the scenario (False); the
    results are identical. VMs whose baselines were kept by an earlier run take them from the
    cache (vmemsim.basecache; cache=False: neither read nor write it), with the same results.
    """
    baseline = Baseline(scenario, parallel, cache)
    try:
        sim = Simulation(scenario, check=check)
        baseline.watch(sim)
        result = sim.run(progress)
        if scenario.baseline and sim.time_s > 0:
            base = baseline.result(sim.time_s, stopped_early=sim.interrupted, run=sim,
                                   ran=result)
            if base is not None:
                result = sim.result(base=base)
    finally:
        baseline.cancel()
    return result
