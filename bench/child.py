"""Jobs run in a fresh interpreter (`python -m bench.child JOB JSON`), one JSON line out.

A child owns its memory, so its peak RSS (ru_maxrss) is that job's alone, and a size that does
not fit fails on its own without taking the suite down."""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

from bench.common import array_bytes, hwm_mb, per_array_bytes, rss_mb


def maxrss_mb() -> float:
    return hwm_mb()


def _tiny(policy: str = "clock") -> dict[str, Any]:
    return {"name": "tiny", "duration": "2s", "baseline": False, "host": {"memory": "1GiB"},
            "vm": [{"name": "a", "memory": "256MiB", "guest": {"policy": policy},
                    "process": [{"name": "p", "workload": "zipf", "size": "200MiB"}]}]}


def job_prime(_: dict[str, Any]) -> dict[str, Any]:
    """Compile or load every kernel the suite and the CLI will call."""
    import numpy as np

    import vmemsim
    from vmemsim.guest.replay import Replayer
    from vmemsim.traces import PageMap

    t0 = time.perf_counter()
    for pol in ("clock", "lru", "fifo", "random"):
        vmemsim.simulate(_tiny(pol))
        r = Replayer(64, pol)
        r.feed(PageMap().map(np.arange(1000, dtype=np.int64) % 300))
    vmemsim.simulate("default", duration="5s")
    return {"seconds": time.perf_counter() - t0}


def job_default(args: dict[str, Any]) -> dict[str, Any]:
    """vmemsim.simulate("default") (the scenario and its baseline run), after a tiny untimed
    run that loads the kernels, so the time is the simulation's and not numba's. `parallel`
    as in simulate(): the baseline beside the scenario (a forked process) or after it."""
    import resource

    import vmemsim

    rss0 = rss_mb()
    vmemsim.simulate(_tiny())
    t0 = time.perf_counter()
    res = vmemsim.simulate("default", duration=args.get("duration"),
                           parallel=args.get("parallel"))
    wall = time.perf_counter() - t0
    s = res.summary
    simulated = float(res.host["time_s"].iloc[-1]) if len(res.host) else 0.0
    refs = sum(v["refs"] for v in s["vms"])
    base_refs = sum(v["base_throughput"] * simulated for v in s["vms"]
                    if v["base_throughput"] == v["base_throughput"])
    # VMs the hypervisor never acted on: their own runs are their baselines, not run again.
    own = set(s.get("baseline_from_run", []))
    own_refs = sum(v["base_throughput"] * simulated for v in s["vms"] if v["name"] in own)
    faults = sum(v["guest_faults"] + v["hv_faults"] for v in s["vms"])
    # The baseline's processes (forked, so each starts with this one's pages): the largest
    # one's own peak.
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    from vmemsim import _fork

    procs = max(1, _fork.cores() - 1)  # the baseline's workers (baseline.Baseline)
    return {"wall_s": wall, "simulated_s": simulated, "refs": refs, "base_refs": base_refs,
            "base_from_run": sorted(own), "base_refs_from_run": own_refs, "faults": faults,
            "maxrss_mb": maxrss_mb(), "rss_import_mb": rss0,
            "child_maxrss_mb": child_mb, "baseline_procs": procs if args.get("parallel")
            is not False else 0}


def _scale_scenario(a: dict[str, Any]) -> dict[str, Any]:
    n = int(a["n_vms"])
    vm_mib = int(a["vm_mib"])
    proc_mib = max(1, vm_mib // 2)
    wss_mib = min(int(a.get("wss_mib", 64)), proc_mib)
    start = "0s" if a.get("active", True) else "1000h"  # inactive: a tick with no references
    rate = max(1.0, float(a.get("total_rate", 2e6)) / n)
    vms = [{"name": f"vm{i}", "memory": f"{vm_mib}MiB",
            "process": [{"name": "p", "workload": "uniform", "size": f"{proc_mib}MiB",
                         "wss": f"{wss_mib}MiB", "rate": f"{rate:.0f}/s", "start": start}]}
           for i in range(n)]
    return {"name": "scale", "duration": "100h", "baseline": False,
            "host": {"memory": f"{int(a['host_mib'])}MiB"}, "vm": vms}


def job_scale(a: dict[str, Any]) -> dict[str, Any]:
    """Build a host of the given size, run warm + measured simulated seconds, and report
    time per simulated second (each one a rep), array bytes and RSS."""
    import vmemsim
    from vmemsim.config.loader import scenario_from_dict
    from vmemsim.engine import Simulation
    from vmemsim.kernels.layout import C_REFS

    vmemsim.simulate(_tiny())  # load the kernels untimed
    rss0 = rss_mb()
    t0 = time.perf_counter()
    sim = Simulation(scenario_from_dict(_scale_scenario(a)))
    build = time.perf_counter() - t0
    rss_built = rss_mb()
    secs: list[float] = []
    refs: list[int] = []
    for k in range(int(a.get("warm_s", 2)) + int(a.get("measure_s", 3))):
        r0 = sum(int(v.arrays.vc[C_REFS]) for v in sim.vms)
        t = time.perf_counter()
        sim.step_second()
        dt = time.perf_counter() - t
        if k >= int(a.get("warm_s", 2)):
            secs.append(dt)
            refs.append(sum(int(v.arrays.vc[C_REFS]) for v in sim.vms) - r0)
    by = array_bytes(sim)
    n_gppn = sum(v.n_gppn for v in sim.vms)
    n_gvpn = sum(int(v.arrays.pt.size) for v in sim.vms)
    return {
        "build_s": build, "sec_wall_median": statistics.median(secs), "sec_wall_max": max(secs),
        "sec_walls": secs, "refs_per_s": statistics.median(refs),
        "n_mpn": int(sim.n_mpn), "n_gppn": n_gppn, "n_gvpn": n_gvpn, "bytes": by,
        "per_array": per_array_bytes(sim), "rss_import_mb": rss0, "rss_built_mb": rss_built,
        "rss_end_mb": rss_mb(), "maxrss_mb": maxrss_mb(),
    }


def job_control(a: dict[str, Any]) -> dict[str, Any]:
    """A host whose VMs are powered on but run nothing: each simulated second is the control
    plane alone (10 ticks and the recorder). Runs past two sampling boundaries (every 60 s,
    each clears every page's touched bit) and reports the second one on its own: the first
    also pays for loading those kernels from numba's cache."""
    import vmemsim
    from vmemsim.config.loader import scenario_from_dict
    from vmemsim.engine import Simulation

    vmemsim.simulate(_tiny())
    t0 = time.perf_counter()
    sim = Simulation(scenario_from_dict(_scale_scenario({**a, "active": False})))
    build = time.perf_counter() - t0
    secs = []
    for _ in range(int(a.get("seconds", 122))):
        t = time.perf_counter()
        sim.step_second()
        secs.append(time.perf_counter() - t)
    late = range(len(secs) // 2 + 1, len(secs))
    boundary = max(late, key=lambda i: secs[i])
    rest = [x for i, x in enumerate(secs) if i not in (0, 60, boundary)]
    return {"tick_median_s": statistics.median(rest) / 10, "boundary_second_s": secs[boundary],
            "boundary_at_s": boundary, "first_second_s": secs[0], "build_s": build,
            "n_gppn": sum(v.n_gppn for v in sim.vms), "maxrss_mb": maxrss_mb()}


JOBS = {"prime": job_prime, "default": job_default, "scale": job_scale, "control": job_control}


def main() -> None:
    job, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    out = JOBS[job](args)
    out.setdefault("maxrss_mb", maxrss_mb())
    print(json.dumps(out))


if __name__ == "__main__":
    main()

