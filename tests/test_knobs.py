"""Knobs that do nothing are defects: every field of the scenario schema changes a result, or
is listed below as cosmetic with the reason. Also the two knobs that did nothing before:
`hypervisor.zip_threshold` (compressed sizes and cache slots) and `guest.os` (OS presets)."""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

import vmemsim
from helpers import small
from vmemsim.build import kernel_bytes
from vmemsim.config.loader import scenario_from_dict
from vmemsim.config.schema import OS_PRESETS, GuestConfig, Scenario, VMConfig
from vmemsim.engine import Simulation
from vmemsim.invariants import check_all
from vmemsim.kernels import hostmm
from vmemsim.kernels.layout import C_BACKED, C_ZIP_MPNS, C_ZIPPED, H_MASK, H_UNBACKED
from vmemsim.kernels.rng import mix64

MB = 256  # pages per MiB


# ---- zip_threshold: compressed sizes and cache slots ------------------------------------------
def test_fit_share_is_the_compressible_share_at_2k_and_grows_with_the_threshold() -> None:
    for c in (0.0, 0.3, 0.5, 1.0):
        assert hostmm.fit_share(c, 0.5) == pytest.approx(c)
        assert hostmm.fit_share(c, 1.0) == pytest.approx(1.0)
        shares = [hostmm.fit_share(c, z) for z in np.linspace(0.01, 1.0, 50)]
        assert shares == sorted(shares)
    assert hostmm.fit_share(0.5, 0.25) == pytest.approx(0.25)
    assert hostmm.fit_share(0.5, 0.75) == pytest.approx(0.75)


def test_compressed_sizes_follow_the_distribution() -> None:
    """The per-page size (F^-1 of the page's hash) puts `compressible` of the pages at or under
    2 KiB, and a page fits a slot exactly when its size is at most zip_threshold."""
    seed = np.uint64(12345)
    u = np.array([float(mix64(seed ^ np.uint64(g))) / 2.0**64 for g in range(20000)])
    for c in (0.2, 0.5, 0.9):
        size = np.array([hostmm.compressed_size(c, x) for x in u])
        assert (size <= 0.5).mean() == pytest.approx(c, abs=0.02)
        for z in (0.25, 0.5, 0.7):
            fits = u < hostmm.fit_share(c, z)
            # The kernels' hash test and the sizes agree, but for float ties at the boundary.
            assert (fits != (size <= z)).sum() <= 2


def test_slots_per_page() -> None:
    assert [hostmm.slots_per_page(z) for z in (0.5, 0.25, 0.3, 0.34, 1.0, 0.1)] == \
        [2, 4, 3, 2, 1, 10]


def _zip_vm(zip_threshold: float) -> Simulation:
    sc = small(duration="3s", host={"memory": "256MiB"},
               hypervisor={"zip_max_pct": 10, "zip_threshold": zip_threshold},
               vm=[{"name": "g", "memory": "64MiB", "overhead": "1MiB", "compressible": 0.5,
                    "guest": {"kernel": "2MiB", "boot_touch": True},
                    "process": [{"workload": "hotcold", "size": "32MiB", "rate": "100k/s"}]}])
    sim = Simulation(sc, check=True)
    sim.run()
    return sim


@pytest.mark.parametrize(("z", "per"), [(0.5, 2), (0.25, 4), (0.75, 1)])
def test_zip_threshold_sets_which_pages_are_kept_and_the_slot_geometry(z: float,
                                                                       per: int) -> None:
    sim = _zip_vm(z)
    a = sim.vms[0].arrays
    assert a.zowner.size == int(per * 64 * MB * 10 / 100)
    assert a.vc[C_BACKED] == 64 * MB
    want = 4 * MB
    hostmm.host_reclaim(a, sim.host, want, True, False, 10**9)  # compression only
    zipped = int(a.vc[C_ZIPPED])
    mpns = int(a.vc[C_ZIP_MPNS])
    assert zipped > 0
    # The cache holds ceil(zipped / per) machine pages: `per` compressed pages share one.
    assert mpns == -(-zipped // per)
    # The compressed pages are those that fit the threshold, and only they.
    z_g = np.flatnonzero((a.pstate & H_MASK) == 3)
    seed = a.content[0]
    share = hostmm.fit_share(0.5, z)
    for g in z_g[:200]:
        assert float(mix64(seed ^ np.uint64(g))) / 2.0**64 < share
    check_all(sim)


# ---- guest.os presets -------------------------------------------------------------------------
def test_os_preset_fills_what_the_scenario_leaves_out() -> None:
    lin, win = GuestConfig(), GuestConfig.model_validate({"os": "windows"})
    assert (lin.boot_touch, lin.swap_cluster, lin.free_low_pct) == (False, 32, 2.0)
    assert (win.boot_touch, win.swap_cluster, win.free_low_pct, win.free_high_pct) == \
        (True, 16, 3.0, 5.0)
    # A value the scenario sets wins over the preset.
    own = GuestConfig.model_validate({"os": "windows", "boot_touch": False, "swap_cluster": 8})
    assert (own.boot_touch, own.swap_cluster, own.free_high_pct) == (False, 8, 5.0)
    # Kernel size: the preset's share of memory, clipped, unless given.
    vm = {"name": "v", "memory": "2GiB", "process": [{"size": "1MiB"}]}
    assert kernel_bytes(VMConfig.model_validate(vm)) == int((2 << 30) * 0.03)
    assert kernel_bytes(VMConfig.model_validate({**vm, "guest": {"os": "windows"}})) == \
        int((2 << 30) * OS_PRESETS["windows"].kernel_pct / 100)
    assert kernel_bytes(VMConfig.model_validate(
        {**vm, "guest": {"os": "windows", "kernel": "4MiB"}})) == 4 << 20


def test_windows_guest_zeroes_its_memory_at_boot() -> None:
    def unbacked(os: str) -> int:
        sc = small(duration="3s", host={"memory": "256MiB"},
                   vm=[{"name": "w", "memory": "64MiB", "overhead": "1MiB",
                        "guest": {"os": os, "kernel": "2MiB"},
                        "process": [{"workload": "idle", "size": "8MiB"}]}])
        sim = Simulation(sc)
        sim.run()
        return int(((sim.vms[0].arrays.pstate & H_MASK) == H_UNBACKED).sum())

    assert unbacked("windows") == 0
    assert unbacked("linux") > 50 * MB


# ---- every schema field changes a result ------------------------------------------------------
# A small overcommitted host: one VM with a balloon driver, one without (swapped in soft).
WALK_BASE: dict[str, Any] = {
    "name": "knobs", "seed": 3, "duration": "6s", "tick": "100ms", "baseline": False,
    "host": {"memory": "112MiB", "vmkernel": "8MiB",
             "swap_device": {"latency": "1ms", "iops": "20k/s"}},
    "hypervisor": {"sample_period": "2s", "balance_period": "1s"},
    "vm": [
        {"name": "a", "memory": "64MiB", "overhead": "1MiB",
         "guest": {"kernel": "4MiB", "swap": "64MiB",
                   "swap_device": {"latency": "1ms", "iops": "20k/s"}},
         "process": [{"name": "p", "workload": "uniform", "size": "60MiB", "rate": "200k/s"}]},
        {"name": "b", "memory": "64MiB", "overhead": "1MiB", "tools": False,
         "guest": {"kernel": "4MiB", "swap": "64MiB",
                   "swap_device": {"latency": "1ms", "iops": "20k/s"}},
         "process": [{"name": "p", "workload": "hotcold", "size": "56MiB", "rate": "200k/s"}]},
    ],
}

Edit = Callable[[dict[str, Any]], None]


def _set(*path: str | int, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        for k in path[:-1]:
            d = d.setdefault(k, {}) if isinstance(k, str) else d[k]
        d[path[-1]] = value
    return edit


def top(k: str, v: Any) -> Edit:
    return _set(k, value=v)


def host(k: str, v: Any) -> Edit:
    return _set("host", k, value=v)


def hv(k: str, v: Any) -> Edit:
    return _set("hypervisor", k, value=v)


def cost(k: str, v: Any) -> Edit:
    return _set("costs", k, value=v)


def vm(k: str, v: Any, i: int = 0) -> Edit:
    return _set("vm", i, k, value=v)


def guest(k: str, v: Any, i: int = 0) -> Edit:
    return _set("vm", i, "guest", k, value=v)


def proc(k: str, v: Any, i: int = 0) -> Edit:
    return _set("vm", i, "process", 0, k, value=v)


# Contexts: edits made to both runs of a field, where the base scenario would not exercise it.
LOW = [host("memory", "90MiB")]  # deep enough to reach hard, and exhaust free memory
# The guest short of memory itself: it swaps out and back in all the time.
GUEST_SHORT = [vm("memory", "32MiB"), guest("kernel", "2MiB")]
PHASES = [proc("workload", "phases"),
          proc("schedule", [{"at": "0s", "wss": "20MiB"}, {"at": "3s", "wss": "40MiB"}])]
SCHED = "schedule"
# TPS without large pages, scanning each VM in 2 s: zero, OS image and application pages share.
SHARE = [hv("large_pages", False), hv("share_scan_time", "2s"), guest("boot_touch", True),
         guest("boot_touch", True, 1)]


def _trace_ctx(tmp: Path) -> list[Edit]:
    path = tmp / "t.csv"
    rng = np.random.default_rng(1)
    t = np.sort(rng.uniform(0, 4, 20000))
    ids = rng.integers(0, 4000, 20000)
    path.write_text("time,id\n" + "".join(f"{a:.6f},{b}\n" for a, b in zip(t, ids,
                                                                            strict=True)))
    return [proc("workload", "trace"), proc("trace", str(path)), proc("size", "40MiB")]


# field -> (context, the change): each changes the run's vms or host frame.
def walk_table(tmp: Path) -> dict[str, tuple[list[Edit], list[Edit]]]:
    tr = _trace_ctx(tmp)
    other = tmp / "u.csv"
    other.write_text("time,id\n" + "".join(f"{i / 5000:.6f},{i % 3000}\n"
                                           for i in range(20000)))
    return {
        "Scenario.seed": ([], [top("seed", 4)]),
        "Scenario.duration": ([], [top("duration", "5s")]),
        "Scenario.tick": ([], [top("tick", "50ms")]),
        "Scenario.baseline": ([], [top("baseline", True)]),
        "HostConfig.memory": ([], [host("memory", "120MiB")]),
        "HostConfig.vmkernel": ([], [host("vmkernel", "12MiB")]),
        "HostConfig.swap_device": ([], [host("swap_device", {"latency": "5ms"})]),
        "HypervisorConfig.thresholds": ([], [hv("thresholds", "vsphere")]),
        "HypervisorConfig.soft_pct": ([], [hv("soft_pct", 3.0)]),
        "HypervisorConfig.hard_pct": (LOW, [hv("hard_pct", 5.0)]),
        "HypervisorConfig.low_pct": (LOW, [hv("low_pct", 3.5)]),
        "HypervisorConfig.hysteresis": ([], [hv("hysteresis", 2.0)]),
        "HypervisorConfig.balance_period": ([], [hv("balance_period", "3s")]),
        "HypervisorConfig.idle_tax": ([vm("process", [{"name": "p", "workload": "idle",
                                                      "size": "32MiB"}], 1),
                                       guest("boot_touch", True, 1),
                                       hv("slow_gain", 0.9), hv("fast_gain", 0.9)],
                                      [hv("idle_tax", 0.0)]),
        "HypervisorConfig.sample_period": ([], [hv("sample_period", "1s")]),
        "HypervisorConfig.sample_size": ([], [hv("sample_size", 10)]),
        "HypervisorConfig.fast_gain": ([], [hv("fast_gain", 0.9)]),
        "HypervisorConfig.slow_gain": ([], [hv("slow_gain", 0.9)]),
        "HypervisorConfig.balloon": ([], [hv("balloon", False)]),
        "HypervisorConfig.ctl_max_pct": ([], [hv("ctl_max_pct", 5.0)]),
        "HypervisorConfig.balloon_poll": ([], [hv("balloon_poll", "2s")]),
        "HypervisorConfig.balloon_rate_min": ([], [hv("balloon_rate_min", 16),
                                                   hv("balloon_rate_max", 16)]),
        "HypervisorConfig.balloon_rate_max": ([], [hv("balloon_rate_max", 600)]),
        "HypervisorConfig.balloon_rate_nopressure": ([], [hv("balloon_rate_nopressure", 64)]),
        "HypervisorConfig.swap": ([], [hv("swap", False)]),
        "HypervisorConfig.swap_cluster": ([], [hv("swap_cluster", 1)]),
        "HypervisorConfig.swap_inflight": ([host("swap_device", {"latency": "20ms",
                                                                 "iops": "20k/s"})],
                                           [hv("swap_inflight", 1)]),
        "HypervisorConfig.compression": ([], [hv("compression", False)]),
        "HypervisorConfig.zip_max_pct": ([], [hv("zip_max_pct", 2.0)]),
        "HypervisorConfig.zip_threshold": ([], [hv("zip_threshold", 0.25)]),
        "HypervisorConfig.blocking": (LOW, [hv("blocking", False)]),
        "HypervisorConfig.growth_pct": ([], [hv("growth_pct", 40.0)]),
        "HypervisorConfig.page_sharing": ([], [hv("page_sharing", False)]),
        "HypervisorConfig.share_scan_time": ([hv("large_pages", False)],
                                             [hv("share_scan_time", "10s")]),
        "HypervisorConfig.share_rate_max": (SHARE, [hv("share_rate_max", "100/s")]),
        "HypervisorConfig.share_force_salting": (SHARE, [hv("share_force_salting", 0)]),
        "HypervisorConfig.large_pages": ([], [hv("large_pages", False)]),
        "HypervisorConfig.high_pct": ([hv("thresholds", "vsphere")], [hv("high_pct", 50.0)]),
        "CostConfig.cow_fault": (SHARE, [cost("cow_fault", "400us")]),
        "CostConfig.lpage_break": ([], [cost("lpage_break", "10ms")]),
        "VMConfig.salt": (SHARE, [vm("salt", 1, 0), vm("salt", 1, 1)]),
        "ProcessConfig.shared_frac": (SHARE, [proc("shared_frac", 0.5)]),
        "CostConfig.guest_fault": ([], [cost("guest_fault", "20us")]),
        "CostConfig.hv_first_touch": ([], [cost("hv_first_touch", "40us")]),
        "CostConfig.hv_sample_fault": ([], [cost("hv_sample_fault", "100us")]),
        "CostConfig.decompress": ([], [cost("decompress", "500us")]),
        "CostConfig.compress": ([], [cost("compress", "2ms")]),
        "CostConfig.balloon_page": ([], [cost("balloon_page", "50us")]),
        "VMConfig.name": ([], [vm("name", "c")]),
        "VMConfig.memory": ([], [vm("memory", "72MiB")]),
        "VMConfig.vcpus": ([proc("cpu", 2.0)], [vm("vcpus", 2)]),
        "VMConfig.reservation": ([], [vm("reservation", "48MiB")]),
        "VMConfig.limit": ([], [vm("limit", "40MiB")]),
        "VMConfig.shares": ([], [vm("shares", "high")]),
        "VMConfig.overhead": ([], [vm("overhead", "8MiB")]),
        "VMConfig.tools": ([], [vm("tools", False)]),
        "VMConfig.tools_start": ([], [vm("tools_start", "4s")]),
        "VMConfig.start": ([], [vm("start", "2s")]),
        "VMConfig.compressible": ([], [vm("compressible", 0.9)]),
        "GuestConfig.os": ([], [guest("os", "windows")]),
        "GuestConfig.policy": ([], [guest("policy", "fifo")]),
        "GuestConfig.clock_insert_referenced": ([], [guest("clock_insert_referenced", False)]),
        # Half full, the guest frees the swap slot of a page read back (vm_swap_full).
        "GuestConfig.swap": (GUEST_SHORT, [guest("swap", "32MiB")]),
        "GuestConfig.kernel": ([], [guest("kernel", "8MiB")]),
        "GuestConfig.kernel_active": ([], [guest("kernel_active", 1.0)]),
        "GuestConfig.kernel_refs": ([], [guest("kernel_refs", 0.0)]),
        "GuestConfig.boot_touch": ([], [guest("boot_touch", True)]),
        # The balloon stops at the min watermark: at min = high, after the guest's first
        # reclaim.
        "GuestConfig.free_min_pct": ([guest("free_high_pct", 2.0)],
                                     [guest("free_min_pct", 2.0)]),
        "GuestConfig.free_low_pct": ([guest("free_high_pct", 10.0)],
                                     [guest("free_low_pct", 8.0)]),
        "GuestConfig.free_high_pct": ([], [guest("free_high_pct", 10.0)]),
        "GuestConfig.swap_cluster": ([], [guest("swap_cluster", 1)]),
        "GuestConfig.swap_device": ([], [guest("swap_device", {"latency": "5ms"})]),
        "Device.latency": ([], [guest("swap_device", {"latency": "9ms", "iops": "20k/s"})]),
        "Device.iops": ([], [guest("swap_device", {"latency": "1ms", "iops": "300/s"})]),
        "ProcessConfig.name": ([], [proc("name", "q")]),
        "ProcessConfig.workload": ([], [proc("workload", "scan")]),
        "ProcessConfig.size": ([], [proc("size", "50MiB")]),
        "ProcessConfig.wss": ([], [proc("wss", "20MiB")]),
        "ProcessConfig.rate": ([], [proc("rate", "100k/s")]),
        "ProcessConfig.cpu": ([], [proc("cpu", 0.5)]),
        # Pages read back from guest swap stay clean unless written.
        "ProcessConfig.write_frac": (GUEST_SHORT, [proc("write_frac", 0.0)]),
        "ProcessConfig.file_frac": ([], [proc("file_frac", 0.5)]),
        "ProcessConfig.dist": ([], [proc("dist", "zipf")]),
        "ProcessConfig.alpha": ([proc("workload", "zipf")], [proc("alpha", 1.5)]),
        "ProcessConfig.hot_frac": ([proc("workload", "hotcold")], [proc("hot_frac", 0.3)]),
        "ProcessConfig.hot_prob": ([proc("workload", "hotcold")], [proc("hot_prob", 0.5)]),
        "ProcessConfig.schedule": (PHASES, [proc(SCHED, [{"at": "0s", "wss": "30MiB"}])]),
        "ProcessConfig.ramp": ([proc("workload", "hog"), proc("wss", "8MiB")],
                               [proc("ramp", "2s")]),
        "ProcessConfig.start": ([], [proc("start", "1s")]),
        "ProcessConfig.stop": ([], [proc("stop", "3s")]),
        "ProcessConfig.trace": (tr, [proc("trace", str(other))]),
        "ProcessConfig.loop": (tr, [proc("loop", True)]),
        "ProcessConfig.pace": (tr, [proc("pace", True)]),
        # The MMU (kernels.mmu): the base VMs run under nested paging.
        "VMConfig.mmu": ([], [vm("mmu", "shadow")]),
        "GuestConfig.large_pages": ([], [guest("large_pages", 1.0)]),
        "ProcessConfig.pt_updates": ([vm("mmu", "shadow")], [proc("pt_updates", "50k/s")]),
        "ProcessConfig.ctx_switches": ([vm("mmu", "shadow")], [proc("ctx_switches", "5k/s")]),
        "CostConfig.walk_ref": ([], [cost("walk_ref", "100ns")]),
        "CostConfig.walk_cache": ([], [cost("walk_cache", 0.0)]),
        "CostConfig.hidden_fault": ([vm("mmu", "shadow")], [cost("hidden_fault", "20us")]),
        "CostConfig.pt_update_trap": ([vm("mmu", "shadow"), proc("pt_updates", "50k/s")],
                                      [cost("pt_update_trap", "20us")]),
        "CostConfig.ctx_switch_trap": ([vm("mmu", "shadow")],
                                       [cost("ctx_switch_trap", "20us")]),
        "Phase.at": (PHASES, [proc(SCHED, [{"at": "0s", "wss": "20MiB"},
                                           {"at": "1s", "wss": "40MiB"}])]),
        "Phase.wss": (PHASES, [proc(SCHED, [{"at": "0s", "wss": "20MiB"},
                                            {"at": "3s", "wss": "50MiB"}])]),
        # Events (tests/test_events.py tests each in depth).
        "EventConfig.at": ([top("event", [{"at": "2s", "power_off": ["b"]}])],
                           [top("event", [{"at": "4s", "power_off": ["b"]}])]),
        "EventConfig.set": ([], [top("event", [{"at": "2s", "set": {"vm.a.limit": "40MiB"}}])]),
        "EventConfig.power_on": ([], [top("event", [{"at": "2s", "power_on": ["b"]}])]),
        "EventConfig.power_off": ([], [top("event", [{"at": "2s", "power_off": ["b"]}])]),
        "EventConfig.migrate_in": ([top("event", [{"at": "2s", "power_on": ["b"]}])],
                                   [top("event", [{"at": "2s", "migrate_in": ["b"]}])]),
        "EventConfig.migrate_out": ([], [top("event", [{"at": "2s", "migrate_out": ["b"]}])]),
        "Phase.offset": (PHASES, [proc(SCHED, [{"at": "0s", "wss": "20MiB", "offset": "8MiB"},
                                               {"at": "3s", "wss": "40MiB"}])]),
    }


# Fields that change no result, and why.
COSMETIC = {
    "Scenario.name": "shown in summaries and report titles only",
    "Scenario.description": "shown in summaries and reports only",
    "ProcessConfig.trace_format": "says how to read the trace file: on a file of that format "
                                  "it reads the same references as detection does, on another "
                                  "it is refused (tests/test_traces.py, test_cli_input.py)",
}


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """`model` and every schema model reachable from its fields, each once."""
    seen: list[type[BaseModel]] = []

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp not in seen:
                seen.append(tp)
                for f in tp.model_fields.values():
                    visit(f.annotation)
            return
        for arg in typing.get_args(tp):
            visit(arg)

    visit(model)
    return seen


def _is_container(annotation: Any) -> bool:
    """A field that only holds other models (vm, process, guest, hypervisor ...): walked."""
    args = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__ != "Device"
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is tuple:
        return bool(args) and all(isinstance(a, type) and issubclass(a, BaseModel)
                                  and a.__name__ not in ("Device", "Phase") for a in args)
    return False


def schema_fields() -> list[str]:
    return [f"{m.__name__}.{name}" for m in _models(Scenario)
            for name, f in m.model_fields.items() if not _is_container(f.annotation)]


def test_the_walk_sees_every_model_and_field() -> None:
    names = {m.__name__ for m in _models(Scenario)}
    assert names == {"Scenario", "HostConfig", "HypervisorConfig", "CostConfig", "VMConfig",
                     "GuestConfig", "ProcessConfig", "Device", "Phase", "EventConfig"}
    fields = schema_fields()
    assert "HypervisorConfig.zip_threshold" in fields and "GuestConfig.os" in fields
    assert "Scenario.vm" not in fields and "VMConfig.guest" not in fields


def test_every_field_is_tested_or_cosmetic(tmp_path: Path) -> None:
    table = walk_table(tmp_path)
    fields = schema_fields()
    missing = [f for f in fields if f not in table and f not in COSMETIC]
    assert not missing, f"schema fields that no test shows changing a result: {missing}"
    stale = [f for f in [*table, *COSMETIC] if f not in fields]
    assert not stale, f"listed fields the schema no longer has: {stale}"
    assert not set(table) & set(COSMETIC)


def _run(edits: tuple[Edit, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = copy.deepcopy(WALK_BASE)
    for e in edits:
        e(d)
    r = vmemsim.simulate(scenario_from_dict(d, "walk"), parallel=False, cache=False)
    return r.vms, r.host


@pytest.mark.parametrize("field", schema_fields())
def test_changing_a_field_changes_a_result(field: str, tmp_path: Path) -> None:
    if field in COSMETIC:
        pytest.skip(f"cosmetic: {COSMETIC[field]}")
    ctx, change = walk_table(tmp_path)[field]
    base_vms, base_host = _run(tuple(ctx))
    vms, host_ = _run((*ctx, *change))
    same = vms.equals(base_vms) and host_.equals(base_host)
    assert not same, f"changing {field} changed no result"
