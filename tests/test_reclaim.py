"""Reclamation: each mechanism has a test that fails if it is missing or wrong."""

from __future__ import annotations

import numpy as np
import pytest

import vmemsim
from helpers import small
from vmemsim.engine import Simulation
from vmemsim.hypervisor.allocation import VMDemand, idle_cost, rho, targets
from vmemsim.kernels import guestmm, hostmm
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BALLOON_N,
    C_SWAPPED,
    C_ZIPPED,
    G_BALLOON,
    G_KIND,
    H_BACKED,
    H_BALLOON,
    H_MASK,
    H_SWAPPED,
    H_ZIPPED,
    PTE_SWAP0,
)

MB = 256  # pages per MiB


# ---- allocation: shares and the idle memory tax ----------------------------------------------
def test_idle_cost_and_rho() -> None:
    assert idle_cost(1.0, 0.75) == pytest.approx(1.0)
    assert idle_cost(0.0, 0.75) == pytest.approx(4.0)  # k = 1 / (1 - 0.75)
    assert idle_cost(0.0, 0.0) == pytest.approx(1.0)  # tau = 0: pure proportional share
    # An idle VM's pages are "more expensive": lower rho, so it is reclaimed from first.
    assert rho(100, 1000, 0.05, 0.75) < rho(100, 1000, 1.0, 0.75)


def _pair(f_idle: float) -> list[VMDemand]:
    return [VMDemand(2560, 0, 256 * MB, 256 * MB, f_idle),
            VMDemand(2560, 0, 256 * MB, 256 * MB, 1.0)]


def test_targets_equal_shares_split_evenly_without_tax() -> None:
    idle, active = targets(_pair(0.05), 358 * MB, tau=0.0)
    assert idle == pytest.approx(179 * MB, rel=1e-6)
    assert active == pytest.approx(179 * MB, rel=1e-6)


def test_targets_idle_tax_moves_memory_to_the_active_vm() -> None:
    # Equal shares: pages in inverse proportion to the cost per page, c = f + k (1 - f) with
    # k = 1 / (1 - 0.75) = 4: the idle VM (f = 0.05) pays 3.85 a page, the active one 1.
    idle, active = targets(_pair(0.05), 300 * MB, tau=0.75)
    assert idle == pytest.approx(300 * MB / 4.85, rel=1e-9)
    assert active == pytest.approx(300 * MB * 3.85 / 4.85, rel=1e-9)
    # With 358 MB the active VM would get 284 MB: it gets its 256 MB, the idle one the rest.
    idle, active = targets(_pair(0.05), 358 * MB, tau=0.75)
    assert active == pytest.approx(256 * MB, rel=1e-9)
    assert idle == pytest.approx(102 * MB, rel=1e-9)


def test_targets_respect_reservation_limit_and_demand() -> None:
    vms = [VMDemand(1000, 100 * MB, 256 * MB, 256 * MB, 0.0),  # reserved 100 MB
           VMDemand(1000, 0, 256 * MB, 50 * MB, 1.0),  # wants only 50 MB
           VMDemand(4000, 0, 120 * MB, 256 * MB, 1.0)]  # limited to 120 MB
    t = targets(vms, 250 * MB, tau=0.75)
    # By shares over cost (the first VM's idle pages cost 4 each: 250 a page, against 1000 and
    # 4000) the first would get less than its reservation: it gets 100 MB; the 150 MB left go
    # 1:4 to the others, 30 and 120 MB, which is the third's limit.
    assert t == pytest.approx([100 * MB, 30 * MB, 120 * MB], rel=1e-9)
    # More memory than anyone wants: every VM gets its demand.
    assert targets(vms, 10_000 * MB, 0.75) == [256 * MB, 50 * MB, 120 * MB]


def _tax_scenario(tau: float) -> dict:
    vm = {"memory": "64MiB", "overhead": "1MiB", "guest": {"kernel": "2MiB", "swap": "64MiB"}}
    return {
        # A faster slow average than ESX's, so the idle VM's boot (when it touched all its
        # memory) is forgotten within the run.
        # Without TPS: the idle VM's zeroed memory would be shared once soft breaks its large
        # pages, and its consumption would no longer follow its target alone.
        "duration": "90s", "hypervisor": {"idle_tax": tau, "sample_period": "5s",
                                          "balance_period": "2s", "slow_gain": 0.3,
                                          "page_sharing": False},
        "host": {"memory": "112MiB", "vmkernel": "8MiB"},
        "vm": [
            {**vm, "name": "idle", "guest": {**vm["guest"], "boot_touch": True},
             "process": [{"name": "p", "workload": "idle", "size": "8MiB"}]},
            {**vm, "name": "busy",
             "process": [{"name": "p", "workload": "uniform", "size": "50MiB",
                          "rate": "100k/s"}]},
        ],
    }


def test_idle_tax_in_the_engine() -> None:
    res = {tau: vmemsim.simulate(small(**_tax_scenario(tau))) for tau in (0.0, 0.75)}
    last = {tau: r.vms[r.vms["time_s"] > 60].groupby("vm")[["sztgt_mb", "consumed_mb"]].mean()
            for tau, r in res.items()}
    # Without the tax, equal shares: equal targets (measured 46.8 MB each), and the
    # allocations follow them. (5% of slack let a small tax at tau = 0 pass.)
    t0, t75 = last[0.0]["sztgt_mb"], last[0.75]["sztgt_mb"]
    assert t0["busy"] == pytest.approx(t0["idle"], abs=0.01)
    c0 = last[0.0]["consumed_mb"]
    assert c0["busy"] == pytest.approx(c0["idle"], abs=0.01)
    # With it, the idle VM's memory moves to the busy one, which then runs faster.
    assert t75["busy"] > t0["busy"] + 5 and t75["idle"] < t0["idle"] - 5
    c0, c75 = last[0.0]["consumed_mb"], last[0.75]["consumed_mb"]
    assert c75["busy"] > c0["busy"] + 3 and c75["idle"] < c0["idle"] - 3
    thr = {tau: r.vms[(r.vms["vm"] == "busy") & (r.vms["time_s"] > 60)]["throughput"].mean()
           for tau, r in res.items()}
    assert thr[0.75] > 1.3 * thr[0.0]


# ---- sampling ----------------------------------------------------------------------------------
def test_sampling_estimate_converges_to_the_true_working_set() -> None:
    sc = small(duration="120s", hypervisor={"sample_period": "4s", "sample_size": 100},
               host={"memory": "256MiB"},
               vm=[{"name": "t", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB"},
                    "process": [{"workload": "toucher", "size": "60MiB", "rate": "200k/s",
                                 "schedule": [{"at": "0s", "wss": "16MiB"},
                                              {"at": "60s", "wss": "48MiB"}]}]}])
    r = vmemsim.simulate(sc)
    v = r.vms
    steady = v[(v["time_s"] > 30) & (v["time_s"] <= 60)]
    # The pages touched in each 4 s period: every one of the working set's 4096 pages (200k
    # references a second over them), and the guest kernel's active part (guest.kernel_active,
    # half of its 2 MB). The rest of the kernel is touched only at boot, so the whole kernel
    # counts in the first period only (0-4 s, shown from 5 s to 8 s: 16 + 2 MB).
    kernel_active = sc.vm[0].guest.kernel_active * 2
    first = v[(v["time_s"] > 4) & (v["time_s"] <= 8)]["active_true_mb"]
    assert len(first) == 4 and (first == 16 + 2).all()
    assert (steady["active_true_mb"] == 16 + kernel_active).all()
    true_mb = 16 + kernel_active
    # Mean of the raw samples: 100 pages per sample, 7 samples; binomial error ~ 1.3 MB.
    samples = steady.drop_duplicates("active_next_mb")["active_next_mb"]
    assert abs(steady["active_next_mb"].mean() - true_mb) < 6
    assert len(samples) >= 3
    # After the rise at 60 s the estimate (max of slow and fast) catches up within a few
    # periods, because the fast average follows it.
    late = v[(v["time_s"] > 90)]
    assert late["active_est_mb"].mean() == pytest.approx(late["active_true_mb"].mean(), abs=8)


def test_estimate_rises_fast_and_decays_slowly() -> None:
    sc = small(duration="160s", hypervisor={"sample_period": "4s"}, host={"memory": "256MiB"},
               vm=[{"name": "t", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB"},
                    "process": [{"workload": "toucher", "size": "60MiB", "rate": "200k/s",
                                 "schedule": [{"at": "0s", "wss": "8MiB"},
                                              {"at": "40s", "wss": "56MiB"},
                                              {"at": "100s", "wss": "8MiB"}]}]}])
    v = vmemsim.simulate(sc).vms.set_index("time_s")

    def time_to(cond: np.ndarray, start: float) -> float:
        after = v.index[(v.index > start) & cond]
        return float(after[0] - start) if len(after) else float("inf")

    hi = 58.0
    rise = time_to(v["active_est_mb"].to_numpy() > 0.8 * hi, 40)
    fall = time_to(v["active_est_mb"].to_numpy() < 0.8 * 10 + 0.2 * hi, 100)
    assert rise < fall
    assert rise <= 16


# ---- ballooning --------------------------------------------------------------------------------
def test_balloon_makes_the_guest_page_out_its_coldest_pages() -> None:
    # An LRU guest with a hot fifth of its memory: inflate the balloon by hand and look at
    # which virtual pages the guest chose to swap out.
    sc = small(duration="6s", host={"memory": "256MiB"},
               vm=[{"name": "g", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB", "policy": "lru", "swap": "64MiB"},
                    "process": [{"workload": "hotcold", "size": "56MiB", "hot_frac": 0.2,
                                 "hot_prob": 0.95, "rate": "200k/s"}]}])
    sim = Simulation(sc, check=True)
    sim.run()
    v = sim.vms[0]
    a = v.arrays
    assert not (a.pt <= PTE_SWAP0).any()  # it all fit before the balloon
    got, evicted, _ = guestmm.balloon_inflate(a, sim.host, a.pol, 24 * MB, True, 6.0, sim.cost)
    assert got == 24 * MB and evicted > 0
    swapped = np.flatnonzero(a.pt <= PTE_SWAP0)
    hot_pages = int(56 * MB * 0.2)
    assert (swapped >= hot_pages).mean() > 0.95  # cold pages went, the hot fifth stayed
    # The host freed the balloon's machine pages.
    b = np.flatnonzero((a.pstate & G_KIND) == G_BALLOON)
    assert b.size == a.vc[C_BALLOON_N]
    assert ((a.pstate[b] & H_MASK) == H_BALLOON).all()


def test_balloon_with_driver_swap_without() -> None:
    r = vmemsim.simulate(small(duration="20s"))
    by = {v["name"]: v for v in r.summary["vms"]}
    assert by["a"]["max_balloon_mb"] > 0 and by["b"]["max_balloon_mb"] > 0
    assert by["c"]["max_balloon_mb"] == 0  # no VMware Tools: no balloon driver...
    assert by["c"]["max_swapped_mb"] > 0  # ...so the host swaps it instead


def test_balloon_respects_its_maximum() -> None:
    r = vmemsim.simulate(small(duration="20s", hypervisor={"ctl_max_pct": 10}))
    assert (r.vms["mctlsz_mb"] <= 0.10 * r.vms["memsz_mb"] + 1e-9).all()
    # and it reached it (without the cap a and b balloon 15-18 MB here): the cap held it, at
    # 10% of 16384 pages, rounded down
    assert r.vms["mctlsz_mb"].max() == int(0.10 * 64 * 256) / 256


def test_balloon_disabled_means_swap() -> None:
    r = vmemsim.simulate(small(duration="20s", hypervisor={"balloon": False}))
    assert r.vms["mctlsz_mb"].max() == 0
    assert r.vms["swcur_mb"].max() > 0


# ---- host swapping and compression ------------------------------------------------------------
def _backed_vm(compressible: float, zip_pct: float = 10.0) -> Simulation:
    sc = small(duration="3s", host={"memory": "256MiB"},
               hypervisor={"zip_max_pct": zip_pct},
               vm=[{"name": "g", "memory": "64MiB", "overhead": "1MiB",
                    "compressible": compressible,
                    "guest": {"kernel": "2MiB", "boot_touch": True},
                    "process": [{"workload": "hotcold", "size": "32MiB", "rate": "100k/s"}]}])
    sim = Simulation(sc, check=True)
    sim.run()
    return sim


def test_host_victims_are_random_not_lru() -> None:
    sim = _backed_vm(0.0)
    a = sim.vms[0].arrays
    assert a.vc[C_BACKED] == 64 * MB
    freed = hostmm.host_reclaim(a, sim.host, 8 * MB, False, True, 10**9)
    assert freed == 8 * MB
    sw = np.flatnonzero((a.pstate & H_MASK) == H_SWAPPED)
    assert sw.size == 8 * MB
    # Uniform over guest-physical memory: 8 equal bins, chi-square with 7 dof.
    counts = np.histogram(sw, bins=8, range=(0, 64 * MB))[0]
    expected = sw.size / 8
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3  # p = 0.001
    # Hot pages (recently used by the guest) are taken as often as any: no LRU at this level.
    hot = a.pt[: int(32 * MB * 0.1)]
    hot = hot[hot >= 0]
    frac_hot_swapped = np.isin(hot, sw).mean()
    assert 0.05 < frac_hot_swapped < 0.20  # 1/8 of all pages were taken


def test_host_victims_are_the_streams_draws_in_order() -> None:
    """host_reclaim loads candidates ahead of use from copies of the VM's stream: the victims
    must still be, in order, the backed pages among the stream's draws, and the stream must be
    left just after the last probe, as a draw-per-probe loop without the look-ahead leaves it."""
    from vmemsim.kernels.rng import next_below

    sim = _backed_vm(0.0)
    a = sim.vms[0].arrays
    n = a.pstate.size
    # A quarter of the pages swapped first, so that some probes find a page not backed.
    hostmm.host_reclaim(a, sim.host, 16 * MB, False, True, 10**9)
    # Start where the stream's next draw is a backed page: an extra draw at the start then
    # takes another victim, instead of passing for a probe that found its page not backed.
    while a.pstate[next_below(a.rng.copy(), n)] & H_MASK != H_BACKED:
        hostmm.host_reclaim(a, sim.host, 1, False, True, 10**9)
    stream = a.rng.copy()
    backed = (a.pstate & H_MASK) == H_BACKED
    want = 3000
    expected = []
    draws = 0
    while len(expected) < want:
        g = next_below(stream, n)
        draws += 1
        if backed[g]:
            expected.append(g)
            backed[g] = False
    assert draws > want  # some probes found a page not backed
    before = (a.pstate & H_MASK) == H_SWAPPED
    assert hostmm.host_reclaim(a, sim.host, want, False, True, 10**9) == want
    taken = np.flatnonzero(((a.pstate & H_MASK) == H_SWAPPED) & ~before)
    np.testing.assert_array_equal(taken, np.sort(expected))
    # In order: the swap file hands out consecutive slots here (next fit, none freed yet), so
    # the victims' slots count up in the order of the draws.
    np.testing.assert_array_equal(np.diff(a.pmap[expected]), np.ones(want - 1, dtype=np.int32))
    np.testing.assert_array_equal(a.rng, stream)


def test_compression_takes_only_compressible_pages_and_respects_the_cache() -> None:
    sim = _backed_vm(0.5)
    a = sim.vms[0].arrays
    hostmm.host_reclaim(a, sim.host, 20 * MB, True, True, 10**9)
    z = np.flatnonzero((a.pstate & H_MASK) == H_ZIPPED)
    s = np.flatnonzero((a.pstate & H_MASK) == H_SWAPPED)
    assert z.size > 0 and s.size > 0
    assert all(hostmm.compressible(a, int(g)) for g in z)
    cap = 2 * int(64 * MB * 0.10)  # 2 KiB slots in a cache of 10% of memory
    assert a.vc[C_ZIPPED] <= cap
    # Once the cache is full, compressing more pushes the oldest compressed pages to swap.
    hostmm.host_reclaim(a, sim.host, 30 * MB, True, True, 10**9)
    assert a.vc[C_ZIPPED] <= cap
    from vmemsim.invariants import check_all

    check_all(sim)


def test_no_compression_when_nothing_compresses() -> None:
    sim = _backed_vm(0.0)
    a = sim.vms[0].arrays
    hostmm.host_reclaim(a, sim.host, 10 * MB, True, True, 10**9)
    assert a.vc[C_ZIPPED] == 0 and a.vc[C_SWAPPED] > 0


def test_compression_saves_memory_in_a_run() -> None:
    r = vmemsim.simulate(small(duration="20s", vm=[
        {**v, "compressible": 1.0} for v in small().model_dump()["vm"]]))
    assert r.vms["zip_pages"].sum() > 0
    assert (r.vms["zip_mb"] <= r.vms["cachesz_mb"] + 1e-9).all()


def test_decompression_and_swap_in_on_touch() -> None:
    r = vmemsim.simulate(small(duration="20s"))
    assert r.vms["swin_pages"].sum() > 0 or r.vms["unzip_pages"].sum() > 0


# ---- double paging and blocking --------------------------------------------------------------
def test_double_paging_is_counted() -> None:
    # No balloon driver anywhere, and guests that page on their own: the guest picks pages the
    # host already swapped out.
    vms = small().model_dump()["vm"]
    for v in vms:
        v["tools"] = False
        v["process"][0]["size"] = 80 << 20
        v["process"][0]["workload"] = "uniform"
        v["process"][0]["rate"] = 50_000.0
        v["process"][0]["cpu"] = 1.0
    r = vmemsim.simulate(small(duration="20s", vm=vms))
    assert sum(v["double_paging"] for v in r.summary["vms"]) > 0


def test_blocking_in_the_low_state() -> None:
    # Reclamation too slow for the demand: the host reaches low and blocks VMs above target.
    host = {"swap_device": {"latency": "10ms", "iops": "100/s"}}
    hv = {"balloon": False, "compression": False}
    on = vmemsim.simulate(small(duration="15s", host=host, hypervisor=hv))
    off = vmemsim.simulate(small(duration="15s", host=host,
                                 hypervisor={**hv, "blocking": False}))
    assert "low" in on.summary["host"]["states_seen"]
    assert on.vms["blocked_s"].sum() > off.vms["blocked_s"].sum()


def test_limit_is_enforced_without_host_pressure() -> None:
    # A 64 MiB VM limited to 40 MiB on a roomy host: ESX reclaims above a limit in any state.
    sc = small(duration="30s", host={"memory": "512MiB"},
               vm=[{"name": "lim", "memory": "64MiB", "limit": "40MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB"},
                    "process": [{"workload": "uniform", "size": "50MiB", "rate": "100k/s"}]}])
    r = vmemsim.simulate(sc)
    assert set(r.host["state"]) == {"high"}
    last = r.vms.iloc[-1]
    assert last["consumed_mb"] <= 40 * 1.05
    assert last["mctlsz_mb"] > 10  # by ballooning, the driver being there
