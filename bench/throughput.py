"""Benchmarks 1 and 2: throughput of the full simulator (engine Simulation, every tick's
control plane included) on hit-dominated and fault-heavy workloads."""

from __future__ import annotations

import time
from typing import Any

from bench.common import Config, Sample, one_vm_scenario

# Counters of references that left the hit path (faults of either level).
FAULT_COUNTERS = ("C_GFAULT", "C_HV_FIRST", "C_HV_SAMPLE", "C_SWIN", "C_UNZIP")


def _layout() -> Any:
    from vmemsim.kernels import layout

    return layout


class SimBench:
    """A Simulation held between repetitions, stepped tick by tick; refs come from counters."""

    def __init__(self, scenario: dict[str, Any], ticks_per_rep: int) -> None:
        from vmemsim.config.loader import scenario_from_dict
        from vmemsim.engine import Simulation

        t0 = time.perf_counter()
        self.sim = Simulation(scenario_from_dict(scenario))
        self.build_s = time.perf_counter() - t0
        self.ticks = ticks_per_rep
        self.L = _layout()

    def _snap(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name in (*FAULT_COUNTERS, "C_REFS", "C_TOUCHED", "C_GSWIN", "C_SWOUT", "C_GSWOUT"):
            idx = getattr(self.L, name)
            out[name] = sum(int(v.arrays.vc[idx]) for v in self.sim.vms)
        out["blocked_us"] = int(sum(v.arrays.vt[self.L.T_BLOCKED] for v in self.sim.vms) * 1e6)
        return out

    def warm_scan(self, max_ticks: int = 100_000) -> dict[str, float]:
        """Touch every page of the (single) process once with a sequential scan, so that the
        measured window that follows has no first-touch faults. Faults are the slow path, so
        this is also a first-touch throughput measurement."""
        v = self.sim.vms[0]
        w = v.workloads[0]
        uniform, w.dist = w.dist, self.L.DIST_CODES["scan"]  # bench-only: scan, then uniform
        s0 = self._snap()
        t0 = time.perf_counter()
        try:
            while int(v.arrays.vc[self.L.C_GFAULT]) < w.size and self.sim.tick < max_ticks:
                self.sim.step_tick()
        finally:
            w.dist = uniform
        dt = time.perf_counter() - t0
        s1 = self._snap()
        faults = s1["C_GFAULT"] - s0["C_GFAULT"]
        return {"seconds": dt, "faults": faults, "ticks": self.sim.tick,
                "hv_first": s1["C_HV_FIRST"] - s0["C_HV_FIRST"]}

    def warm_ticks(self, n: int) -> None:
        for _ in range(n):
            self.sim.step_tick()

    def rep(self) -> Sample:
        s0 = self._snap()
        t0 = time.perf_counter()
        for _ in range(self.ticks):
            self.sim.step_tick()
        dt = time.perf_counter() - t0
        s1 = self._snap()
        d = {k: s1[k] - s0[k] for k in s0}
        faults = sum(d[k] for k in FAULT_COUNTERS)
        # A page's first touch in a sampling period also leaves the hit path (C_TOUCHED).
        non_hit = faults + max(0, d["C_TOUCHED"])
        d["non_hit"] = non_hit
        d["faults"] = faults
        return Sample(d["C_REFS"], dt, d)


# ---- 1: hit-dominated ----------------------------------------------------------------------

def hit_sizes(cfg: Config) -> dict[str, dict[str, Any]]:
    """in cache: tables of a 256 MiB process (pt 256 KiB + per-frame bytes) fit in L2/L3;
    far: tens of GiB touched, hit tables (pt, pstate, aux: 6 B/page) far above L3."""
    far_vm = 24 * 1024 if cfg.quick else 64 * 1024
    return {
        "cache": {"vm_mib": 512, "proc_mib": 256, "rate": "100M/s",
                  "ticks": 2 if cfg.quick else 4, "label": "1 VM, uniform over 256 MiB"},
        "far": {"vm_mib": far_vm, "proc_mib": far_vm * 15 // 16, "rate": "20M/s",
                "ticks": 1 if cfg.quick else 2,
                "label": f"1 VM, uniform over {far_vm * 15 // 16 / 1024:.1f} GiB"},
    }


def refpath_bench(size: dict[str, Any]) -> tuple[SimBench, dict[str, float]]:
    sc = one_vm_scenario(size["vm_mib"], size["proc_mib"], rate=size["rate"])
    sb = SimBench(sc, size["ticks"])
    warm = sb.warm_scan()
    sb.rep()  # one untimed window: the hit loop's code and data are hot from here
    return sb, warm


# ---- 2: fault-heavy ------------------------------------------------------------------------

FAST_DEVICE = {"latency": "1us", "iops": "1G/s"}  # so a tick holds many faults, not one I/O


def fault_scenarios(cfg: Config) -> dict[str, dict[str, Any]]:
    k = 1 if cfg.quick else 4
    thrash = {
        "name": "thrash", "duration": "100h", "baseline": False,
        "host": {"memory": f"{4 * k}GiB"},
        "hypervisor": {"sample_period": "10h"},
        "vm": [{"name": "v", "memory": f"{512 * k}MiB",
                "guest": {"swap": f"{2 * k}GiB", "swap_device": FAST_DEVICE},
                "process": [{"name": "p", "workload": "uniform", "size": f"{k}GiB",
                             "rate": "100M/s"}]}],
    }
    hswap = {
        "name": "hswap", "duration": "100h", "baseline": False,
        "host": {"memory": f"{k}GiB", "swap_device": FAST_DEVICE},
        "hypervisor": {"balloon": False, "compression": False, "sample_period": "10h"},
        "vm": [{"name": "v", "memory": f"{2 * k}GiB",
                "process": [{"name": "p", "workload": "uniform", "size": f"{1536 * k}MiB",
                             "rate": "100M/s"}]}],
    }
    return {
        "guest thrashing": {"scenario": thrash, "warm": 30, "ticks": 10 if cfg.quick else 20,
                            "label": f"process {k} GiB in a {512 * k} MiB guest (guest swap)"},
        "host swapping": {"scenario": hswap, "warm": 60, "ticks": 20 if cfg.quick else 50,
                          "label": f"{2 * k} GiB VM on a {k} GiB host, no balloon, no zip"},
    }


def fault_bench(spec: dict[str, Any]) -> SimBench:
    sb = SimBench(spec["scenario"], spec["ticks"])
    sb.warm_ticks(spec["warm"])
    return sb

