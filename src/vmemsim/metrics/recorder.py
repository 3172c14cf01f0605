"""Counters -> one row per simulated second (host and each VM), transitions, and the summary.

The kernels keep cumulative counters; the recorder takes differences once per simulated second,
so its cost grows with the number of VMs, never with the number of pages.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vmemsim.config.units import PAGE_SIZE, mb
from vmemsim.hypervisor.states import STATES
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BALLOON_N,
    C_COW,
    C_DOUBLE,
    C_GFAULT,
    C_GSWAPPED,
    C_GSWIN,
    C_GSWOUT,
    C_HINTS,
    C_HV_FIRST,
    C_HV_SAMPLE,
    C_MMU_TRAPS,
    C_REFS,
    C_SHARED,
    C_SWAPPED,
    C_SWIN,
    C_SWOUT,
    C_TLB_MISS,
    C_UNZIP,
    C_ZERO,
    C_ZIP,
    C_ZIPPED,
    HC_SHARED_MPNS,
    HC_SHARED_REFS,
    T_BLOCKED,
    T_FAULT,
    T_IOWAIT,
    T_MMU,
    T_RUN,
    T_WALK,
)
from vmemsim.metrics import story
from vmemsim.metrics.columns import HOST_NAMES, STATE_COLUMNS, VM_NAMES
from vmemsim.metrics.result import Result
from vmemsim.metrics.slowdown import is_slower, phrase

if TYPE_CHECKING:
    from vmemsim.engine import Simulation

_DELTAS = {
    "refs": C_REFS, "guest_faults": C_GFAULT, "hv_first_touch": C_HV_FIRST,
    "hv_sample_faults": C_HV_SAMPLE, "swin_pages": C_SWIN, "swout_pages": C_SWOUT,
    "zip_pages": C_ZIP, "unzip_pages": C_UNZIP, "guest_swap_in": C_GSWIN,
    "guest_swap_out": C_GSWOUT, "double_paging": C_DOUBLE, "cow_faults": C_COW,
    "tlb_misses": C_TLB_MISS, "mmu_traps": C_MMU_TRAPS,
}
ZIP_SLOT_MB = 2048 / (1 << 20)  # a compressed page occupies a 2 KiB slot


class Recorder:
    def __init__(self, sim: Simulation) -> None:
        # A weak reference: the Simulation owns its recorder, and a cycle between them would
        # keep a finished run's arrays alive until the collector's next full pass (runs one
        # after another in a process, as `vmemsim compare` does, added up).
        self.sim = weakref.proxy(sim)
        self.host_rows: list[dict[str, Any]] = []
        self.vm_rows: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self._last_c = [v.arrays.vc.copy() for v in sim.vms]
        self._last_t = [v.arrays.vt.copy() for v in sim.vms]
        self._last_on = [0] * len(sim.vms)
        self._n_trans = 0
        self.max_vm: list[dict[str, float]] = [
            {"balloon": 0.0, "swapped": 0.0, "zipped": 0.0} for _ in sim.vms]
        # Within the current second, from `tick`: ticks run in each state, and each VM's
        # largest targets in pages (allocation, balloon, host swap). A per-second row alone
        # misses a 0.2 s soft window and the swap target it set.
        self._state_ticks = [0] * len(STATES)
        self._tgt_max = [[0.0, 0.0, 0.0] for _ in sim.vms]

    def tick(self, state: int) -> None:
        """One tick done, run in `state`: count it, and keep each VM's largest targets as the
        tick left them. Called by the engine after every tick (cost: a few operations a VM)."""
        self._state_ticks[state] += 1
        for v, m in zip(self.sim.vms, self._tgt_max, strict=True):
            if v.target > m[0]:
                m[0] = v.target
            if v.driver.target > m[1]:
                m[1] = v.driver.target
            if v.swtgt > m[2]:
                m[2] = v.swtgt

    def transition(self, now: float, old: int, new: int) -> None:
        free_pct = 100.0 * self.sim.free_pages * PAGE_SIZE / self.sim.host_bytes
        self.transitions.append({"time_s": round(now, 6), "from": STATES[old],
                                 "to": STATES[new], "free_pct": round(free_pct, 3)})
        self._n_trans += 1

    def record(self, now: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        sim = self.sim
        rows: list[dict[str, Any]] = []
        tot = dict.fromkeys(("balloon", "mctltgt", "swapped", "swtgt", "zipped", "zipused",
                             "swr", "sww", "ovhd"), 0.0)
        hc = sim.host.hc
        common, shared = int(hc[HC_SHARED_MPNS]), int(hc[HC_SHARED_REFS])
        saved_per = 1.0 - common / shared if shared else 0.0  # TPS: saving per shared page
        for i, v in enumerate(sim.vms):
            # Python lists: reading numpy scalars one by one costs more than the copy.
            vca, vta = v.arrays.vc, v.arrays.vt
            d = (vca - self._last_c[i]).tolist()
            dt = (vta - self._last_t[i]).tolist()
            self._last_c[i] = vca.copy()
            self._last_t[i] = vta.copy()
            vc = vca.tolist()
            est = v.estimate
            memsz = mb(v.n_gppn)
            row: dict[str, Any] = {
                "time_s": round(now, 6), "vm": v.cfg.name, "memsz_mb": memsz,
                "grant_mb": mb(vc[C_BACKED] + vc[C_SHARED]), "consumed_mb": mb(v.consumed),
                "shrd_mb": mb(vc[C_SHARED]), "zero_mb": mb(vc[C_ZERO]),
                "shrdsvd_mb": mb(vc[C_SHARED] * saved_per), "cowh_mb": mb(vc[C_HINTS]),
                "ovhd_mb": mb(v.overhead_pages) if v.powered_on else 0.0,
                "sztgt_mb": mb(v.target), "active_true_mb": mb(v.active_true),
                "active_est_mb": est.value * memsz, "active_slow_mb": est.slow * memsz,
                "active_fast_mb": est.fast * memsz, "active_next_mb": est.last * memsz,
                "mctl": int(v.driver.running(now)), "mctlsz_mb": mb(vc[C_BALLOON_N]),
                "mctltgt_mb": mb(v.driver.target), "mctlmax_mb": mb(v.driver.max_pages),
                "swcur_mb": mb(vc[C_SWAPPED]), "swtgt_mb": mb(v.swtgt),
                "sztgt_max_mb": mb(self._tgt_max[i][0]),
                "mctltgt_max_mb": mb(self._tgt_max[i][1]),
                "swtgt_max_mb": mb(self._tgt_max[i][2]),
                "cachesz_mb": v.zip_slots * ZIP_SLOT_MB, "zip_mb": vc[C_ZIPPED] * ZIP_SLOT_MB,
            }
            for name, idx in _DELTAS.items():
                row[name] = int(d[idx])
            row["throughput"] = float(d[C_REFS])
            row["base_throughput"] = float("nan")
            row["hv_faults"] = int(d[C_HV_FIRST] + d[C_HV_SAMPLE] + d[C_SWIN] + d[C_UNZIP])
            row["guest_swapped_mb"] = mb(vc[C_GSWAPPED])
            vcpu = v.cfg.vcpus * (v.on_ticks - self._last_on[i]) * sim.dt
            self._last_on[i] = v.on_ticks
            used = dt[T_RUN] + dt[T_FAULT] + dt[T_IOWAIT] + dt[T_BLOCKED]
            row["vcpu_s"] = vcpu
            row["run_s"] = float(dt[T_RUN])
            row["fault_s"] = float(dt[T_FAULT])
            row["io_wait_s"] = float(dt[T_IOWAIT])
            row["blocked_s"] = float(dt[T_BLOCKED])
            row["idle_s"] = max(0.0, vcpu - used)
            row["stall_s"] = float(dt[T_FAULT] + dt[T_IOWAIT])
            self._tgt_max[i] = [0.0, 0.0, 0.0]
            row["walk_s"] = float(dt[T_WALK])
            row["mmu_s"] = float(dt[T_MMU])
            rows.append({k: row[k] for k in VM_NAMES})
            m = self.max_vm[i]
            m["balloon"] = max(m["balloon"], row["mctlsz_mb"])
            m["swapped"] = max(m["swapped"], row["swcur_mb"])
            m["zipped"] = max(m["zipped"], mb(vc[C_ZIPPED]))
            tot["balloon"] += row["mctlsz_mb"]
            tot["mctltgt"] += row["mctltgt_mb"]
            tot["swapped"] += row["swcur_mb"]
            tot["swtgt"] += row["swtgt_mb"]
            tot["zipped"] += mb(vc[C_ZIPPED])
            tot["zipused"] += row["zip_mb"]
            tot["swr"] += row["swin_pages"]
            tot["sww"] += row["swout_pages"]
            tot["ovhd"] += row["ovhd_mb"]
        total_mb = sim.host_bytes / (1 << 20)
        free_mb = mb(sim.free_pages)
        host = {
            "time_s": round(now, 6), "state": STATES[sim.state], "free_mb": free_mb,
            "free_pct": 100.0 * free_mb / total_mb,
            "minfree_mb": mb(sim.thresholds.minfree_pages), "used_mb": total_mb - free_mb,
            "total_mb": total_mb, "vmk_mb": sim.scenario.host.vmkernel / (1 << 20),
            "overhead_mb": tot["ovhd"], "balloon_mb": tot["balloon"],
            "mctltgt_mb": tot["mctltgt"], "swapped_mb": tot["swapped"],
            "swtgt_mb": tot["swtgt"], "compressed_mb": tot["zipped"],
            "zip_saved_mb": tot["zipped"] - tot["zipused"], "swr_pages": int(tot["swr"]),
            "pshare_shared_mb": mb(shared), "pshare_common_mb": mb(common),
            "pshare_saving_mb": mb(shared - common),
            "sww_pages": int(tot["sww"]), "transitions": self._n_trans,
        }
        # Ticks x tick length, rounded as time_in_state_s is: the rows add up to it.
        for s, n in zip(STATE_COLUMNS, self._state_ticks, strict=True):
            host[s] = round(n * sim.dt, 6)
        self._state_ticks = [0] * len(STATES)
        self._n_trans = 0
        host = {k: host[k] for k in HOST_NAMES}
        self.host_rows.append(host)
        self.vm_rows.extend(rows)
        return host, rows

    # ---- the finished run ---------------------------------------------------------------
    def result(self, *, complete: bool, wall_s: float, base: Result | None) -> Result:
        sim = self.sim
        host = pd.DataFrame(self.host_rows, columns=list(HOST_NAMES))
        vms = pd.DataFrame(self.vm_rows, columns=list(VM_NAMES))
        if base is not None and len(vms):
            b = base.vms.set_index(["time_s", "vm"])["throughput"]
            key = pd.MultiIndex.from_arrays([vms["time_s"], vms["vm"]])
            vms["base_throughput"] = b.reindex(key).to_numpy()
        summary = build_summary(sim, host, vms, self.transitions, self.max_vm,
                                complete=complete, wall_s=wall_s, base=base)
        return Result(host=host, vms=vms, summary=summary)


def _verdict(slowdown: float, mx: dict[str, float], blocked: float, oom: int) -> str:
    parts = []
    if mx["balloon"] > 0:
        parts.append(f"ballooned up to {mx['balloon']:.0f} MB")
    if mx["zipped"] > 0:
        parts.append(f"compressed up to {mx['zipped']:.0f} MB")
    if mx["swapped"] > 0:
        parts.append(f"host-swapped up to {mx['swapped']:.0f} MB")
    if blocked > 0.05:
        parts.append(f"blocked {blocked:.1f} vCPU-s")
    if oom:
        parts.append(f"{oom} references failed: guest out of memory and swap")
    # The ratio form the tables show ("4.93x slower"), from the one place every output says
    # it: a percentage here read as another number than the table's.
    speed = phrase(slowdown) + (" than with ample memory" if is_slower(slowdown) else "")
    if not parts:
        return f"untouched by reclamation; {speed}"
    return "; ".join(parts) + f"; {speed}"


def _time_in_state(transitions: list[dict[str, Any]], end: float) -> dict[str, float]:
    """Seconds in each state, exact to the tick: from the transitions, not the per-second rows
    (a 0.4 s hard state inside a second shows in no row's state)."""
    out: dict[str, float] = {}
    state, since = "high", 0.0
    for t in transitions:
        out[state] = out.get(state, 0.0) + t["time_s"] - since
        state, since = t["to"], t["time_s"]
    out[state] = out.get(state, 0.0) + max(0.0, end - since)
    return {s: round(out[s], 6) for s in STATES if out.get(s, 0.0) > 0}


def build_summary(sim: Simulation, host: pd.DataFrame, vms: pd.DataFrame,
                  transitions: list[dict[str, Any]], max_vm: list[dict[str, float]], *,
                  complete: bool, wall_s: float, base: Result | None) -> dict[str, Any]:
    from vmemsim.kernels.layout import C_OOM

    sc = sim.scenario
    simulated = float(host["time_s"].iloc[-1]) if len(host) else 0.0
    th = sim.thresholds
    time_in_state = _time_in_state(transitions, simulated)
    vm_out = []
    for i, v in enumerate(sim.vms):
        rows = vms[vms["vm"] == v.cfg.name]
        refs = int(rows["refs"].sum())
        thr = refs / simulated if simulated else 0.0
        base_thr = float("nan")
        if base is not None:
            bt = base.vms[base.vms["vm"] == v.cfg.name]
            bt = bt[bt["time_s"] <= simulated]
            base_thr = float(bt["refs"].sum()) / simulated if simulated else float("nan")
        slowdown = base_thr / thr if thr > 0 and np.isfinite(base_thr) else float("nan")
        blocked = float(rows["blocked_s"].sum())
        oom = int(v.arrays.vc[C_OOM])
        vm_out.append({
            "name": v.cfg.name, "memsz_mb": mb(v.n_gppn), "refs": refs,
            "throughput": thr, "base_throughput": base_thr, "slowdown": slowdown,
            "guest_faults": int(rows["guest_faults"].sum()),
            "hv_faults": int(rows["hv_faults"].sum()),
            "hv_first_touch": int(rows["hv_first_touch"].sum()),
            "guest_swap_in": int(rows["guest_swap_in"].sum()),
            "guest_swap_out": int(rows["guest_swap_out"].sum()),
            "swin_pages": int(rows["swin_pages"].sum()),
            "swout_pages": int(rows["swout_pages"].sum()),
            "zip_pages": int(rows["zip_pages"].sum()),
            "unzip_pages": int(rows["unzip_pages"].sum()),
            "double_paging": int(rows["double_paging"].sum()),
            "blocked_s": blocked, "stall_s": float(rows["stall_s"].sum()),
            "mmu": v.cfg.mmu, "tlb_misses": int(rows["tlb_misses"].sum()),
            "mmu_traps": int(rows["mmu_traps"].sum()),
            "walk_s": float(rows["walk_s"].sum()), "mmu_s": float(rows["mmu_s"].sum()),
            **{k: float(rows[k].sum()) for k in ("run_s", "fault_s", "io_wait_s", "idle_s")},
            "guest_oom": oom,
            "max_balloon_mb": max_vm[i]["balloon"], "max_swapped_mb": max_vm[i]["swapped"],
            "max_compressed_mb": max_vm[i]["zipped"],
            "verdict": _verdict(slowdown, max_vm[i], blocked, oom),
            "reservation_mb": mb(v.min_pages), "balloon_driver": bool(v.cfg.tools),
            **story.vm_facts(rows, transitions),
        })
        vm_out[-1]["story"] = story.vm_story(vm_out[-1])
    phases = []
    events = list(sim.events.log)
    if len(host):
        st = host["state"].to_numpy()
        t = host["time_s"].to_numpy()
        # A phase also ends where an event takes effect: from the row of the second it
        # falls in (an event at 20 s is in the row of 21 s, which covers (20, 21]).
        cut = {int(np.searchsorted(t, e["time_s"], side="right")) for e in events}
        start = 0
        for k in range(1, len(st) + 1):
            if k == len(st) or st[k] != st[start] or k in cut:
                sel = vms[(vms["time_s"] > t[start] - 1) & (vms["time_s"] <= t[k - 1])]
                thr = {}
                for name, grp in sel.groupby("vm", sort=False):
                    base_sum = float(grp["base_throughput"].sum())
                    # No baseline work in this phase (process not running): no ratio.
                    ratio = (float(grp["throughput"].sum()) / base_sum
                             if base is not None and base_sum > 0 else None)
                    thr[str(name)] = {"throughput": float(grp["throughput"].mean()),
                                      "vs_baseline": ratio}
                phases.append({"state": str(st[start]), "start_s": float(t[start] - 1),
                               "end_s": float(t[k - 1]), "vms": thr})
                start = k
    return {
        "scenario": sc.name, "description": sc.description, "seed": sc.seed,
        "complete": complete, "simulated_s": simulated, "wall_s": round(wall_s, 3),
        "speed_x_realtime": round(simulated / wall_s, 2) if wall_s > 0 else None,
        # VMs whose baselines came from the cache (vmemsim.basecache), not from this run.
        "baseline_cached": list(base.summary.get("from_cache", [])) if base is not None else [],
        "baseline_from_run": (list(base.summary.get("from_run", [])) if base is not None
                              else []),
        "host": {
            "memory_mb": sim.host_bytes / (1 << 20),
            "managed_mb": mb(sim.n_mpn),
            "minfree_mb": mb(th.minfree_pages),
            # The headroom: the least free memory at any tick's end, and when.
            "min_free_mb": mb(sim.min_free[0]),
            "min_free_pct": round(100.0 * mb(sim.min_free[0]) / (sim.host_bytes / (1 << 20)), 3),
            "min_free_at_s": round(sim.min_free[1], 6),
            "threshold_preset": th.preset,
            "thresholds_mb": {STATES[s]: mb(th.enter[s]) for s in range(1, 5)
                              if th.enter[s] is not None},
            "hysteresis": th.hysteresis,
            "states_seen": [s for s in STATES if s in time_in_state],
            "time_in_state_s": time_in_state,
            **(facts := story.host_facts(transitions, simulated)),
            "story": story.host_story(facts, time_in_state),
        },
        "transitions": transitions,
        # What the scenario's events did, and when (hypervisor.events): a VM refused by
        # admission control is listed under its event's "refused".
        "events": events,
        "vms": vm_out,
        "phases": phases,
    }
