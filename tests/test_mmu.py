"""The MMU model (kernels.mmu): the TLB against an exact LRU TLB, the walk formulas, the traps
against the guest's page-table events, shadow against nested paging, and `mmu = "off"`."""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

import numba as nb
import numpy as np
import pytest
from rich.console import Console

from helpers import merge
from vmemsim.config.loader import scenario_from_dict
from vmemsim.engine import Simulation
from vmemsim.kernels import mmu
from vmemsim.kernels.layout import C_HV_SAMPLE, C_PT_EVENTS, C_TLB_MISS
from vmemsim.report.compare import compare, print_compare

COST = {"walk_ref": 20e-9, "walk_cache": 0.5}


# ---- the TLB against an exact one -----------------------------------------------------------
@nb.njit(cache=True)
def _run_tlb(tlb: np.ndarray, trace: np.ndarray, inval: np.ndarray, lshare: float,
             hv_large: bool, broken: np.ndarray) -> np.ndarray:
    out = np.zeros(trace.size, dtype=np.int64)  # the walk's kind, or -1 for a hit
    for i in range(trace.size):
        gv = trace[i]
        if inval[i]:  # as refpath: the translation was taken away, the entry may be there
            out[i] = mmu.refill(tlb, 0, gv, gv, lshare, hv_large, broken)
        elif not mmu.lookup(tlb, 0, gv, mmu.has_large(lshare, hv_large)):
            out[i] = mmu.miss(tlb, 0, gv, gv, lshare, hv_large, broken)
        else:
            out[i] = -1
    return out


class ExactTLB:
    """A set-associative LRU TLB per page size, written plainly."""

    def __init__(self, sets: int, ways: int) -> None:
        self.sets = [OrderedDict() for _ in range(sets)]
        self.ways = ways

    def hit(self, tag: int) -> bool:
        s = self.sets[tag % len(self.sets)]
        if tag in s:
            s.move_to_end(tag)
            return True
        return False

    def insert(self, tag: int) -> None:
        s = self.sets[tag % len(self.sets)]
        s[tag] = True
        s.move_to_end(tag)
        if len(s) > self.ways:
            s.popitem(last=False)


def _exact(trace: np.ndarray, inval: np.ndarray, lshare: float, hv_large: bool,
           broken: np.ndarray) -> list[int]:
    small = ExactTLB(mmu.TLB4_SETS, mmu.TLB_WAYS)
    large = ExactTLB(mmu.TLB2_SETS, mmu.TLB_WAYS)
    out = []
    for gv, bad in zip(trace.tolist(), inval.tolist(), strict=True):
        r = gv >> 9
        if not bad and (small.hit(gv) or large.hit(r)):
            out.append(-1)
            continue
        g_large = lshare > 0 and int((r + 1) * lshare) > int(r * lshare)
        h_large = hv_large and broken[r] == 0
        k = int(g_large) | int(h_large) << 1
        (large.insert(r) if k == 3 else small.insert(gv))
        out.append(k)
    return out


def _trace(n: int, seed: int) -> np.ndarray:
    """Pages with locality: a zipf-ranked hot set spread over 64k pages, and runs."""
    rng = np.random.default_rng(seed)
    hot = rng.zipf(1.2, n) % 65536
    perm = rng.permutation(65536)
    tr = perm[hot]
    runs = rng.random(n) < 0.2
    tr[1:][runs[1:]] = tr[:-1][runs[1:]] + 1  # sequential neighbours
    return tr.astype(np.int64)


@pytest.mark.parametrize(("lshare", "hv_large"), [(0.0, True), (0.5, True), (1.0, True),
                                                  (1.0, False)])
def test_the_tlb_is_an_exact_lru_tlb_on_a_trace(lshare: float, hv_large: bool) -> None:
    tr = _trace(60_000, 7)
    rng = np.random.default_rng(3)
    inval = rng.random(tr.size) < 0.01  # invalidated translations always walk
    broken = (rng.random((tr.max() >> 9) + 2) < 0.3).astype(np.uint8)
    got = _run_tlb(mmu.new_tlb(1), tr, inval, lshare, hv_large, broken)
    want = _exact(tr, inval, lshare, hv_large, broken)
    assert got.tolist() == want
    misses = int((got >= 0).sum())
    assert 0 < misses < tr.size
    if lshare == 1.0 and hv_large:  # most regions are large: far fewer misses
        assert misses < int((np.array(_exact(tr, inval, 0.0, True, broken)) >= 0).sum()) / 2


def test_breaking_a_large_page_flushes_its_entry_in_every_vcpu_of_the_vm() -> None:
    tlb = mmu.new_tlb(3)  # rows 0 and 1: one VM's two vCPUs; row 2: another VM's
    broken = np.zeros(8, np.uint8)  # a VM's record of broken 2 MB regions (VMArrays.lpage)
    for a in range(3):
        assert mmu.miss(tlb, a, 5, 5, 1.0, True, broken) == 3
        assert mmu.lookup(tlb, a, 100, True)  # the same 2 MB region
    mmu.break_large(tlb, 0, 2, 5, 5, broken)
    assert broken[0] == 1
    assert not mmu.lookup(tlb, 0, 100, True) and not mmu.lookup(tlb, 1, 100, True)
    assert mmu.lookup(tlb, 2, 100, True)  # (its own region 0 is another VM's memory)
    assert mmu.miss(tlb, 0, 100, 100, 1.0, True, broken) == 1  # guest large, host small


# ---- walk formulas ------------------------------------------------------------------------
def test_walk_references_for_each_page_size_mix() -> None:
    # (guest large, host large): native walks under shadow, (g+1)(h+1)-1 nested
    mixes = [(False, False), (True, False), (False, True), (True, True)]
    assert [mmu.walk_refs("shadow", g, h) for g, h in mixes] == [4, 4, 4, 3]
    assert [mmu.walk_refs("nested", g, h) for g, h in mixes] == [24, 19, 19, 15]
    assert mmu.walk_time("nested", False, False, 1.0, 0.0) == 24
    assert mmu.walk_time("nested", False, False, 1.0, 1.0) == 2  # leaves only
    assert mmu.walk_time("shadow", False, False, 1.0, 0.5) == 2.5


# ---- runs ---------------------------------------------------------------------------------
BASE: dict[str, Any] = {
    "name": "mmu", "seed": 2, "duration": "3s", "tick": "100ms", "baseline": False,
    "host": {"memory": "1GiB", "vmkernel": "16MiB"},
    "vm": [{"name": "a", "memory": "512MiB", "overhead": "1MiB",
            "guest": {"kernel": "8MiB"},
            "process": [{"name": "p", "workload": "uniform", "size": "4MiB"}]}],
}


def _sim(**over: Any) -> Simulation:
    sim = Simulation(scenario_from_dict(merge(BASE, over), "test"))
    sim.run()
    return sim


def _vm(mmu_: str, guest: dict | None = None, proc: dict | None = None,
        **over: Any) -> dict[str, Any]:
    p = {"name": "p", "workload": "uniform", "size": "4MiB", **(proc or {})}
    return {"vm": [{"name": "a", "memory": "512MiB", "overhead": "1MiB", "mmu": mmu_,
                    "guest": {"kernel": "8MiB", **(guest or {})}, "process": [p]}], **over}


def _summary(sim: Simulation) -> dict[str, Any]:
    return sim.result().summary["vms"][0]


@pytest.mark.parametrize(("large", "kind"), [(0.0, 2), (1.0, 3)])
def test_a_working_set_within_the_tlbs_reach_misses_only_when_translations_are_made(
        large: float, kind: int) -> None:
    """4 MiB of pages from GVPN 0: four per set of the 4 KB TLB (or two 2 MB entries): after
    its first touches (and the pages sampling invalidated) the process never misses; each
    walk costs the nested walk of its page-size mix."""
    sim = _sim(**_vm("nested", guest={"large_pages": large, "kernel_refs": 0.0}))
    s = _summary(sim)
    # (a sample fault may be on a frame the guest is filling: a guest fault already)
    sampled = int(sim.vms[0].arrays.vc[C_HV_SAMPLE])
    assert s["guest_faults"] <= s["tlb_misses"] <= s["guest_faults"] + sampled
    assert s["refs"] > 100 * s["tlb_misses"]
    assert s["walk_s"] == pytest.approx(
        s["tlb_misses"] * mmu.walk_time("nested", bool(kind & 1), True, **COST), rel=1e-9)


def test_a_working_set_twice_the_reach_misses_half_its_hits() -> None:
    # 2048 pages, 8 per 4-way set: uniform references hit half the time.
    s = _summary(_sim(**_vm("nested", guest={"kernel_refs": 0.0}, proc={"size": "8MiB"})))
    assert s["tlb_misses"] / s["refs"] == pytest.approx(0.5, abs=0.02)


def test_traps_are_the_guests_page_table_events_and_hidden_faults() -> None:
    proc = {"pt_updates": "20k/s", "ctx_switches": "1k/s"}
    sim = _sim(**_vm("shadow", guest={"kernel_refs": 0.0}, proc=proc))
    s = _summary(sim)
    vc = sim.vms[0].arrays.vc
    events = int(vc[C_PT_EVENTS])
    # 21 events per 1000 references (rate 1M/s); fractions carry from slice to slice
    assert abs(events - s["refs"] * 21e-3) <= 2  # two carried fractions
    hidden = s["mmu_traps"] - events  # first touches, and pages sampling invalidated
    assert s["guest_faults"] <= hidden <= s["guest_faults"] + int(vc[C_HV_SAMPLE])
    assert s["mmu_s"] == pytest.approx(s["mmu_traps"] * 2e-6, rel=1e-6)
    nested = _sim(**_vm("nested", proc=proc))
    n = _summary(nested)
    assert n["mmu_traps"] == 0 and n["mmu_s"] == 0.0
    assert int(nested.vms[0].arrays.vc[C_PT_EVENTS]) > 0
    assert n["refs"] > s["refs"]


def _thr(mmu_: str, large: float, proc: dict) -> float:
    return _summary(_sim(**_vm(mmu_, guest={"large_pages": large}, proc=proc)))["throughput"]


def test_nested_wins_on_page_table_work_shadow_on_tlb_misses_large_pages_close_the_gap() -> None:
    pt_heavy = {"size": "4MiB", "pt_updates": "50k/s", "ctx_switches": "2k/s"}
    tlb_heavy = {"size": "256MiB", "ctx_switches": 0}
    assert _thr("nested", 0.0, pt_heavy) > 1.05 * _thr("shadow", 0.0, pt_heavy)
    gap_small = _thr("shadow", 0.0, tlb_heavy) / _thr("nested", 0.0, tlb_heavy)
    gap_large = _thr("shadow", 1.0, tlb_heavy) / _thr("nested", 1.0, tlb_heavy)
    assert gap_small > 1.05
    assert gap_large < 1.0 + (gap_small - 1.0) / 4  # (nested may come out ahead)


def test_host_reclamation_breaks_large_pages_and_costs_hidden_faults() -> None:
    # Without page sharing, which would break large pages too: here only reclamation does.
    over = _vm("shadow", guest={"large_pages": 1.0}, proc={"size": "200MiB"},
               host={"memory": "160MiB", "vmkernel": "16MiB"},
               hypervisor={"page_sharing": False})
    over["vm"][0]["memory"] = "256MiB"
    sim = _sim(**over)
    s = _summary(sim)
    vc = sim.vms[0].arrays.vc
    assert s["swin_pages"] + s["unzip_pages"] > 0
    assert sim.vms[0].arrays.lpage.any()
    hidden = s["mmu_traps"] - int(vc[C_PT_EVENTS])
    # more than first touches and sampling explain: re-touches of pages the host took
    assert hidden > s["guest_faults"] + int(vc[C_HV_SAMPLE]) + 100


def test_the_tlb_sees_the_large_pages_page_sharing_breaks() -> None:
    """One record of broken 2 MB regions per VM: regions TPS's scanner broke are walked as
    small pages by the reference path too, so a working set that 2 MB entries cover misses in
    the TLB once its regions are broken."""
    def run(brk: bool) -> tuple[Simulation, int]:
        sc = scenario_from_dict(merge(BASE, _vm("nested", guest={"large_pages": 1.0},
                                               proc={"size": "64MiB"}, duration="4s")), "t")
        sim = Simulation(sc)
        for _ in range(10):
            sim.step_tick()
        v = sim.vms[0]
        assert not v.arrays.lpage[:-1].any()  # large pages until something breaks them
        if brk:  # the scanner breaks every region it visits (as from soft down), in a tick
            sim.sharing.may_break = lambda state, free: True
            sim.sharing.rate = lambda vm, state: vm.n_gppn / sim.dt
            sim.step_tick()
            assert v.arrays.lpage[:-1].all()
            del sim.sharing.may_break, sim.sharing.rate
        before = int(v.arrays.vc[C_TLB_MISS])
        while not sim.done:
            sim.step_second()
        return sim, int(v.arrays.vc[C_TLB_MISS]) - before

    whole, m_whole = run(False)
    broken, m_broken = run(True)
    assert m_broken > 10 * max(m_whole, 1)
    lp = broken.vms[0].arrays.lpage
    assert mmu.kind(0, 0, 1.0, True, lp) == 1  # guest large, host small
    assert mmu.kind(0, 0, 1.0, True, whole.vms[0].arrays.lpage) == 3  # both large


# main's results for this scenario (commit 41e0046), which `mmu = "off"` must reproduce.
MAIN_OFF = {"refs": 2984841, "guest_faults": 1024, "hv_faults": 3076,
            "run_s": 2.9848407999345694, "fault_s": 0.015159200154338024}


def test_off_is_mains_model() -> None:
    s = _summary(_sim(**_vm("off", proc={"size": "4MiB", "pt_updates": "9k/s"})))
    assert s["tlb_misses"] == s["mmu_traps"] == 0
    assert s["walk_s"] == s["mmu_s"] == 0.0
    for k, v in MAIN_OFF.items():
        if v is not None:
            assert s[k] == v, k


def test_compare_shows_where_shadow_and_nested_paging_spent_the_time() -> None:
    """`vmemsim compare` of one scenario under shadow and under nested paging: its printed
    table has each run's TLB misses, walk time, traps and MMU time."""
    proc = {"size": "8MiB", "pt_updates": "20k/s", "ctx_switches": "1k/s"}
    runs = {m: _sim(**_vm(m, guest={"kernel_refs": 0.0}, proc=proc)) for m in
            ("shadow", "nested")}
    buf = io.StringIO()
    print_compare(compare([r.result() for r in runs.values()], list(runs)),
                  Console(file=buf, width=120, color_system=None))
    cells = {}
    for line in buf.getvalue().splitlines():
        for label in ("TLB misses", "walk vCPU-s", "MMU traps", "MMU vCPU-s"):
            if f" {label} " in line:  # shadow, nested, difference, ratio
                cells[label] = line.split(label)[1].split()
    s, n = (_summary(r) for r in runs.values())
    assert s["mmu_traps"] > 0 and n["mmu_traps"] == 0 and n["walk_s"] > s["walk_s"] > 0
    for label, key in (("TLB misses", "tlb_misses"), ("walk vCPU-s", "walk_s"),
                       ("MMU traps", "mmu_traps"), ("MMU vCPU-s", "mmu_s")):
        shadow, nested, _, _ = cells[label]
        exact = 0.005 if label.endswith("vCPU-s") else 0  # seconds: to 0.01
        assert _number(shadow) == pytest.approx(s[key], rel=5e-3, abs=exact), label
        assert _number(nested) == pytest.approx(n[key], rel=5e-3, abs=exact), label
    assert cells["MMU traps"][1] == "0" and cells["MMU traps"][3] == "0.00x"


def _number(cell: str) -> float:
    """72.6k, 1.43M, 0.0312 back to a number."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(cell[-1:], 1.0)
    return float(cell[:-1] if scale != 1.0 else cell) * scale


def test_each_thread_knows_its_vms_threads() -> None:
    """The rows a TLB shoot-down reaches (PP_ROW0, PP_ROW1) are exactly the VM's threads."""
    from vmemsim.kernels.layout import PP_ROW0, PP_ROW1, PS_VM

    two = [{"name": n, "memory": "128MiB", "overhead": "1MiB", "vcpus": c,
            "guest": {"kernel": "8MiB"},
            "process": [{"name": "p", "workload": "uniform", "size": "4MiB", "cpu": c},
                        {"name": "q", "workload": "uniform", "size": "4MiB"}]}
           for n, c in (("b", 2), ("a", 3))]
    sim = Simulation(scenario_from_dict(merge(BASE, {"vm": two}), "test"))
    pp, ps = sim.th.pp, sim.th.ps
    assert len(pp) == 7
    for r in range(len(pp)):
        mine = np.flatnonzero(ps[:, PS_VM] == ps[r, PS_VM])
        assert list(range(int(pp[r, PP_ROW0]), int(pp[r, PP_ROW1]))) == mine.tolist()
