"""The foundation: two translations, demand allocation, guest paging, time, conservation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vmemsim
from helpers import BASE, assert_same_run, merge, sigint_default, sigint_raises, small
from vmemsim.baseline import BASE_COLUMNS, baseline_groups, baseline_run, untouched
from vmemsim.cli import main
from vmemsim.config.schema import Scenario
from vmemsim.engine import Simulation
from vmemsim.invariants import check_all
from vmemsim.kernels.layout import (
    C_BACKED,
    C_GFAULT,
    C_GFREE_N,
    C_HV_FIRST,
    G_BALLOON,
    G_KIND,
    H_MASK,
    H_SWAPPED,
    H_UNBACKED,
    PS_REFS,
)

NO_RECLAIM = {"balloon": False, "swap": False, "compression": False}


def _one_vm(proc: dict, **vm: object) -> dict:
    return {"name": "solo", "memory": "64MiB", "overhead": "2MiB",
            "guest": {"kernel": "4MiB", "swap": "64MiB"}, "process": [proc], **vm}


def test_check_every_n_ticks_and_after_the_last(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """check=N verifies the invariants every N ticks and after the last tick, through the API
    and `vmemsim run --check-every`; True is every tick; a bad value is a clear error."""
    import vmemsim.invariants as inv

    seen: list[int] = []

    def counting(sim: Simulation) -> None:
        seen.append(sim.tick)
        check_all(sim)

    monkeypatch.setattr(inv, "check_all", counting)
    sc = small(duration="2s")  # 20 ticks
    Simulation(sc, check=3).run()
    assert seen == [3, 6, 9, 12, 15, 18, 20]
    seen.clear()
    Simulation(sc, check=True).run()
    assert seen == list(range(1, 21))
    seen.clear()
    Simulation(sc, check=False).run()
    assert seen == []
    Simulation(sc, check=np.int64(10)).run()
    assert seen == [10, 20]
    seen.clear()
    for bad in (-1, "often", 2.5):
        with pytest.raises(ValueError, match="check must be"):
            Simulation(sc, check=bad)  # type: ignore[arg-type]
    assert main(["run", "default", "--duration", "1s", "--check-every", "4", "--serial",
                 "--out", str(tmp_path / "out"), "--quiet", "--no-report"]) == 0
    assert seen == [4, 8, 10]


def test_demand_allocation_and_both_translations() -> None:
    sc = small(vm=[_one_vm({"workload": "uniform", "size": "8MiB", "rate": "50k/s"})],
               duration="4s")
    sim = Simulation(sc, check=True)
    sim.run()
    a = sim.vms[0].arrays
    touched_vpns = int((a.pt >= 0).sum())
    assert touched_vpns == 2048  # 8 MiB uniformly touched 200k times: every page
    assert a.vc[C_GFAULT] == touched_vpns  # one guest fault per first touch of a GVPN
    # Machine pages back exactly the guest kernel plus the touched pages, each allocated once
    # by a hypervisor first-touch fault; the rest of guest-physical memory stays unbacked.
    assert a.vc[C_BACKED] == sim.vms[0].kernel_pages + touched_vpns
    assert a.vc[C_HV_FIRST] == a.vc[C_BACKED]
    assert int(((a.pstate & H_MASK) == H_UNBACKED).sum()) == 16384 - a.vc[C_BACKED]
    # Both levels agree: each mapped GVPN's GPPN has an MPN whose reverse map points back.
    g = a.pt[a.pt >= 0]
    m = a.pmap[g]
    assert (sim.host.rmap_gppn[m] == g).all() and (sim.host.rmap_vm[m] == 0).all()


def test_guest_pages_to_its_own_swap() -> None:
    # A 100 MiB process in a 64 MiB guest: the guest's policy evicts to the guest swap.
    fast_disk = {"latency": "50us", "iops": "100k/s"}
    sc = small(vm=[_one_vm({"workload": "uniform", "size": "100MiB", "rate": "50k/s"},
                           guest={"kernel": "4MiB", "swap": "128MiB", "policy": "lru",
                                  "swap_device": fast_disk})],
               host={"memory": "256MiB"}, duration="5s")
    r = vmemsim.simulate(sc, check=True)
    v = r.summary["vms"][0]
    assert v["guest_swap_out"] > 0 and v["guest_swap_in"] > 0
    assert v["swout_pages"] == 0  # the host had memory to spare
    assert r.vms["guest_swapped_mb"].iloc[-1] > 30


def test_no_overallocation_and_blocking_without_reclamation() -> None:
    sc = small(hypervisor=NO_RECLAIM, duration="6s")
    sim = Simulation(sc, check=True)
    r = sim.run()
    assert r.host["free_mb"].min() >= 0
    assert sim.free_pages == 0  # the host ran out...
    assert r.vms["blocked_s"].sum() > 0  # ...and VMs waited instead of over-allocating
    assert "low" in r.summary["host"]["states_seen"]


def test_boot_touch_backs_all_memory() -> None:
    sc = small(vm=[_one_vm({"workload": "idle", "size": "4MiB"},
                           guest={"kernel": "4MiB", "boot_touch": True})],
               host={"memory": "256MiB"}, duration="3s")
    r = vmemsim.simulate(sc)
    assert r.vms["grant_mb"].iloc[-1] == pytest.approx(64.0)


def test_same_seed_same_results_other_seed_differs() -> None:
    a = vmemsim.simulate(small(duration="5s"))
    b = vmemsim.simulate(small(duration="5s"))
    c = vmemsim.simulate(small(duration="5s", seed=8))
    pd.testing.assert_frame_equal(a.vms, b.vms)
    pd.testing.assert_frame_equal(a.host, b.host)
    assert not a.vms["refs"].equals(c.vms["refs"])


@pytest.mark.parametrize("hv", [{}, NO_RECLAIM], ids=["reclaim", "block"])
def test_loading_ahead_does_not_change_the_references(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, hv: dict) -> None:
    """The look-ahead draws references into a ring before their use and rewinds the stream to
    the first one unused when a tick ends or the vCPU blocks: every result, and every page's
    state, must be the same with it on for all processes as with it off. Distances up to the
    ring's size (32: each step draws into the slot it has just read), odd ones, and a replayed
    trace (which loads half as far ahead)."""
    procs = [{"name": d, "workload": d, "size": "12MiB", "rate": "40k/s", "write_frac": 0.4}
             for d in ("uniform", "zipf", "hotcold")]
    procs.append({"name": "scan", "workload": "scan", "size": "6MiB", "rate": "40k/s"})
    procs.append({"name": "hog", "workload": "hog", "size": "20MiB", "wss": "2MiB",
                  "ramp": "5s", "dist": "hotcold", "rate": "40k/s"})
    trace = tmp_path / "t.txt"
    ids = np.random.default_rng(3).zipf(1.2, 20_000) % 2000
    trace.write_text("\n".join(map(str, ids.tolist())) + "\n")
    procs.append({"name": "trace", "workload": "trace", "trace": str(trace), "size": "8MiB",
                  "rate": "40k/s", "loop": True})
    vms = [{**BASE["vm"][0], "process": procs}, *BASE["vm"][1:]]
    sc = small(vm=vms, duration="12s", hypervisor=hv)  # overcommitted

    def run(far: int) -> tuple[vmemsim.Result, Simulation]:
        monkeypatch.setattr("vmemsim.kernels.refpath.lookahead", lambda *args: far)
        sim = Simulation(sc)
        return sim.run(), sim

    off, s_off = run(0)
    # the paths that stop a tick early, or take a reference out of turn, were exercised
    assert off.vms["blocked_s" if hv else "swin_pages"].sum() > 0
    trace_row = s_off.vms[0].threads[len(procs) - 1][0]
    assert s_off.th.ps[trace_row, PS_REFS] > 0  # and the trace was replayed
    for far in (3, 8, 16, 31, 32):
        on, s_on = run(far)
        pd.testing.assert_frame_equal(on.vms, off.vms)
        pd.testing.assert_frame_equal(on.host, off.host)
        for a, b in zip(s_on.vms, s_off.vms, strict=True):
            for name in ("pt", "pstate", "pmap", "vc"):
                np.testing.assert_array_equal(getattr(a.arrays, name), getattr(b.arrays, name))
        np.testing.assert_array_equal(s_on.th.wrng[:, :4], s_off.th.wrng[:, :4])


def test_bound_timeline_gives_the_dispatchers_results(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """engine calls the timeline through its compiled entry (jit.bind), not numba's
    dispatcher: the same code for the same types, so the same results."""
    from vmemsim.kernels import timeline

    sc = small(duration="4s")
    bound = Simulation(sc)
    r1 = bound.run()
    assert bound._timeline is not timeline.run_timeline
    monkeypatch.setattr("vmemsim.engine.bind", lambda dispatcher, *args: dispatcher)
    r2 = Simulation(sc).run()
    pd.testing.assert_frame_equal(r1.vms, r2.vms)
    pd.testing.assert_frame_equal(r1.host, r2.host)


def test_baseline_beside_the_run_gives_the_same_results_as_after_it() -> None:
    sc = small(baseline=True, duration="6s")
    beside = vmemsim.simulate(sc, parallel=True)
    after = vmemsim.simulate(sc, parallel=False)
    pd.testing.assert_frame_equal(beside.vms, after.vms)
    assert beside.vms["base_throughput"].notna().all()
    assert [v["slowdown"] for v in beside.summary["vms"]] == \
        [v["slowdown"] for v in after.summary["vms"]]


def test_baseline_groups_on_the_workers_are_the_whole_baseline() -> None:
    """In groups of VMs, each on its own host and on the runner's workers, the baseline is the
    same as in one run: on an ample host the VMs do not interact, and each draws the same
    streams in any group (they are named by the VM's name)."""
    from vmemsim.baseline import Baseline

    sc = small(baseline=True, duration="4s")
    baseline = Baseline(sc, parallel=True, cache=False)
    assert baseline.runner is not None and len(baseline.groups) > 1
    base = baseline.result(sc.duration)  # no run given: every VM's baseline is computed
    assert baseline.runner is None  # closed
    whole = baseline_run(sc, sc.duration, (0, 1, 2))  # one simulation of all three
    pd.testing.assert_frame_equal(base.vms, whole.vms[BASE_COLUMNS])
    # in this process, one group after another (the serial path)
    assert_same_run(baseline_run(sc, sc.duration).vms, whole.vms)


def test_a_dead_workers_group_runs_here() -> None:
    """A worker killed (out of memory) fails its group's future: that group runs in this
    process, with a warning, and the baseline is still the whole one's."""
    from vmemsim.baseline import Baseline
    from vmemsim.runner import kill_worker

    sc = small(baseline=True, duration="6s")
    baseline = Baseline(sc, parallel=True, cache=False)
    deadline = time.time() + 120
    while not baseline.runner.worker_pids() and time.time() < deadline:
        time.sleep(0.05)
    for pid in baseline.runner.worker_pids():
        kill_worker(pid)
    with pytest.warns(UserWarning, match="running it here"):
        base = baseline.result(sc.duration)
    whole = baseline_run(sc, sc.duration, (0, 1, 2))
    pd.testing.assert_frame_equal(base.vms, whole.vms[BASE_COLUMNS])


def _random_vm(rng: np.random.Generator, k: int) -> dict:
    size = int(rng.integers(4, 60))
    proc = {"name": "p", "workload": str(rng.choice(["uniform", "zipf", "hotcold", "scan"])),
            "size": f"{size}MiB", "rate": f"{int(rng.integers(10, 80))}k/s"}
    if rng.random() < 0.3:
        proc["stop"] = f"{int(rng.integers(5, 15))}s"
    return {"name": f"v{k}", "memory": "64MiB", "overhead": "2MiB",
            "tools": bool(rng.random() < 0.7), "start": f"{int(rng.integers(0, 3))}s",
            "guest": {"kernel": "4MiB", "swap": "64MiB", "boot_touch": bool(rng.random() < 0.2),
                      "policy": str(rng.choice(["clock", "lru", "fifo", "random"]))},
            "process": [proc]}


def test_an_untouched_vms_run_is_its_baseline() -> None:
    """baseline.untouched: a VM the hypervisor never acted on makes, each second, exactly the
    references its baseline (computed: the VMs on an ample host) makes. Random small scenarios,
    from roomy hosts to hosts that reach hard; both kinds of VMs must occur."""
    rng = np.random.default_rng(11)
    kinds = {"untouched, under pressure": 0, "touched": 0}
    for case in range(16):
        vms = [_random_vm(rng, k) for k in range(int(rng.integers(2, 5)))]
        mem = int(rng.integers(22, 48)) * len(vms) + 24
        sc = small(vm=vms, host={"memory": f"{mem}MiB"}, baseline=True, duration="20s",
                   seed=case, tick=str(rng.choice(["50ms", "100ms", "200ms"])),
                   hypervisor={"thresholds": str(rng.choice(["seed", "vsphere"])),
                               # under pressure TPS breaks every VM's large pages: none
                               # would stay untouched
                               "page_sharing": case % 4 == 0})
        sim = Simulation(sc)
        run = sim.run()
        full = baseline_run(sc, sc.duration)
        calm = run.summary["host"]["states_seen"] == ["high"]
        for i, vm in enumerate(sc.vm):
            mine = run.vms[run.vms["vm"] == vm.name]["refs"].to_numpy()
            base = full.vms[full.vms["vm"] == vm.name]["refs"].to_numpy()
            if i in untouched(sim):
                assert (mine == base).all(), (case, vm.name)
                kinds["untouched, under pressure"] += not calm
            else:
                kinds["touched"] += 1
    assert min(kinds.values()) >= 3, kinds


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    # the baseline's plan (one group per VM here) as on two cores, whatever this machine has
    from vmemsim import _fork

    monkeypatch.setattr(_fork, "cores", lambda: 2)


@pytest.mark.parametrize("parallel", [False, True])
def test_simulate_runs_only_the_baselines_it_needs(parallel: bool, two_cores: None) -> None:
    """A's 48 MiB fit beside the others on this host: the hypervisor never acts on it, and its
    own run is its baseline; b and c are ballooned. The result is the computed baseline's."""
    # Without large pages (soft would break them in every VM, a's too), TPS finds nothing to
    # share in a: its kernel's and process's pages are each unique.
    sc = small(baseline=True, duration="20s", host={"memory": "200MiB"},
               hypervisor={"large_pages": False})
    r = vmemsim.simulate(sc, parallel=parallel, cache=False)
    full = baseline_run(sc, sc.duration)
    assert "soft" in r.summary["host"]["states_seen"]
    by = full.vms.set_index(["time_s", "vm"])["throughput"]
    want = by.reindex(pd.MultiIndex.from_frame(r.vms[["time_s", "vm"]])).to_numpy()
    assert (r.vms["base_throughput"].to_numpy() == want).all()
    assert r.summary["baseline_from_run"] == ["a"]


def test_the_baseline_runs_first_what_the_hypervisor_acts_on_and_drops_the_rest(
        two_cores: None) -> None:
    from vmemsim.baseline import Baseline

    sc = small(baseline=True, duration="20s", host={"memory": "200MiB"},
               hypervisor={"large_pages": False})  # (TPS: as above)
    baseline = Baseline(sc, parallel=True, cache=False)
    assert baseline.runner is not None and sorted(baseline.groups) == [(0,), (1,), (2,)]
    sim = Simulation(sc)
    baseline.watch(sim)
    sim.run()
    assert baseline.urgent == {(1,), (2,)}  # b and c were ballooned; a never touched
    assert untouched(sim) == (0,)
    base = baseline.result(sim.time_s, run=sim)
    assert baseline.from_run == ["a"] and baseline.runner is None
    full = baseline_run(sc, sc.duration)
    pd.testing.assert_frame_equal(base.vms, full.vms[BASE_COLUMNS])


def test_a_run_stopped_early_runs_only_the_baselines_it_needs() -> None:
    from vmemsim.baseline import Baseline

    sc = small(baseline=True, duration="40s", host={"memory": "200MiB"},
               hypervisor={"large_pages": False})  # (TPS: as above)
    baseline = Baseline(sc, parallel=True, cache=False)
    sim = Simulation(sc)
    baseline.watch(sim)
    for _ in range(20):
        sim.step_second()
    sim.interrupted = True  # as a Ctrl-C would
    assert 0 < len(untouched(sim)) < len(sc.vm)
    base = baseline.result(sim.time_s, stopped_early=True, run=sim)
    assert baseline.runner is None  # cancelled: it runs whole runs; the needed ones ran here
    assert baseline.from_run == [sc.vm[i].name for i in untouched(sim)]
    full = baseline_run(sc, sim.time_s)
    pd.testing.assert_frame_equal(base.vms, full.vms[BASE_COLUMNS])


def test_baseline_groups_balance_the_work_and_keep_dependent_vms_together() -> None:
    procs = [{"name": "p", "workload": "uniform", "size": "4MiB", "rate": f"{r}k/s"}
             for r in (10, 40, 20, 30)]
    vms = [{"name": f"v{i}", "memory": "16MiB", "overhead": "1MiB",
            "guest": {"kernel": "2MiB", "swap": "16MiB"}, "process": [p]}
           for i, p in enumerate(procs)]
    sc = small(vm=vms)
    assert baseline_groups(sc, 2) == [(0, 1), (2, 3)]  # 10 + 40 against 20 + 30
    assert baseline_groups(sc, 1) == [(0, 1, 2, 3)]
    assert len(baseline_groups(sc, 16)) == 4
    # A VM over its limit is swapped by the host even on an ample host, through the host's
    # one swap device: the VMs are then not independent, and the baseline runs whole.
    vms[2]["limit"] = "8MiB"
    assert baseline_groups(small(vm=vms), 2) == [(0, 1, 2, 3)]
    # An idle process counts its 2% of a vCPU, not a whole one.
    vms[2].pop("limit")
    vms[3]["process"] = [{**procs[3], "workload": "idle", "rate": "100k/s"}]
    assert baseline_groups(small(vm=vms), 2) == [(1,), (0, 2, 3)]  # 40 against 10 + 20 + 2


def test_baseline_stays_whole_when_even_an_ample_host_reclaims() -> None:
    """Thresholds that high send the ample host into soft, where targets, balloon and swap make
    the VMs interact: split into groups, each on its own host, they would not be the same."""
    sc = small(baseline=True, duration="10s", hypervisor={"soft_pct": 47})
    assert baseline_groups(sc, 2) == [(0, 1, 2)]
    whole = baseline_run(sc, sc.duration, (0, 1, 2))
    assert "soft" in whole.summary["host"]["states_seen"]  # the premise: it does reclaim
    assert_same_run(baseline_run(sc, sc.duration).vms, whole.vms)


def test_ctrl_c_while_waiting_for_the_baseline_returns_at_once() -> None:
    from vmemsim.baseline import Baseline

    sc = small(baseline=True, duration="2h")  # a worker's group would run for minutes
    baseline = Baseline(sc, parallel=True, cache=False)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    with sigint_raises():  # even if this process was started with SIGINT ignored
        timer.start()
        t0 = time.perf_counter()
        assert baseline.result(sc.duration) is None  # as an interrupted serial baseline
        assert time.perf_counter() - t0 < 30
    assert baseline.runner is None


def test_a_baseline_worker_dies_with_its_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    here = str(Path(__file__).parent)
    script.write_text(
        "import os, signal, sys, time\n"
        f"sys.path.insert(0, {here!r})\n"
        "from helpers import small\n"
        "from vmemsim.baseline import Baseline\n"
        "b = Baseline(small(baseline=True, duration='2h'), parallel=True, cache=False)\n"
        "while not b.runner.worker_pids(): time.sleep(0.05)\n"
        "print(*b.runner.worker_pids(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       timeout=120)
    children = [int(pid) for pid in p.stdout.split()]
    assert children

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.time() + 10
    while time.time() < deadline and any(alive(c) for c in children):
        time.sleep(0.1)
    assert not any(alive(c) for c in children), "a baseline worker outlived its parent"


def test_simulate_in_a_pool_worker_runs_the_baseline_serially() -> None:
    # A pool's workers are daemonic and may not fork: simulate() must not try.
    import multiprocessing as mp

    with mp.get_context("fork").Pool(1) as pool:
        summary = pool.apply(_slowdowns, (small(baseline=True, duration="3s"),))
    assert all(np.isfinite(summary))


def test_a_finished_simulation_is_freed_with_its_last_reference() -> None:
    """No reference cycle keeps a run's arrays: runs one after another in a process (vmemsim
    compare, a sweep) would otherwise hold them all until the collector's next full pass."""
    import gc
    import weakref

    sim = Simulation(small(duration="2s"))
    sim.run()
    sim.result()
    ref = weakref.ref(sim)
    gc.disable()
    try:
        del sim
        assert ref() is None
    finally:
        gc.enable()


def _slowdowns(sc: Scenario) -> list[float]:
    return [v["slowdown"] for v in vmemsim.simulate(sc).summary["vms"]]


def test_slowdown_is_one_on_an_ample_host_and_above_one_under_pressure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # On an ample host the hypervisor acts on no VM, so each would take its own run as its
    # baseline (baseline.untouched) and the slowdown would be its throughput over itself:
    # here every baseline is computed, on the baseline's own host, and compared.
    monkeypatch.setattr("vmemsim.baseline.untouched", lambda sim: ())
    ample = vmemsim.simulate(small(baseline=True, host={"memory": "512MiB"}, duration="5s"))
    assert ample.summary["baseline_from_run"] == []
    for v in ample.summary["vms"]:
        assert v["slowdown"] == pytest.approx(1.0, abs=1e-12)  # same references, same costs
    tight = vmemsim.simulate(small(baseline=True, duration="10s"))
    worst = max(v["slowdown"] for v in tight.summary["vms"])
    assert worst > 1.05
    assert tight.vms["base_throughput"].notna().all()


def test_counters_add_up() -> None:
    # The recorder defines used_mb as total - free, and the host's swapped_mb and balloon_mb
    # as the VMs' sums: comparing those with each other cannot fail. They are checked against
    # the host's size and, at the end, against the pages' states.
    sc = small(duration="10s")
    sim = Simulation(sc)
    r = sim.run()
    h = r.host
    assert (h["total_mb"] == sc.host.memory / 2**20).all()
    end = r.vms[r.vms["time_s"] == r.vms["time_s"].max()].set_index("vm")
    swapped = ballooned = 0
    for v in sim.vms:
        a = v.arrays
        sw = int(((a.pstate & H_MASK) == H_SWAPPED).sum())
        bl = int(((a.pstate & G_KIND) == G_BALLOON).sum())
        assert end.loc[v.cfg.name, "swcur_mb"] == sw / 256
        assert end.loc[v.cfg.name, "mctlsz_mb"] == bl / 256
        swapped, ballooned = swapped + sw, ballooned + bl
    assert swapped > 0 and ballooned > 0  # the premise: both mechanisms hold pages
    assert h["swapped_mb"].iloc[-1] == pytest.approx(swapped / 256)
    assert h["balloon_mb"].iloc[-1] == pytest.approx(ballooned / 256)
    vms = r.vms
    assert (vms["consumed_mb"] >= vms["grant_mb"]).all()
    assert (vms["grant_mb"] + vms["mctlsz_mb"] <= vms["memsz_mb"] + 1e-9).all()
    # every kind of hypervisor fault counted, and nothing else (docs/outputs.md)
    assert (vms["hv_faults"] == vms["hv_first_touch"] + vms["hv_sample_faults"]
            + vms["swin_pages"] + vms["unzip_pages"]).all()
    # Machine memory used = vmkernel + overheads + what VMs consume.
    used_by_vms = r.vms.groupby("time_s")["consumed_mb"].sum().to_numpy()
    assert np.allclose(h["used_mb"], h["vmk_mb"] + h["overhead_mb"] + used_by_vms)


workload = st.sampled_from(["uniform", "zipf", "hotcold", "scan", "idle", "hog"])


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    vms = []
    for i in range(draw(st.integers(1, 3))):
        mem = draw(st.integers(16, 64))
        size = draw(st.integers(4, mem + 24))
        vms.append({
            "name": f"v{i}", "memory": f"{mem}MiB", "overhead": "1MiB",
            "tools": draw(st.booleans()),
            "compressible": draw(st.sampled_from([0.0, 0.5, 1.0])),
            "guest": {"kernel": "2MiB", "swap": f"{mem + 32}MiB",
                      "policy": draw(st.sampled_from(["clock", "lru", "fifo", "random"])),
                      "boot_touch": draw(st.booleans())},
            "process": [{"name": "p", "workload": draw(workload), "size": f"{size}MiB",
                         "rate": "20k/s", "write_frac": draw(st.sampled_from([0.0, 0.5])),
                         "ramp": "2s"}],
        })
    return {
        "name": "prop", "seed": draw(st.integers(0, 1000)), "duration": "4s",
        "baseline": False,
        "host": {"memory": f"{draw(st.integers(40, 160))}MiB", "vmkernel": "8MiB",
                 "swap_device": {"latency": "1ms", "iops": "20k/s"}},
        "hypervisor": {"sample_period": "1s", "balance_period": "1s",
                       "thresholds": draw(st.sampled_from(["seed", "vsphere"])),
                       "balloon": draw(st.booleans()), "swap": draw(st.booleans()),
                       "compression": draw(st.booleans())},
        "vm": vms,
    }


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_conservation_property(data: dict) -> None:
    """Every tick: each machine page free or owned once; each guest page's content in exactly
    one place; counters equal to what the arrays hold (vmemsim.invariants.check_all)."""
    sc = vmemsim.scenario_from_dict(data)
    try:
        sim = Simulation(sc, check=True)
    except ValueError:
        return  # admission control or an impossible guest: rejected up front, by design
    sim.run()
    check_all(sim)
    assert sim.recorder.host_rows[-1]["time_s"] == pytest.approx(4.0)


def _write_small(tmp_path: Path, **over: object) -> Path:
    import tomli_w

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(merge(BASE, over)))
    return path


def test_cli_run_writes_results(tmp_path: Path) -> None:
    sc = _write_small(tmp_path, duration="6s", baseline=True)
    out1, out2 = tmp_path / "r1", tmp_path / "r2"
    assert main(["run", str(sc), "--out", str(out1), "--quiet", "--no-report"]) == 0
    assert main(["run", str(sc), "--out", str(out2), "--quiet", "--no-report"]) == 0
    for name in ("host.csv", "vms.csv", "esxtop.csv", "host.parquet", "vms.parquet"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes(), name
    s1 = json.loads((out1 / "summary.json").read_text())
    s2 = json.loads((out2 / "summary.json").read_text())
    for s in (s1, s2):  # only the wall-clock fields may differ between identical runs
        s.pop("wall_s")
        s.pop("speed_x_realtime")
    assert s1 == s2
    assert s1["complete"] is True and s1["simulated_s"] == 6.0
    host = pd.read_csv(out1 / "host.csv")
    assert list(host.columns[:6]) == ["time_s", "state", "free_mb", "free_pct", "minfree_mb",
                                      "used_mb"]
    assert len(host) == 6
    vms = pd.read_csv(out1 / "vms.csv")
    assert len(vms) == 18 and set(vms["vm"]) == {"a", "b", "c"}
    v = s1["vms"][0]
    for key in ("refs", "throughput", "slowdown", "guest_faults", "hv_faults", "verdict"):
        assert key in v


def test_cli_report_drawn_beside_the_baseline_is_the_same(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # `vmemsim run` draws the figures that need no baseline in a forked process while the
    # baseline finishes; they must be the figures the same run draws in one process.
    from vmemsim import _fork
    from vmemsim.report import plots

    sc = _write_small(tmp_path, duration="4s", baseline=True)
    jobs: list[plots.FigureJob] = []
    init = plots.FigureJob.__init__

    def spy(self: plots.FigureJob, *a: object, **k: object) -> None:
        init(self, *a, **k)  # type: ignore[arg-type]
        jobs.append(self)

    monkeypatch.setattr(plots.FigureJob, "__init__", spy)
    monkeypatch.setattr(_fork, "can_fork", lambda: True)
    assert main(["run", str(sc), "--out", str(tmp_path / "fork"), "--quiet"]) == 0
    monkeypatch.setattr(_fork, "can_fork", lambda: False)  # no fork: neither job forks
    assert main(["run", str(sc), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert [j.forked for j in jobs] == [True, False]
    assert jobs[0].status == "ok"  # the child drew them: the parent did not draw them again
    for name in plots.FIGURES:
        assert (tmp_path / "fork" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    html = (tmp_path / "fork" / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(plots.FIGURES)
    assert not list((tmp_path / "fork").glob(".*"))  # no temporary file left


@pytest.mark.parametrize("baseline", [False, True])
def test_ctrl_c_leaves_valid_partial_results(tmp_path: Path, baseline: bool) -> None:
    # With a baseline, its 2 h run was started beside the scenario's in a second process: the
    # interruption must stop it and compute the baseline up to the time reached instead.
    sc = _write_small(tmp_path, duration="2h", baseline=baseline)
    out = tmp_path / "r"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "vmemsim.cli", "run", str(sc), "--out", str(out),
                          "--quiet", "--no-report", "--checkpoint", "0.5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=sigint_default)  # Ctrl-C reaches it, however we started
    # Wait until the run is under way: its first checkpoint (kernels may be compiling first).
    deadline = time.time() + 600
    while time.time() < deadline and p.poll() is None and not (out / "summary.json").exists():
        time.sleep(0.2)
    partial = json.loads((out / "summary.json").read_text())
    assert partial["complete"] is False and partial["simulated_s"] > 0
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    assert 0 < summary["simulated_s"] < 7200
    host = pd.read_csv(out / "host.csv")
    assert len(host) == int(summary["simulated_s"])
    assert not list(out.glob(".*.tmp"))  # no half-written files left behind
    slowdowns = [v["slowdown"] for v in summary["vms"] if v["throughput"] > 0]
    assert slowdowns and all(np.isfinite(slowdowns)) == baseline


def test_process_exit_frees_guest_memory_but_not_machine_memory() -> None:
    sc = small(duration="8s", host={"memory": "256MiB"},
               vm=[_one_vm({"workload": "uniform", "size": "40MiB", "rate": "100k/s",
                            "stop": "4s"})])
    sim = Simulation(sc, check=True)
    r = sim.run()
    a = sim.vms[0].arrays
    assert (a.pt == -1).all()  # the page tables are empty...
    assert int(a.vc[C_GFREE_N]) == 16384 - sim.vms[0].kernel_pages  # ...every frame free again...
    assert r.vms["grant_mb"].iloc[-1] == pytest.approx(r.vms["grant_mb"].iloc[3])  # host: backed
    assert r.vms[r.vms["time_s"] > 4]["refs"].sum() == 0
