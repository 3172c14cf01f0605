"""Synthetic results and a fake simulation for the report, esxtop and top tests.

Not a conftest pytest loads by itself: test files import it, so the report tests do not depend
on the engine. The data are smooth deterministic curves with every state of the seed preset.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vmemsim.metrics.columns import HOST_NAMES, STATES, VM_NAMES
from vmemsim.metrics.recorder import _verdict
from vmemsim.metrics.result import Result

HOST_MB = 4096.0
THRESHOLDS = {"soft": 0.06 * HOST_MB, "hard": 0.04 * HOST_MB, "low": 0.02 * HOST_MB}
VMS = (  # name, memsz, balloon driver present, active fraction, base throughput
    ("db", 1024.0, 1, 0.7, 2.0e6),
    ("web", 768.0, 1, 0.4, 1.5e6),
    ("idle", 512.0, 0, 0.05, 1.0e5),
)


def _state(free: float) -> str:
    if free < THRESHOLDS["low"]:
        return "low"
    if free < THRESHOLDS["hard"]:
        return "hard"
    if free < THRESHOLDS["soft"]:
        return "soft"
    return "high"


def make_result(seconds: int = 300, *, name: str = "synthetic", complete: bool = True,
                scale: float = 1.0,
                vms: Sequence[tuple[str, float, int, float, float]] = VMS) -> Result:
    """A run of `seconds` seconds: free memory falls through soft, hard and low, then recovers.
    `scale` > 1 makes the pressure deeper (for comparing two runs); `vms` as `VMS`."""
    t = np.arange(1, seconds + 1, dtype=float)
    phase = t / seconds
    # a dip: 1500 MB free at the start, about 60 MB at 45% of the run, 400 MB at the end
    free = 1500.0 - 1440.0 * np.sin(np.pi * np.clip(phase / 0.9, 0, 1)) ** 0.5 * scale
    free = np.where(phase > 0.9, 400.0, np.maximum(free, 60.0 / scale))
    states = [_state(f) for f in free]
    pressure = np.clip((THRESHOLDS["soft"] - free) / THRESHOLDS["soft"], 0.0, 1.0) * scale

    vm_parts = []
    vm_summaries = []
    for name_, memsz, mctl, act, base in vms:
        balloon_tgt = mctl * pressure * 0.4 * memsz
        balloon = np.convolve(balloon_tgt, np.ones(10) / 10, mode="full")[:seconds]
        swap_tgt = (1 - mctl) * pressure * 0.5 * memsz + pressure ** 2 * 0.1 * memsz
        swapped = np.convolve(swap_tgt, np.ones(20) / 20, mode="full")[:seconds]
        zipped = np.minimum(0.1 * memsz, swapped * 0.5)
        grant = np.clip(memsz * 0.9 - balloon - swapped - zipped, 0, None)
        true_active = memsz * act * (1 + 0.2 * np.sin(t / 20))
        fast = pd.Series(true_active).ewm(alpha=0.3).mean().to_numpy()
        slow = pd.Series(true_active).ewm(alpha=0.05).mean().to_numpy()
        throughput = base * (1 - 0.6 * pressure * act)
        swin = np.round(swapped * 2.0)
        cols: dict[str, Any] = {
            "time_s": t, "vm": name_, "memsz_mb": memsz, "grant_mb": grant,
            "consumed_mb": grant + zipped / 2, "ovhd_mb": 30.0,
            "sztgt_mb": memsz * (1 - 0.5 * pressure), "active_true_mb": true_active,
            "active_est_mb": np.maximum(fast, slow), "active_slow_mb": slow,
            "active_fast_mb": fast, "active_next_mb": true_active * 0.98, "mctl": mctl,
            "mctlsz_mb": balloon, "mctltgt_mb": balloon_tgt, "mctlmax_mb": 0.65 * memsz * mctl,
            "swcur_mb": swapped, "swtgt_mb": swap_tgt, "swin_pages": swin,
            "sztgt_max_mb": memsz * (1 - 0.5 * pressure), "mctltgt_max_mb": balloon_tgt,
            "swtgt_max_mb": swap_tgt,
            "swout_pages": np.round(swap_tgt * 3.0), "cachesz_mb": 0.1 * memsz,
            "zip_mb": zipped / 2, "zip_pages": np.round(zipped), "unzip_pages": np.round(swin / 3),
            "refs": np.round(throughput), "throughput": np.round(throughput),
            "base_throughput": base, "guest_faults": np.round(pressure * 100),
            "hv_faults": swin + 5, "hv_first_touch": 0.0, "hv_sample_faults": 5.0,
            "guest_swap_in": np.round(balloon / 10), "guest_swap_out": np.round(balloon / 8),
            "guest_swapped_mb": balloon / 2, "double_paging": np.round(pressure * 3),
            "vcpu_s": 1.0, "run_s": 0.6 * (1 - 0.6 * pressure * act),
            "fault_s": pressure * 0.1, "io_wait_s": pressure * 0.2,
            "blocked_s": np.where(np.array(states) == "low", 0.25, 0.0),
            "stall_s": pressure * 0.3,
            "shrd_mb": 0.2 * grant, "zero_mb": 0.1 * grant, "shrdsvd_mb": 0.15 * grant,
            "cowh_mb": 0.05 * grant, "cow_faults": np.round(pressure * 2),
        }
        cols["idle_s"] = (1.0 - cols["run_s"] - cols["fault_s"] - cols["io_wait_s"]
                          - cols["blocked_s"])
        # The MMU's columns, nested paging's shape: walks grow with the pressure's misses;
        # the idle VM's are all 0 (a row of zeros is not printed).
        busy = 0.0 if name_ == "idle" else 1.0
        cols["tlb_misses"] = np.round(busy * throughput * (0.02 + 0.01 * pressure))
        cols["walk_s"] = cols["tlb_misses"] * 2e-8
        cols["mmu_traps"] = np.round(busy * 50 * pressure)
        cols["mmu_s"] = cols["mmu_traps"] * 2e-6
        part = pd.DataFrame(cols)
        vm_parts.append(part)
        mean_tp = float(part["throughput"].mean())
        blocked = float(part["blocked_s"].sum())
        peaks = {"balloon": float(balloon.max()), "swapped": float(swapped.max()),
                 "zipped": float(zipped.max())}
        vm_summaries.append({
            "name": name_, "memsz_mb": memsz, "refs": int(part["refs"].sum()),
            "throughput": mean_tp, "base_throughput": base, "slowdown": base / mean_tp,
            **{k: int(part[k].sum()) for k in (
                "guest_faults", "hv_faults", "guest_swap_in", "guest_swap_out", "swin_pages",
                "swout_pages", "zip_pages", "unzip_pages", "double_paging")},
            "blocked_s": blocked,
            "max_balloon_mb": peaks["balloon"], "max_swapped_mb": peaks["swapped"],
            "max_compressed_mb": peaks["zipped"],
            "verdict": _verdict(base / mean_tp, peaks, blocked, 0),  # the engine's wording
        })
    vms = pd.concat(vm_parts, ignore_index=True).sort_values(["time_s"], kind="stable")
    vms = vms.reset_index(drop=True)[list(VM_NAMES)]

    by_t = vms.groupby("time_s")
    transitions = []
    prev = states[0]
    for i, s in enumerate(states):
        if s != prev:
            transitions.append({"time_s": float(t[i]), "from": prev, "to": s,
                                "free_pct": float(free[i] / HOST_MB * 100)})
        prev = s
    trans_per_s = np.zeros(seconds)
    for tr in transitions:
        trans_per_s[int(tr["time_s"]) - 1] += 1
    host = pd.DataFrame({
        "time_s": t, "state": states, "free_mb": free, "free_pct": free / HOST_MB * 100,
        "minfree_mb": 245.76, "used_mb": HOST_MB - free, "total_mb": HOST_MB, "vmk_mb": 300.0,
        "overhead_mb": 90.0, "balloon_mb": by_t["mctlsz_mb"].sum().to_numpy(),
        "mctltgt_mb": by_t["mctltgt_mb"].sum().to_numpy(),
        "swapped_mb": by_t["swcur_mb"].sum().to_numpy(),
        "swtgt_mb": by_t["swtgt_mb"].sum().to_numpy(),
        "compressed_mb": by_t["zip_mb"].sum().to_numpy() * 2,
        "zip_saved_mb": by_t["zip_mb"].sum().to_numpy(),
        "swr_pages": by_t["swin_pages"].sum().to_numpy(),
        "sww_pages": by_t["swout_pages"].sum().to_numpy(), "transitions": trans_per_s,
        **{f"{s}_s": (np.array(states) == s).astype(float) for s in STATES},
        "pshare_shared_mb": by_t["shrd_mb"].sum().to_numpy(),
        "pshare_common_mb": (by_t["shrd_mb"].sum() - by_t["shrdsvd_mb"].sum()).to_numpy(),
        "pshare_saving_mb": by_t["shrdsvd_mb"].sum().to_numpy(),
    })[list(HOST_NAMES)]
    time_in = {s: float(states.count(s)) for s in dict.fromkeys(states)}
    phases = []
    start = 0
    for i in range(1, seconds + 1):
        if i == seconds or states[i] != states[start]:
            sl = vms[(vms["time_s"] > start) & (vms["time_s"] <= i)]
            phases.append({"state": states[start], "start_s": float(start), "end_s": float(i),
                           "throughput": {k: float(v) for k, v in
                                          sl.groupby("vm")["throughput"].mean().items()}})
            start = i
    summary = {
        "scenario": name, "description": "Synthetic run: three VMs, one without a balloon "
        "driver, free memory dipping through every state.", "seed": 42, "complete": complete,
        "simulated_s": float(seconds), "wall_s": 1.5,
        "host": {"memory_mb": HOST_MB, "minfree_mb": 245.76, "threshold_preset": "seed",
                 "thresholds_mb": dict(THRESHOLDS), "states_seen": list(dict.fromkeys(states)),
                 "time_in_state_s": time_in},
        "transitions": transitions, "vms": vm_summaries, "phases": phases,
    }
    return Result(host=host, vms=vms, summary=summary)


class FakeSim:
    """The engine's live interface (`done`, `time_s`, `step_second()`) replaying a synthetic
    result's rows; `seconds` beyond the result's length cycles through them again."""

    def __init__(self, result: Result | None = None, seconds: int | None = None) -> None:
        result = result or make_result(300)
        self.host_rows = result.host.to_dict("records")
        by_time: dict[float, list[dict[str, Any]]] = {}
        for row in result.vms.to_dict("records"):  # one pass: groupby per second is slow
            by_time.setdefault(row["time_s"], []).append(row)
        self.vm_rows = [by_time[t] for t in sorted(by_time)]
        self.seconds = len(self.host_rows) if seconds is None else seconds
        self.steps = 0
        self.time_s = 0.0

    @property
    def done(self) -> bool:
        return self.steps >= self.seconds

    def step_second(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        i = self.steps % len(self.host_rows)
        self.steps += 1
        self.time_s = float(self.steps)
        host = dict(self.host_rows[i], time_s=self.time_s)
        return host, [dict(r, time_s=self.time_s) for r in self.vm_rows[i]]
