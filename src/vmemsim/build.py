"""From a scenario to the simulation's state: every VM's arrays (one host-wide pool,
kernels.state), every guest thread's row (one table), the scheduler's tables, and the VM
records the control plane works on (`VM`). Also the sizes ESX derives from a VM's
configuration (overhead, guest kernel) and the named random streams.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmemsim.config import events
from vmemsim.config.schema import OS_PRESETS, HypervisorConfig, Scenario, VMConfig
from vmemsim.config.units import MIB, mb, pages
from vmemsim.guest.balloon_driver import BalloonDriver
from vmemsim.guest.policies import policy_id
from vmemsim.hypervisor import sampling
from vmemsim.hypervisor import sharing as tps
from vmemsim.kernels import hostmm, loops, mmu, refpath
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BALLOON_EVICT,
    C_BALLOON_FAIL,
    C_COW,
    C_DOUBLE,
    C_FILE_IN,
    C_FILE_OUT,
    C_GEVICT,
    C_GFAULT,
    C_GSWIN,
    C_GSWOUT,
    C_GSWOUT_IOS,
    C_HV_FIRST,
    C_HV_SAMPLE,
    C_LP_BROKEN,
    C_OOM,
    C_OS_SEED,
    C_REFS,
    C_SALT,
    C_SAMPLE_TOUCHED,
    C_SCAN_STRIDE,
    C_SCANNED,
    C_SHARE_OPS,
    C_SHARED,
    C_SWIN,
    C_SWOUT,
    C_SWOUT_IOS,
    C_UNZIP,
    C_ZIP,
    C_ZIP_MPNS,
    HC_SHARED_MPNS,
    HC_SHARED_REFS,
    K_BALLOON_PAGE,
    K_COMPRESS,
    K_COW,
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
    PP_ALPHA,
    PP_APP,
    PP_BASE,
    PP_FILE,
    PP_HOT_FRAC,
    PP_HOT_PROB,
    PP_KPAGES,
    PP_KREF,
    PP_SHARE,
    PP_SIZE,
    PP_TOFF,
    PP_WRITE,
    PS_PENDING,
    PS_VM,
    T_BLOCKED,
)
from vmemsim.kernels.rng import name_key, new_state
from vmemsim.kernels.state import Threads, VMArrays, VMSpec, new_pool
from vmemsim.kernels.timeline import Reclaim, Sched, new_reclaim
from vmemsim.workloads.generators import Workload, WorkloadShape
from vmemsim.workloads.trace import WINDOW


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
    spec: VMSpec  # what its arrays were made from (power-off makes them so again)
    start: float  # when it powers on: its own start, or inf until an event starts it
    powered_on: bool = False
    gone: bool = False  # powered off or migrated out by an event: it never runs again
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
    host_acted: bool = False  # set by Hypervisor.act only: see acted_on
    cost: np.ndarray = field(default_factory=lambda: np.zeros(N_COSTS))  # host's + its devices
    feeds: dict[int, Any] = field(default_factory=dict)  # process index -> TraceFeed
    exited: set[int] = field(default_factory=set)  # processes that stopped and freed memory
    zkey: dict[int, tuple[int, float]] = field(default_factory=dict)  # what ztab rows hold
    shapes: dict[int, WorkloadShape] = field(default_factory=dict)  # what pp rows hold
    ahead: dict[int, int] = field(default_factory=dict)  # ... and their PP_AHEAD
    speed: dict[int, float] = field(default_factory=dict)  # ... and their PP_SPEED
    hc: np.ndarray | None = None  # the host's counters (TPS: shared pages)

    @property
    def consumed(self) -> float:
        """Machine pages charged to the VM: backed pages plus compression-cache pages, and
        (TPS) its part of the shared pages: a shared page counts once, across the VMs that
        share it (each VM's shared pages times common / shared, host-wide)."""
        vc = self.arrays.vc
        own = int(vc[C_BACKED] + vc[C_ZIP_MPNS])
        if vc[C_SHARED] == 0 or self.hc is None:
            return own
        return own + float(vc[C_SHARED]) * float(self.hc[HC_SHARED_MPNS]) / float(
            self.hc[HC_SHARED_REFS])

    @property
    def over_limit(self) -> bool:
        """Above its limit: ESX reclaims from such a VM in every memory state."""
        return self.consumed > self.max_pages

    @property
    def acted_on(self) -> bool:
        """Whether the host has done anything to the VM that an ample host would not, so
        that its run may differ from its baseline: a mechanism of the hypervisor acted
        (every one marks it through Hypervisor.act), or its vCPUs were blocked (by the
        hypervisor, or stalled on a host with no free machine page)."""
        return self.host_acted or self.arrays.vt[T_BLOCKED] > 0


# Counters that count what happened (the recorder takes their differences): a power-off keeps
# them; the others say what the VM holds now, and start again from nothing.
TOTALS = (C_REFS, C_GFAULT, C_HV_FIRST, C_HV_SAMPLE, C_SWIN, C_SWOUT, C_ZIP, C_UNZIP, C_GSWIN,
          C_GSWOUT, C_DOUBLE, C_OOM, C_SAMPLE_TOUCHED, C_BALLOON_FAIL, C_SWOUT_IOS, C_GEVICT,
          C_BALLOON_EVICT, C_GSWOUT_IOS, C_FILE_IN, C_FILE_OUT, C_COW, C_LP_BROKEN, C_SCANNED,
          C_SHARE_OPS,
          # ... and the VM's TPS settings (hypervisor.sharing sets them once)
          C_SALT, C_OS_SEED, C_SCAN_STRIDE)


def reset_vm(v: VM) -> None:
    """VM v's arrays as they were built (kernels.state.new_pool), its totals kept: what a
    power-off leaves once the host has taken back its machine pages (hostmm.release_vm).
    Its random stream goes on where it was."""
    _, (fresh,) = new_pool([v.spec])
    a = v.arrays
    for name in ("pt", "frame_vpn", "fslot", "gswap_bits", "pmap", "pstate", "hswap_bits",
                 "zowner", "zlinks", "zmpns", "sample", "wm", "content", "cid"):
        getattr(a, name)[:] = getattr(fresh, name)
    a.pol.links[:] = fresh.pol.links
    a.pol.aux[:] = fresh.pol.aux
    a.pol.meta[:] = fresh.pol.meta
    keep = a.vc[list(TOTALS)].copy()
    a.vc[:] = fresh.vc
    a.vc[list(TOTALS)] = keep


# The cost entries that are CPU work, done at a thread's speed (the others are device times).
CPU_COSTS = [K_GUEST_FAULT, K_HV_FIRST, K_HV_SAMPLE, K_DECOMPRESS, K_BALLOON_PAGE, K_COW,
             *mmu.CPU_COSTS]


def page_bounds(cfg: VMConfig, n_gppn: int) -> tuple[int, int]:
    """The VM's least and most machine pages: its reservation and its limit (or its size)."""
    most = n_gppn if cfg.limit is None else min(n_gppn, pages(cfg.limit))
    return min(pages(cfg.reservation), most), most


def driver_settings(cfg: VMConfig, hv: HypervisorConfig, n_gppn: int) -> dict[str, Any]:
    """The balloon driver's settings from the VM's and the hypervisor's configuration."""
    return {"installed": cfg.tools and hv.balloon, "rate_min": hv.balloon_rate_min,
            "rate_max": hv.balloon_rate_max, "nopressure": hv.balloon_rate_nopressure,
            "max_pages": int(n_gppn * hv.ctl_max_pct / 100)}


def costs(sc: Scenario) -> np.ndarray:
    """The host's cost of each kind of work (kernels.layout K_*), from the scenario's costs."""
    c = sc.costs
    cost = np.zeros(N_COSTS)
    cost[K_GUEST_FAULT] = c.guest_fault
    cost[K_HV_FIRST] = c.hv_first_touch
    cost[K_HV_SAMPLE] = c.hv_sample_fault
    cost[K_DECOMPRESS] = c.decompress
    cost[K_COMPRESS] = c.compress
    cost[K_BALLOON_PAGE] = c.balloon_page
    cost[K_COW] = c.cow_fault  # TPS: a write to a shared page copies it
    cost[K_HDEV_LAT] = sc.host.swap_device.latency
    cost[K_HDEV_SVC] = 1.0 / sc.host.swap_device.iops
    return cost


@dataclass
class Built:
    """What `build` makes of a scenario."""

    pool: Any  # kernels.state.VMPool
    th: Threads
    vms: list[VM]
    canon: list[VM]  # the VMs by name: the order the control plane visits them in
    sched: Sched
    reclaim: Reclaim
    uses: tuple  # the guest policies the run compiles (loops.policies_used)


def build(sc: Scenario, cost: np.ndarray, policies: Iterable[str] = ()) -> Built:
    """Every VM's arrays (one pool) and every thread's row (one table). `policies`: guest
    policies to compile the timeline for besides the scenario's."""
    hv = sc.hypervisor
    steps = events.plan(sc)  # raises EventError (one line) for an event that cannot run
    arrive = events.arriving(sc)
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
            host_swap_pages=max(0, n_gppn - pages(events.lowest_reservation(sc, steps,
                                                                              cfg.name))),
            zip_slots=zip_slots,
            sample_size=hv.sample_size, watermarks=wm, swap_cluster=g.swap_cluster,
            compressible=hostmm.fit_share(cfg.compressible, hv.zip_threshold),
            zip_per_page=per,
            content_seed=int(hseq.spawn(1)[0].generate_state(1, dtype=np.uint64)[0]),
            insert_referenced=g.clock_insert_referenced, rng=new_state(hseq),
            policy_id=policy_id(g.policy)))
        parts.append((n_gppn, kernel, workloads, zip_slots))
    pool, views = new_pool(specs)
    n_thr = sum(threads_of(w) for _, _, ws, _ in parts for w in ws)
    traced = sum(1 for _, _, ws, _ in parts for w in ws if w.cfg.trace is not None)
    th = Threads(
        pp=np.zeros((n_thr, N_PP)), ps=np.zeros((n_thr, N_PS), dtype=np.int64),
        wrng=np.zeros((n_thr, N_WRNG), dtype=np.uint64),
        ztab=np.ones((n_thr, refpath.ZIPF_KNOTS + 1)),
        tbuf=np.zeros(max(1, WINDOW * traced), dtype=np.int64),
        cost=np.zeros((n_thr, N_COSTS)), tlb=mmu.new_tlb(n_thr))
    th.ps[:, PS_PENDING] = -1
    vms: list[VM] = []
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
                th.wrng[r, :4] = new_state(stream(sc.seed, cfg.name, "process",
                                                       w.cfg.name, k))
                pp = th.pp[r]
                pp[PP_BASE] = base
                pp[PP_SIZE] = w.size
                pp[PP_ALPHA] = w.cfg.alpha
                pp[PP_HOT_FRAC] = w.cfg.hot_frac
                pp[PP_HOT_PROB] = w.cfg.hot_prob
                pp[PP_WRITE] = w.cfg.write_frac
                pp[PP_FILE] = w.cfg.file_frac
                pp[PP_SHARE] = w.cfg.shared_frac  # TPS: the application's shared pages
                pp[PP_APP] = tps.app_seed(w.cfg.name)
                # A replayed trace is the whole reference stream: no kernel references
                # are added to it.
                if w.cfg.trace is None and k_active > 0:
                    pp[PP_KREF] = g.kernel_refs
                    pp[PP_KPAGES] = k_active
                th.ps[r, PS_VM] = i
                mmu.thread_row(pp, cfg.mmu, g.large_pages, hv.large_pages,
                               w.cfg.pt_updates, w.cfg.ctx_switches, w.cfg.rate)
                ranks.append((cfg.name, w.cfg.name, k))
            base += w.size
        driver = BalloonDriver(start_time=math.inf, **driver_settings(cfg, hv, n_gppn))
        min_pages, max_pages = page_bounds(cfg, n_gppn)
        vm = VM(idx=i, cfg=cfg, arrays=arrays, workloads=workloads, threads=threads,
                driver=driver, estimate=sampling.ActiveEstimate(hv.fast_gain, hv.slow_gain),
                n_gppn=n_gppn, kernel_pages=kernel,
                overhead_pages=pages(overhead_bytes(cfg)), zip_slots=zip_slots,
                shares=float(cfg.share_count()),
                min_pages=min_pages, max_pages=max_pages,
                proc_order=sorted(range(len(workloads)),
                                  key=lambda j, ws=workloads: ws[j].cfg.name),
                spec=specs[i], start=math.inf if cfg.name in arrive else cfg.start)
        vm.target = float(max_pages)
        vm.cost = cost.copy()
        vm.cost[K_GDEV_LAT] = cfg.guest.swap_device.latency
        vm.cost[K_GDEV_SVC] = 1.0 / cfg.guest.swap_device.iops
        mmu.vm_costs(vm.cost, cfg.mmu, sc.costs)
        for j, w in enumerate(workloads):
            if w.cfg.trace is not None:
                from vmemsim.workloads.trace import TraceFeed

                vm.feeds[j] = TraceFeed(w.cfg.trace, w.cfg.trace_format, w.size,
                                        w.cfg.loop, pace=w.cfg.pace)
                th.pp[threads[j][0], PP_TOFF] = tslot * WINDOW
                tslot += 1
        vms.append(vm)
    # The control plane visits VMs, and the timeline breaks ties, in the order of their
    # names, not their places in the file: no VM is favoured by where it stands.
    canon = sorted(vms, key=lambda v: v.cfg.name)
    n_vm = len(vms)
    order = sorted(range(n_thr), key=ranks.__getitem__)
    rank = np.empty(n_thr + n_vm, dtype=np.int64)
    rank[order] = np.arange(n_thr)
    rank[[n_thr + v.idx for v in canon]] = n_thr + np.arange(n_vm)
    vrow = np.zeros(n_vm + 1, dtype=np.int64)
    vrow[1:] = np.cumsum([sum(len(t) for t in v.threads) for v in vms])
    for i in range(n_vm):
        mmu.vm_rows(th.pp, range(int(vrow[i]), int(vrow[i + 1])))
    sched = Sched(heap=np.zeros(n_thr + n_vm, dtype=np.int64),
                  key=np.zeros(n_thr + n_vm), tie=np.zeros(n_thr + n_vm, np.int64),
                  rank=rank, live=np.zeros(n_thr + n_vm, np.int64), vrow=vrow)
    reclaim = new_reclaim(n_vm, sc.hypervisor.swap_inflight)
    uses = loops.policies_used({policy_id(p) for p in
                                  {*policies, *(v.guest.policy for v in sc.vm)}})
    return Built(pool=pool, th=th, vms=vms, canon=canon, sched=sched, reclaim=reclaim,
                 uses=uses)
