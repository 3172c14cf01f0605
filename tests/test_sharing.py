"""Transparent page sharing (issue 18): the scanner finds exactly the identical pages, a write to
a shared page copies that page only, salting, large pages, and conservation of pages through
sharing, COW, swap and compression together."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from vmemsim.config.loader import ScenarioError, scenario_from_dict
from vmemsim.engine import Simulation
from vmemsim.hypervisor import states
from vmemsim.invariants import InvariantError, check_all
from vmemsim.kernels import guestmm, sharing
from vmemsim.kernels.layout import (
    C_COW,
    C_LP_BROKEN,
    C_SALT,
    C_SCANNED,
    C_SHARED,
    C_ZERO,
    H_BACKED,
    H_MASK,
    H_SHARED,
    HC_SHARED_MPNS,
    HC_SHARED_REFS,
    RV_SHARED,
)

MB = 256  # pages per MiB


def _vm(name: str, **over: Any) -> dict[str, Any]:
    vm: dict[str, Any] = {
        "name": name, "memory": "32MiB", "overhead": "1MiB",
        "guest": {"kernel": "2MiB", "swap": "32MiB", "boot_touch": True},
        "process": [{"name": "app", "workload": "uniform", "size": "16MiB", "rate": "50k/s",
                     "write_frac": 0.0, "shared_frac": 0.5}]}
    vm.update(over)
    return vm


def _scenario(n_vm: int = 2, hv: dict[str, Any] | None = None, host: str = "256MiB",
              duration: str = "3s", vms: list[dict[str, Any]] | None = None) -> Any:
    h = {"large_pages": False, "share_scan_time": "1s", "share_rate_max": "1M/s",
         "share_force_salting": 0, **(hv or {})}
    return scenario_from_dict({
        "name": "tps", "seed": 5, "duration": duration, "tick": "100ms", "baseline": False,
        "host": {"memory": host, "vmkernel": "8MiB"}, "hypervisor": h,
        "vm": vms if vms is not None else [_vm(f"v{i}") for i in range(n_vm)]}, "test")


def _pages(sim: Simulation) -> list[tuple[int, int, int, int, int]]:
    """(key, VM, GPPN, state, MPN) of every page held by a machine page; the key is the
    content with the VM's salt, unique pages each their own."""
    out = []
    for v in sim.vms:
        a = v.arrays
        st = a.pstate & H_MASK
        for g in np.flatnonzero((st == H_BACKED) | (st == H_SHARED)).tolist():
            c = int(a.cid[g])
            key = (("u", v.idx, g) if c < 0
                   else (int(c) & int(sharing.CMASK), int(a.vc[C_SALT])))
            out.append((key, v.idx, g, int(st[g]), int(a.pmap[g])))
    return out


def test_sharing_finds_exactly_the_identical_pages() -> None:
    """Oracle: a content histogram. Once the scanner has passed over every page with nothing
    changing (the processes stopped), pages with equal contents are all on one machine page,
    a page whose content no other page has is not shared, and the saving is the sum over
    contents of (pages - 1)."""
    vms = [_vm(f"v{i}", process=[{"name": "app", "workload": "uniform", "size": "16MiB",
                                  "rate": "50k/s", "write_frac": 0.2, "shared_frac": 0.5,
                                  "stop": "1s"}]) for i in range(3)]
    sim = Simulation(_scenario(vms=vms, duration="5s"), check=10)
    sim.run()
    groups: dict[Any, list[tuple[int, int, int, int, int]]] = defaultdict(list)
    for p in _pages(sim):
        groups[p[0]].append(p)
    saving = 0
    kinds = set()
    for key, ps in groups.items():
        mpns = {p[4] for p in ps}
        if len(ps) > 1:
            assert len(mpns) == 1, f"content {key} on {len(mpns)} machine pages"
            assert all(p[3] == H_SHARED for p in ps)
            saving += len(ps) - 1
            kinds.add("zero" if key[0] == 0 else "other")
            vm_of = [p[1] for p in ps]
            if len(set(vm_of)) > 1:
                kinds.add("inter-VM")
            if len(set(vm_of)) < len(vm_of):
                kinds.add("intra-VM")
        elif key[0] == "u":
            assert ps[0][3] == H_BACKED
    h = sim.host.hc
    assert h[HC_SHARED_REFS] - h[HC_SHARED_MPNS] == saving
    assert kinds == {"zero", "other", "inter-VM", "intra-VM"}  # the oracle saw each case
    assert saving > 10 * MB


def _shared_run(**kw: Any) -> Simulation:
    sim = Simulation(_scenario(**kw), check=10)
    sim.run()
    return sim


def test_a_write_to_a_shared_page_copies_that_page_and_nothing_else() -> None:
    sim = _shared_run(duration="2s")
    h = sim.host
    a = sim.vms[0].arrays
    gs = np.flatnonzero((a.pstate & H_MASK) == H_SHARED)
    refs = h.rmap_gppn
    g = next(int(x) for x in gs if refs[a.pmap[x]] >= 3)
    m = int(a.pmap[g])
    before = [(v.arrays.pmap.copy(), v.arrays.pstate.copy()) for v in sim.vms]
    rmap = (h.rmap_vm.copy(), h.rmap_gppn.copy())
    cows = int(a.vc[C_COW])
    stall, status = sharing.access(a, h, g, 0.0, sim.vms[0].cost, True)
    assert status == 0 and stall >= sim.scenario.costs.cow_fault
    m2 = int(a.pmap[g])
    assert m2 != m and h.rmap_vm[m2] == 0 and h.rmap_gppn[m2] == g
    assert h.rmap_gppn[m] == rmap[1][m] - 1 and h.rmap_vm[m] == RV_SHARED
    assert a.vc[C_COW] == cows + 1
    for i, v in enumerate(sim.vms):
        changed = np.flatnonzero(v.arrays.pmap != before[i][0])
        assert changed.tolist() == ([g] if i == 0 else [])
        changed = np.flatnonzero((v.arrays.pstate & H_MASK) != (before[i][1] & H_MASK))
        assert changed.tolist() == ([g] if i == 0 else [])
    diff = np.flatnonzero((h.rmap_vm != rmap[0]) | (h.rmap_gppn != rmap[1]))
    assert sorted(diff.tolist()) == sorted([m, m2])
    check_all(sim)
    # A read of a shared page copies nothing.
    g2 = int(next(x for x in gs if x != g))
    m3 = int(a.pmap[g2])
    sharing.access(a, h, g2, 0.0, sim.vms[0].cost, False)
    assert a.pmap[g2] == m3 and (a.pstate[g2] & H_MASK) == H_SHARED


def test_the_last_reference_written_keeps_the_page() -> None:
    sim = _shared_run(n_vm=1, duration="2s")
    h = sim.host
    a = sim.vms[0].arrays
    gs = np.flatnonzero((a.pstate & H_MASK) == H_SHARED)
    m = int(a.pmap[gs[0]])
    mine = [int(g) for g in gs if a.pmap[g] == m]
    for g in mine:
        sharing.access(a, h, g, 0.0, sim.vms[0].cost, True)
    assert a.pmap[mine[-1]] == m  # no copy for the last one: the page is private again
    assert h.rmap_vm[m] == 0 and h.rmap_gppn[m] == mine[-1]
    check_all(sim)


def test_writes_in_a_run_break_sharing() -> None:
    """Frames filled by the guest (zero pages taken for new data) take COW faults."""
    vms = [_vm(f"v{i}", process=[{"name": "app", "workload": "hog", "size": "24MiB",
                                  "wss": "2MiB", "ramp": "3s", "rate": "50k/s"}])
           for i in range(2)]
    sim = Simulation(_scenario(vms=vms, duration="4s"), check=5)
    r = sim.run()
    assert r.vms["cow_faults"].sum() > 0
    assert r.vms["cow_faults"].sum() == sum(int(v.arrays.vc[C_COW]) for v in sim.vms)


def _cross_vm(sim: Simulation) -> int:
    """Shared machine pages named by pages of more than one VM."""
    owners: dict[int, set[int]] = defaultdict(set)
    for v in sim.vms:
        a = v.arrays
        for g in np.flatnonzero((a.pstate & H_MASK) == H_SHARED).tolist():
            owners[int(a.pmap[g])].add(v.idx)
    return sum(1 for s in owners.values() if len(s) > 1)


def test_salting_zero_pages_share_within_a_vm_and_between_vms_only_without_it() -> None:
    salted = _shared_run(hv={"share_force_salting": 2}, duration="2s")
    assert _cross_vm(salted) == 0
    for v in salted.vms:
        assert v.arrays.vc[C_SHARED] > 8 * MB  # zero pages (and its own duplicates) share
    unsalted = _shared_run(hv={"share_force_salting": 0}, duration="2s")
    assert _cross_vm(unsalted) > 0
    # Salted, a VM's OS image and application pages are each unique within it: only its
    # zero page is shared, one per VM.
    assert salted.host.hc[HC_SHARED_MPNS] == len(salted.vms)
    assert all(v.arrays.vc[C_ZERO] == v.arrays.vc[C_SHARED] for v in salted.vms)

    def saving(s: Simulation) -> int:
        return int(s.host.hc[HC_SHARED_REFS] - s.host.hc[HC_SHARED_MPNS])

    assert saving(unsalted) > saving(salted)
    # The same salt shares between VMs again; under 1 VMs without a salt have salt 0.
    same = _shared_run(hv={"share_force_salting": 2}, duration="2s",
                       vms=[_vm("v0", salt=7), _vm("v1", salt=7)])
    assert _cross_vm(same) > 0
    one = _shared_run(hv={"share_force_salting": 1}, duration="2s")
    assert _cross_vm(one) > 0


def test_large_pages_share_nothing_until_broken() -> None:
    # Seed preset, ample host: high, so no large page breaks and nothing is scanned.
    sim = _shared_run(hv={"large_pages": True}, duration="2s")
    assert sim.host.hc[HC_SHARED_REFS] == 0
    assert all(v.arrays.vc[C_SCANNED] == 0 and v.arrays.vc[C_LP_BROKEN] == 0
               for v in sim.vms)
    # A host in soft breaks them as the scanner reaches them, then shares the small pages.
    tight = _shared_run(hv={"large_pages": True}, host="76MiB", duration="2s")
    assert tight.state >= states.SOFT or tight.recorder.transitions
    assert all(v.arrays.vc[C_LP_BROKEN] > 0 for v in tight.vms)
    assert tight.host.hc[HC_SHARED_REFS] > 0


def _break_states(preset: str, host_mb: float, free_mb: list[float]) -> list[bool]:
    sc = _scenario(hv={"large_pages": True, "thresholds": preset},
                   host=f"{int(host_mb)}MiB")
    sim = Simulation(sc)
    out = []
    for f in free_mb:
        free = f * MB
        st = sim.thresholds.next_state(states.HIGH, free)
        out.append(sim.sharing.may_break(st, free))
    return out


def test_large_pages_break_in_the_states_the_reference_names() -> None:
    """vSphere 6: from 'high' (below 400% of minFree) down; with large pages off, never. The
    seed preset has no clear state: from soft down."""
    host = 256.0
    mf = states.minfree_mb(host)  # 6% of 256 MB
    assert _break_states("vsphere", host, [4.5 * mf, 3.5 * mf, 0.9 * mf, 0.5 * mf]) == \
        [False, True, True, True]
    soft = 0.06 * host
    assert _break_states("seed", host, [2 * soft, 1.1 * soft, 0.9 * soft]) == \
        [False, False, True]
    sc = _scenario(hv={"large_pages": True, "thresholds": "vsphere", "high_pct": 300})
    sim = Simulation(sc)
    assert not sim.sharing.may_break(states.HIGH, 3.5 * mf * MB)
    sim = Simulation(_scenario(hv={"thresholds": "vsphere"}))  # large pages off
    assert not sim.sharing.may_break(states.LOW, 0)
    with pytest.raises(ScenarioError, match="high_pct"):
        _scenario(hv={"high_pct": 300})


def test_pages_are_conserved_through_sharing_cow_swap_and_compression() -> None:
    """An overcommitted host with sharing, COW, ballooning, swapping and compression all at
    work: the invariants (every reference count equals the pmap entries naming the page,
    machine pages owned + shared + free = all, ...) hold at every tick."""
    vms = [_vm(f"v{i}", tools=(i == 0),
               process=[{"name": "app", "workload": "uniform", "size": "24MiB",
                         "rate": "100k/s", "write_frac": 0.3, "shared_frac": 0.3}])
           for i in range(3)]
    sc = _scenario(vms=vms, host="88MiB", duration="4s", hv={"balance_period": "1s"})
    sim = Simulation(sc, check=True)
    r = sim.run()
    assert r.host["pshare_saving_mb"].max() > 0
    assert r.vms["cow_faults"].sum() > 0
    assert r.vms["swout_pages"].sum() > 0 and r.vms["zip_pages"].sum() > 0
    # Consumed counts a shared page once: the VMs' consumption adds up to the machine pages.
    last = r.vms[r.vms["time_s"] == r.vms["time_s"].max()]
    used = sum(v.consumed for v in sim.vms)
    assert last["consumed_mb"].sum() == pytest.approx(used / MB)
    pages_held = sim.n_mpn - sim.free_pages - sum(v.overhead_pages for v in sim.vms)
    assert used == pytest.approx(pages_held)
    # The balloon takes free frames: most are shared zero pages, each dropping a reference.
    a = sim.vms[0].arrays
    before = int(a.vc[C_SHARED])
    got, _, _ = guestmm.balloon_inflate(a, sim.host, a.pol, 2 * MB, True, sim.time_s,
                                        sim.vms[0].cost)
    assert got == 2 * MB and a.vc[C_SHARED] < before - MB
    check_all(sim)
    guestmm.balloon_deflate(a, 2 * MB)
    check_all(sim)


def test_the_invariants_catch_a_wrong_reference_count() -> None:
    sim = _shared_run(duration="1s")
    h = sim.host
    m = int(np.flatnonzero(h.rmap_vm == RV_SHARED)[0])
    h.rmap_gppn[m] += 1
    with pytest.raises(InvariantError, match="reference count"):
        check_all(sim)
