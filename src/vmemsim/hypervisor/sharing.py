"""Transparent page sharing's control plane: salts, the scan's pace, and when large pages break
(the per-page work is kernels.sharing).

- Scan rate per VM: its pages / `share_scan_time` (Mem.ShareScanTime, 60 min), at most
  `share_rate_max` (Mem.ShareRateMax, 1024 pages/s). In the vsphere preset, from `clear` down
  ESX "actively calls" sharing: the scanner then runs at share_rate_max (our reading of the
  state table; the rate is unconfirmed).
- Salting (Mem.ShareForceSalting, VMware KB 2097593): 0, every VM salt 0 (sharing between all
  VMs); 1, `vm.salt` or 0; 2 (ESX's default since 2015), `vm.salt` or the VM's own.
- Large pages (`large_pages`): each 2 MB region of guest memory is backed by a large page
  until broken, and a large page is never shared. vsphere: they break once free memory is
  below `high_pct` (400%) of minFree, the `high` bound of the state table, and in every state
  below; seed (which has no clear state): from soft down (unconfirmed). The scanner breaks the
  large page of each page it visits there; breaking costs the VM `costs.lpage_break` of vCPU
  time (as debt, like the balloon's work). Only sharing sees large pages: allocation stays
  per 4 KiB page (the 2 MB granularity of demand allocation is not modelled).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vmemsim.config.schema import HypervisorConfig, Scenario, VMConfig
from vmemsim.hypervisor import states
from vmemsim.kernels import mmu
from vmemsim.kernels import sharing as ksharing
from vmemsim.kernels.arrays import big_array
from vmemsim.kernels.jit import bind
from vmemsim.kernels.layout import (
    C_LP_BROKEN,
    C_OS_SEED,
    C_SALT,
    C_SCAN_CURSOR,
    C_SCAN_STRIDE,
    C_SHARE_OPS,
    HC_TABLE_N,
)
from vmemsim.kernels.rng import name_key

if TYPE_CHECKING:
    from vmemsim.build import VM
    from vmemsim.engine import Simulation

SALT_MASK = (1 << 62) - 1


def _key(*names: str | int) -> int:
    return name_key("\x00".join(str(n) for n in names)) & SALT_MASK


def salt_of(hv: HypervisorConfig, vm: VMConfig) -> int:
    """The VM's salt: pages of VMs with equal salts may share."""
    if hv.share_force_salting == 0:
        return 0
    if vm.salt is not None:
        return vm.salt
    return 0 if hv.share_force_salting == 1 else _key("vm", vm.name) | (1 << 61)


def app_seed(process_name: str) -> int:
    """The content seed of an application: processes of the same name run the same one."""
    return _key("app", process_name) & ((1 << 52) - 1)


def inter_vm(sc: Scenario) -> bool:
    """Whether pages may be shared between VMs (then they are not independent)."""
    if not sc.hypervisor.page_sharing:
        return False
    salts = [salt_of(sc.hypervisor, v) for v in sc.vm]
    return len(set(salts)) < len(salts)


def break_free_pages(th: states.Thresholds, hv: HypervisorConfig) -> float | None:
    """Free pages below which large pages break (vsphere: high_pct of minFree), or None when
    the state decides (seed: from soft)."""
    if th.preset != "vsphere":
        return None
    return (400.0 if hv.high_pct is None else hv.high_pct) / 100.0 * th.minfree_pages


def _stride(n: int, seed: int) -> int:
    """A stride coprime with n: the scan's permutation of a VM's pages."""
    if n <= 2:
        return 1
    rng = np.random.default_rng(seed)
    while True:
        s = int(rng.integers(1, n))
        if np.gcd(s, n) == 1:
            return s


class Sharing:
    """The scanner's schedule for a simulation's VMs (Simulation.sharing)."""

    def __init__(self, sim: Simulation) -> None:
        sc = sim.scenario
        # A weak reference: the simulation owns this, and a cycle would keep a finished run's
        # arrays until the collector's next full pass (as Recorder).
        self.sim = weakref.proxy(sim)
        self.hv = sc.hypervisor
        self.on = self.hv.page_sharing
        self.acc: dict[int, float] = {}
        for v in sim.vms:
            a = v.arrays
            a.vc[C_SALT] = salt_of(self.hv, v.cfg)
            a.vc[C_OS_SEED] = _key("os", v.cfg.guest.os)
            a.vc[C_SCAN_STRIDE] = _stride(v.n_gppn, _key("scan", v.cfg.name, sc.seed))
            a.vc[C_SCAN_CURSOR] = 0
            a.lpage[:] = 0 if self.hv.large_pages else 1
            self.acc[v.idx] = 0.0
        self.break_below = break_free_pages(sim.thresholds, self.hv)
        self._scan: Callable[..., int] | None = None

    def _room(self, n: int) -> None:
        """Grow the hash table (doubling) so that it stays at most half full after n more
        entries: it starts at 16 slots, and a host that never shares never grows it."""
        sim = self.sim
        h = sim.host
        need = int(h.hc[HC_TABLE_N]) + n
        size = h.skey.size
        if 2 * need <= size:
            return
        while 2 * need > size:
            size *= 2
        nkey = big_array(size, np.int64, -1)
        nval = big_array(size, np.int64, 0)
        ksharing.t_rehash(h.skey, h.sval, nkey, nval)
        sim.host = sim.hv.host = h._replace(skey=nkey, sval=nval)  # every holder of it

    def power_on(self, v: VM) -> None:
        """The guest kernel's frames hold its OS image."""
        ksharing.os_image(v.arrays, v.kernel_pages, int(v.arrays.vc[C_OS_SEED]))

    def may_break(self, state: int, free: float) -> bool:
        if not self.hv.large_pages:
            return False
        if self.break_below is None:
            return state >= states.SOFT
        return free < self.break_below or state >= states.CLEAR

    def rate(self, v: VM, state: int) -> float:
        """Pages per second the scanner hashes in VM v."""
        if self.break_below is not None and state >= states.CLEAR:
            return self.hv.share_rate_max  # ESX calls page sharing from clear down
        return min(self.hv.share_rate_max, v.n_gppn / self.hv.share_scan_time)

    def tick(self, now: float) -> None:
        """Scan each powered-on VM's share of pages for this tick, in the order of names."""
        if not self.on:
            return
        sim = self.sim
        brk = self.may_break(sim.state, sim.free_pages)
        cost = sim.scenario.costs.lpage_break
        for v in sim.canon:
            if not v.powered_on:
                continue
            self.acc[v.idx] += self.rate(v, sim.state) * sim.dt
            n = int(self.acc[v.idx])
            if n > 0:
                self.acc[v.idx] -= n
                a = v.arrays
                if not brk and self.hv.large_pages and a.vc[C_LP_BROKEN] == 0:
                    # Every page is in a large page: the scanner passes them all by.
                    a.vc[C_SCAN_CURSOR] = (int(a.vc[C_SCAN_CURSOR]) + n) % v.n_gppn
                    continue
                self._room(n)
                if self._scan is None:  # bound once: numba's dispatch would inspect the pool
                    self._scan = bind(ksharing.scan, sim.pool, sim.host, 0, 1, False)
                broke = self._scan(sim.pool, sim.host, v.idx, n, brk)
                if broke:
                    v.debt += broke * cost
                    sim.hv.act(v)
                    mmu.flush_large(sim.th.tlb, [r for rows in v.threads for r in rows])
        for v in sim.canon:
            if v.arrays.vc[C_SHARE_OPS]:
                sim.hv.act(v)  # its run is no longer its baseline
