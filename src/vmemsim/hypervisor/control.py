"""The hypervisor's control plane: what ESX decides each tick, on its own cadences.

`Hypervisor.begin_tick` runs before the tick's references (kernels.timeline): it powers VMs
on, updates the memory state from free machine memory (states), sets each VM's allocation
target every balance period and at once when the state worsens (allocation: shares and the
idle memory tax), drives the balloon drivers every poll (balloon, guest.balloon_driver), sets
each VM's host reclamation (compression and swapping, done during the tick by the VM's
swapper agent in kernels.timeline) and ends and starts active-memory sampling periods
(sampling). `blocks` says whether a VM's vCPUs are held this tick. The per-page work is in
kernels (hostmm, guestmm); the policies (targets, thresholds) are small functions of their
own modules. Nothing here walks every page.

Every mechanism that does anything to a VM marks it through `act`: a VM never marked
(VM.acted_on) has its own run as its baseline, so a mechanism that forgot would make its
VMs' slowdown 1.0 (tests/test_engine.py checks untouched VMs against run baselines).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vmemsim.build import VM, AdmissionError, reset_vm
from vmemsim.config.schema import Scenario
from vmemsim.config.units import mb, pages
from vmemsim.hypervisor import allocation, states
from vmemsim.hypervisor.balloon import balloon_target, swap_target
from vmemsim.hypervisor.sampling import ActiveEstimate
from vmemsim.kernels import guestmm, hostmm
from vmemsim.kernels import sharing as sharing_kernels
from vmemsim.kernels.layout import (
    C_BALLOON_N,
    C_BOOT_CURSOR,
    C_SAMPLE_TOUCHED,
    C_TOUCHED,
    H_BACKED,
    H_MASK,
    H_UNBACKED,
    HC_MFREE_N,
    HC_SCARCE,
    PP_CARRY_CPU,
    PP_CARRY_RUN,
    T_BLOCKED,
)
from vmemsim.kernels.state import HostArrays, Threads
from vmemsim.kernels.timeline import RECLAIM_SWAP, RECLAIM_ZIP, Reclaim

# Called with (time, old state, new state) at each transition (metrics.recorder).
OnTransition = Callable[[float, int, int], None]


def _refused(v: VM, min_pages: float, left: float) -> str:
    """Why admission control refuses VM v a reservation of `min_pages` with `left` machine
    pages unreserved, or ''."""
    if min_pages + v.overhead_pages <= left:
        return ""
    return (f"reservation {mb(min_pages):.0f} MB + overhead {mb(v.overhead_pages):.0f} MB "
            f"exceeds the host's unreserved memory ({mb(max(0, left)):.0f} MB left)")


class Hypervisor:
    """ESX's memory management for one host: memory state, targets, balloon, reclamation,
    sampling and blocking, over the VMs in `vms` (visited by name: `canon` order)."""

    def __init__(self, sc: Scenario, host: HostArrays, vms: list[VM], th: Threads,
                 reclaim: Reclaim, tick: float) -> None:
        self.cfg = sc.hypervisor
        self.host = host
        self.vms = vms  # in the order of their names
        self.th = th
        self.reclaim = reclaim
        self.dt = tick
        self.n_mpn = pages(sc.host.memory - sc.host.vmkernel)
        self.host_bytes = sc.host.memory
        self.set_thresholds()
        self.state = states.HIGH
        self.tick_state = states.STATES[states.HIGH]  # the state the current tick runs in
        self.acts: frozenset[str] = frozenset()
        # The first targets come one balance period in: at power-on nothing is consumed yet,
        # and demand-based targets would read as a few MB.
        self.last_targets_at = 0.0
        self.on_transition: list[OnTransition] = []
        self.sharing: Any = None  # hypervisor.sharing.Sharing, set by the engine

    def set_thresholds(self) -> None:
        """The memory states' thresholds from the settings (at the start, and when an event
        changes them)."""
        self.thresholds = states.Thresholds.build(self.cfg, self.host_bytes)
        # Below this much free memory, who takes the last machine pages must follow time
        # (kernels.refpath._ordered): from the soft state down.
        self.host.hc[HC_SCARCE] = int(self.thresholds.enter[states.SOFT] or 0)

    @property
    def free_pages(self) -> int:
        return int(self.host.hc[HC_MFREE_N])

    @staticmethod
    def act(v: VM) -> None:
        """Mark that the hypervisor did something to VM v (VM.acted_on): every mechanism
        calls this, even one that takes nothing if it drew from the VM's random stream."""
        v.host_acted = True

    # ---- power-on ---------------------------------------------------------------------
    def admit(self) -> None:
        """ESX admits a VM only if its reservation plus overhead fits in unreserved memory."""
        unreserved = self.n_mpn - self.thresholds.minfree_pages
        scheduled = [v for v in self.vms if v.start < math.inf]  # events admit the others
        for vm in sorted(scheduled, key=lambda v: (v.start, v.cfg.name)):
            why = _refused(vm, vm.min_pages, unreserved)
            if why:
                raise AdmissionError(f"vm {vm.cfg.name!r} cannot power on: {why}")
            unreserved -= vm.min_pages + vm.overhead_pages

    def unreserved(self, but: VM | None = None) -> int:
        """Machine pages no VM has reserved (reservation plus overhead) now: those on, and
        those still to start at their own `start` (admitted at the run's start), but `but`."""
        held = sum(v.min_pages + v.overhead_pages for v in self.vms
                   if v is not but and not v.gone and (v.powered_on or v.start < math.inf))
        return self.n_mpn - self.thresholds.minfree_pages - held

    def refusal(self, v: VM, min_pages: int) -> str:
        """Why VM v cannot hold a reservation of `min_pages` (admission control), or ''."""
        return _refused(v, min_pages, self.unreserved(but=v))

    def power_off(self, v: VM) -> None:
        """The VM powers off or leaves by vMotion: every machine page it holds is freed
        (backing, compression cache, overhead), and its arrays are as before its power-on
        (its guest's frames, swap and balloon, its host swap file); counters that count
        events keep their totals (the recorder takes differences)."""
        self.act(v)
        sharing_kernels.release_shared(v.arrays, self.host)  # TPS: its shared references
        hostmm.release_vm(self.host, v.idx)
        reset_vm(v)
        v.powered_on = False
        v.gone = True
        v.target = v.swtgt = v.debt = 0.0
        v.driver.target = 0
        v.driver.start_time = math.inf  # its driver no longer runs (esxtop's MCTL? = 0)
        v.estimate = ActiveEstimate(self.cfg.fast_gain, self.cfg.slow_gain)
        v.active_true = 0
        v.sampling = False
        self.reclaim.want[v.idx] = 0
        for rows in v.threads:  # nothing carried over, nothing pending
            self.th.pp[rows, PP_CARRY_RUN:PP_CARRY_CPU + 1] = 0.0

    def migrate_in(self, v: VM, now: float) -> int:
        """The VM arrives by vMotion: it powers on with every page of its memory already
        touched, so the host backs them all at once (as far as free machine memory goes:
        the rest is backed on first touch). Returns the pages backed."""
        self.act(v)
        self.power_on(v, now)
        a = v.arrays
        a.vc[C_BOOT_CURSOR] = v.boot_end  # it arrives running: no boot
        was = (a.pstate & H_MASK) == H_UNBACKED
        n = int(hostmm.back_all(a, self.host))
        # TPS: what arrived is the source's data, not zeroes: unique content, except the
        # kernel's OS image (set at power-on). The guest's own writes give pages theirs.
        came = was & ((a.pstate & H_MASK) == H_BACKED) & (a.cid == sharing_kernels.CID_ZERO)
        a.cid[came] = sharing_kernels.CID_UNIQUE
        return n

    def power_on(self, v: VM, now: float) -> None:
        hostmm.overhead_alloc(self.host, v.idx, v.overhead_pages)
        guestmm.kernel_frames(v.arrays, self.host, v.kernel_pages)
        if self.sharing is not None:
            self.sharing.power_on(v)  # TPS: the kernel's frames hold the OS image
        v.boot_end = v.n_gppn if v.cfg.guest.boot_touch else v.kernel_pages
        v.powered_on = True
        v.next_sample = now

    # ---- each tick ----------------------------------------------------------------------
    def begin_tick(self, now: float, tick: int) -> None:
        """The control plane's work before tick `tick` (at time `now`) runs."""
        for v in self.vms:
            if not v.powered_on and not v.gone and now >= v.start:
                self.power_on(v, now)
        self.update_state(now)
        self.tick_state = states.STATES[self.state]
        if now - self.last_targets_at >= self.cfg.balance_period - 1e-9:
            self.set_targets(now)
        self.acts = acts = self.thresholds.actions(self.state)
        if tick % max(1, int(round(self.cfg.balloon_poll / self.dt))) == 0:
            self.balloon(now, acts)
        self.host_reclaim(now, acts)
        self.sampling(now)

    def blocks(self, v: VM) -> bool:
        """Whether VM v's vCPUs are held this tick (the low state blocks a VM above its
        target until reclamation brings it under); if so its time is counted blocked."""
        v.blocked_now = (self.cfg.blocking and "block" in self.acts
                         and v.consumed > v.target)
        if v.blocked_now:
            self.act(v)
            v.arrays.vt[T_BLOCKED] += self.dt * v.cfg.vcpus
            for rows in v.threads:  # what its threads carried over is dropped
                self.th.pp[rows, PP_CARRY_RUN:PP_CARRY_CPU + 1] = 0.0
        return v.blocked_now

    def update_state(self, now: float) -> None:
        new = self.thresholds.next_state(self.state, self.free_pages)
        if new != self.state:
            for f in self.on_transition:
                f(now, self.state, new)
            worse = new > self.state
            self.state = new
            if worse:
                self.set_targets(now)

    def set_targets(self, now: float) -> None:
        """Each powered-on VM's allocation target: shares with the idle memory tax over the
        memory left once overheads and the free-memory goal are set aside."""
        hv = self.cfg
        on = [v for v in self.vms if v.powered_on]
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
        self.last_targets_at = now

    def balloon(self, now: float, acts: frozenset[str]) -> None:
        """Each driver's poll: a new balloon target; inflate in the states that balloon (or
        above the VM's limit, in any state), deflate whenever the target falls below it."""
        for v in self.vms:
            if not v.powered_on:
                continue
            d = v.driver
            size = int(v.arrays.vc[C_BALLOON_N])
            d.target = int(balloon_target(size, v.consumed, v.target, d.max_pages))
            over_limit = v.over_limit
            if "balloon" not in acts and not over_limit:
                d.target = min(d.target, size)  # outside balloon states it may only deflate
            running = d.running(now)
            v.ballooning_possible = running and d.target < d.max_pages
            if not running:
                d.target = size if size else 0
                continue
            d.poll()
            if d.target > size and ("balloon" in acts or over_limit):
                self.act(v)
                _, _, spent, failed = d.inflate(d.target - size,
                                                functools.partial(self._inflate, v, now))
                v.debt += spent
                if failed:
                    v.ballooning_possible = False
            elif d.target < size:
                self.act(v)
                guestmm.balloon_deflate(v.arrays, min(size - d.target, d.deflate_rate()))

    def _inflate(self, v: VM, now: float, n: int, can_sleep: bool) -> tuple[int, int, float]:
        """The balloon driver's allocation of n pages in VM v (BalloonDriver.inflate)."""
        got, ev, spent = guestmm.balloon_inflate(v.arrays, self.host, v.arrays.pol, n,
                                                 can_sleep, now, v.cost)
        return int(got), int(ev), float(spent)

    def host_reclaim(self, now: float, acts: frozenset[str]) -> None:
        """Set each VM's swapper's work for this tick (kernels.timeline does it).

        The swap target is the VM's excess over its target that ballooning will not take
        back in time: in a state where the balloon works and the driver can inflate, what
        its next poll may inflate by (BalloonDriver.next_rate) is left to it. Compression
        comes first whenever the host swaps: a page chosen for swapping is compressed if it
        fits in the cache's slot, in any state (ESX 4.1+)."""
        hv = self.cfg
        rc = self.reclaim
        rc.want[:] = 0
        for v in self.vms:
            v.swtgt = 0.0
            if not v.powered_on:
                continue
            over_limit = v.over_limit
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
            self.act(v)  # even if it takes nothing: its draws come from the VM's stream
            rc.want[v.idx] = int(v.swtgt)
            rc.mode[v.idx] = ((RECLAIM_ZIP if hv.compression else 0)
                              | (RECLAIM_SWAP if use_swap else 0))

    def sampling(self, now: float) -> None:
        """Active-memory sampling, each VM on its own period from its power-on: at each of
        its boundaries the period's sample updates the estimate and a new one starts. Until
        its first full period a VM counts as fully active (ESX's estimate starts at 100%)."""
        hv = self.cfg
        for v in self.vms:
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

    @property
    def reclaiming(self) -> bool:
        return bool(np.any(self.reclaim.want))
