"""Mechanisms against the reference (esx-reference.md, Linux's vmw_balloon): sampling of VMs
that start late, compression before every swap-out, the swap target's balloon term, the
compression cache's FIFO, and the balloon driver's rates."""

from __future__ import annotations

import numpy as np
import pytest

import vmemsim
from helpers import small
from vmemsim.engine import Simulation
from vmemsim.guest.balloon_driver import SLOW_CYCLES, BalloonDriver
from vmemsim.hypervisor import states
from vmemsim.kernels import guestmm, hostmm
from vmemsim.kernels.layout import (
    C_BALLOON_N,
    C_GEVICT,
    C_GFREE_N,
    C_ZQ_HEAD,
    C_ZSLOT_FREE_N,
    H_MASK,
    H_SWAPPED,
    H_ZIPPED,
    WM_LOW,
)
from vmemsim.kernels.timeline import RECLAIM_SWAP, RECLAIM_ZIP

MB = 256  # pages


def test_a_vm_powered_on_late_counts_as_fully_active_until_its_first_sample() -> None:
    """Sampling periods of 5 s; 'late' powers on at 12 s. The host's periods end at 15 s, but
    the late VM's first period is its own, 12-17 s: until then its estimate is 100% (ESX's
    starting estimate), not the 0 of a period in which it was never sampled."""
    vms = list(small().model_dump()["vm"][:2])
    vms[1] = {**vms[1], "name": "late", "start": 12.0}
    r = vmemsim.simulate(small(duration="22s", vm=vms), cache=False)
    late = r.vm("late")
    memsz = late["memsz_mb"].iloc[0]
    assert (late.loc[13:17, "active_est_mb"] == memsz).all()
    # its first real sample, at 17 s: its busy process touches most of what it samples
    assert 0 < late.loc[18, "active_est_mb"] < memsz


def test_the_host_compresses_before_it_swaps_in_any_state() -> None:
    """A VM without a balloon driver is swapped in the soft state: pages chosen for swapping
    that fit in the cache are compressed first, in soft as in hard (ESX 4.1+)."""
    vms = list(small().model_dump()["vm"])
    vms[2] = {**vms[2], "compressible": 1.0}  # c: no VMware Tools, all pages compress
    hv = {"hard_pct": 0.02, "low_pct": 0.01}  # soft only: hard and low out of reach
    r = vmemsim.simulate(small(duration="20s", vm=vms, hypervisor=hv), cache=False)
    assert set(r.host["state"]) <= {"high", "soft"} and "soft" in set(r.host["state"])
    c = r.vm("c")
    assert c["zip_pages"].sum() > 0
    # everything compressible and the cache large enough: nothing needed the swap file
    assert c["swout_pages"].sum() < c["zip_pages"].sum()


def test_the_swap_target_leaves_to_the_balloon_what_it_takes_back_in_time() -> None:
    """In the hard state (seed preset: balloon, compress, swap), a VM whose driver is
    inflating is swapped only for the excess its next poll cannot cover."""
    sim = Simulation(small(duration="10s"))
    for _ in range(30):
        sim.step_tick()
    v = next(x for x in sim.vms if x.cfg.name == "a")
    assert v.driver.running(sim.time_s) and v.ballooning_possible
    sim.hv.state = states.HARD
    acts = sim.thresholds.actions(states.HARD)
    size = int(v.arrays.vc[C_BALLOON_N])
    rate = v.driver.next_rate()
    for excess in (rate // 2, rate + 300):
        v.target = v.consumed - excess
        v.driver.target = size + excess  # what _balloon sets: the balloon is to take it
        sim.hv.host_reclaim(sim.time_s, acts)
        assert sim.reclaim.want[v.idx] == max(0, excess - rate), excess
    # without a driver the whole excess is swapped
    v.ballooning_possible = False
    sim.hv.host_reclaim(sim.time_s, acts)
    assert sim.reclaim.want[v.idx] == rate + 300
    assert sim.reclaim.mode[v.idx] == RECLAIM_ZIP | RECLAIM_SWAP


def test_the_compression_cache_evicts_its_oldest_page() -> None:
    """The cache is full; compressing more moves its oldest pages to swap, in the order they
    were compressed (checked by order, not by count)."""
    sc = small(duration="3s", host={"memory": "256MiB"}, hypervisor={"zip_max_pct": 2.0},
               vm=[{"name": "g", "memory": "64MiB", "overhead": "1MiB", "compressible": 1.0,
                    "guest": {"kernel": "2MiB", "boot_touch": True},
                    "process": [{"workload": "hotcold", "size": "32MiB", "rate": "100k/s"}]}])
    sim = Simulation(sc)
    sim.run()
    a = sim.vms[0].arrays
    slots = a.zowner.size
    hostmm.host_reclaim(a, sim.host, slots, True, False, 10**9)  # compress only, until full
    assert a.vc[C_ZSLOT_FREE_N] == 0
    order = []  # the cache's pages, oldest first, by following the FIFO
    s = int(a.vc[C_ZQ_HEAD])
    while s >= 0:
        order.append(int(a.zowner[s]))
        s = int(a.zlinks[2 * s + 1])
    assert len(order) == slots
    zipped = set(np.flatnonzero((a.pstate & H_MASK) == H_ZIPPED).tolist())
    assert set(order) == zipped
    hostmm.host_reclaim(a, sim.host, 40, True, True, 10**9)
    out = set(np.flatnonzero((a.pstate & H_MASK) == H_SWAPPED).tolist())
    moved = [g for g in order if g in out]
    assert moved == order[:len(moved)] and len(moved) >= 40


# ---- the balloon driver (vmw_balloon) ------------------------------------------------------
class _Guest:
    """A guest whose free pages above the low watermark serve non-sleeping allocations and
    whose reclaim serves `reclaimable` more sleeping ones."""

    def __init__(self, free: int, reclaimable: int) -> None:
        self.free, self.reclaimable, self.calls = free, reclaimable, []

    def __call__(self, n: int, sleep: bool) -> tuple[int, int, float]:
        self.calls.append((n, sleep))
        if not sleep:
            got = min(n, self.free)
            self.free -= got
            return got, 0, 0.0
        got = min(n, self.reclaimable)
        self.reclaimable -= got
        return got, got, 0.0


def _driver() -> BalloonDriver:
    return BalloonDriver(installed=True, start_time=0.0, rate_min=512, rate_max=2048,
                         nopressure=16384, max_pages=10**9)


def test_the_driver_inflates_without_sleeping_up_to_16384_pages_a_poll() -> None:
    d = _driver()
    g = _Guest(free=10**6, reclaimable=0)
    got, ev, _, failed = d.inflate(100_000, g)
    assert (got, ev, failed) == (16384, 0, False)
    assert g.calls == [(16384, False)]


def test_under_pressure_it_sleeps_at_rate_alloc_for_four_polls_and_ramps_by_16() -> None:
    d = _driver()
    g = _Guest(free=300, reclaimable=10**6)
    got, ev, _, failed = d.inflate(100_000, g)
    # 300 free pages without sleeping, then sleeping allocations up to rate_alloc (2048)
    assert g.calls == [(16384, False), (2048 - 300, True)]
    assert got == 2048 and ev == 2048 - 300 and not failed
    assert d.slow_cycles == SLOW_CYCLES
    assert d.rate_alloc == 2048  # at its maximum already
    d.rate_alloc = 1024
    for k in range(3):  # pressure goes on: each poll one rate's worth, then +16
        d.poll()
        assert d.next_rate() == 1024 + 16 * k
        got, *_ = d.inflate(100_000, g)
        assert got == 1024 + 16 * k
        assert d.slow_cycles == SLOW_CYCLES
    for _ in range(SLOW_CYCLES):
        d.poll()
    assert d.slow_cycles == 0 and d.next_rate() == 16384  # pressure forgotten


def test_a_failed_sleeping_allocation_halves_the_rate_down_to_its_minimum() -> None:
    d = _driver()
    rates = []
    for _ in range(4):
        g = _Guest(free=0, reclaimable=100)
        got, _, _, failed = d.inflate(100_000, g)
        assert failed and got == 100
        rates.append(d.rate_alloc)
        d.poll()
    assert rates == [1024, 512, 512, 512]


def test_a_non_sleeping_balloon_allocation_never_makes_the_guest_reclaim() -> None:
    sim = Simulation(small(duration="10s"))
    sim.run()
    a = next(v for v in sim.vms if v.cfg.name == "b").arrays
    ev0 = int(a.vc[C_GEVICT])
    free = int(a.vc[C_GFREE_N])
    got, ev, _ = guestmm.balloon_inflate(a, sim.host, a.pol, 10**6, False, sim.time_s, sim.cost)
    assert ev == 0 and int(a.vc[C_GEVICT]) == ev0
    assert got == max(0, free - int(a.wm[WM_LOW]))
    got2, ev2, _ = guestmm.balloon_inflate(a, sim.host, a.pol, 64, True, sim.time_s, sim.cost)
    assert got2 == 64 and ev2 > 0  # sleeping, the guest pages out to satisfy it


@pytest.mark.parametrize("start", [0.0, 3.0])
def test_sampling_boundaries_follow_each_vms_power_on(start: float) -> None:
    vms = [{**small().model_dump()["vm"][0], "start": start}]
    sim = Simulation(small(duration="14s", vm=vms))
    seen = []
    while not sim.done:
        before = sim.vms[0].estimate.samples
        sim.step_tick()
        if sim.vms[0].estimate.samples != before:
            seen.append(round(sim.time_s - sim.dt, 3))
    assert seen == [start + 5.0, start + 10.0][: len(seen)] and seen
