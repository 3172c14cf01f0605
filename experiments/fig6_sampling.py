"""Fig. 6 of the ESX paper: active memory sampling.

A "toucher" VM touches a working set that moves between 50 and 250 MB. Each sampling period ESX
invalidates 100 random guest pages and counts how many the guest touches again; the estimate is
the larger of a fast and a slow moving average of that fraction, so it should rise quickly
(fast average) and fall slowly (slow average). The simulator also knows the truth.

The paper's 30 s sample period is used (hypervisor.sample_period; later ESX uses 60 s), with the
simulator's default gains (fast 0.5, slow 0.1: ESX's are not published).

    python experiments/fig6_sampling.py [--out DIR] [--quick]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import COLORS, MIB, Outcome, figure, guest, main, out_dir, save_figure, write_table

import vmemsim
from vmemsim.build import kernel_bytes
from vmemsim.config.schema import Scenario

NAME = "fig6_sampling"
SAMPLE_SIZE = 100
VMKERNEL = 32 * MIB


@dataclass(frozen=True)
class Params:
    vm_mib: int
    scale: float  # working-set sizes relative to the paper's 50-250 MB
    period: float  # s, sampling period
    # (start in sampling periods, working set in the paper's MB): 50 -> 250 -> 100 -> 250 -> 50
    schedule: tuple[tuple[int, int], ...]
    end: int  # periods
    rate: str
    seed: int = 11


# Falls come after long high phases: with the slow gain of 0.1 the slow average needs about 20
# periods to reach a new level, and the fall it then shows is the paper's point.
SCHEDULE = ((0, 50), (4, 250), (24, 100), (48, 250), (62, 50))
FULL = Params(320, 1.0, 30.0, SCHEDULE, 86, "100k/s")  # 43 simulated minutes
# A quarter of the memory and 5 s periods: the same number of samples per phase, 430 s.
QUICK = Params(80, 0.25, 5.0, SCHEDULE, 86, "50k/s")


def scenario(p: Params) -> dict[str, Any]:
    size = max(w for _, w in p.schedule) * p.scale
    phases = [{"at": k * p.period, "wss": int(w * p.scale * MIB)} for k, w in p.schedule]
    return {
        "name": NAME, "seed": p.seed, "duration": p.end * p.period, "baseline": False,
        "hypervisor": {"sample_period": p.period, "sample_size": SAMPLE_SIZE},
        "host": {"memory": 2 * p.vm_mib * MIB + VMKERNEL, "vmkernel": VMKERNEL},
        "vm": [{"name": "toucher", "memory": f"{p.vm_mib}MiB", "overhead": 4 * MIB,
                "guest": guest(p.vm_mib),
                "process": [{"name": "toucher", "workload": "toucher",
                             "size": int(size * MIB), "schedule": phases, "rate": p.rate,
                             "write_frac": 0.1}]}],
    }


def crossing(t: np.ndarray, y: np.ndarray, t0: float, t1: float, level: float,
             rising: bool) -> float:
    """Seconds after t0 until y first reaches `level` (NaN if not before t1)."""
    sel = (t > t0) & (t <= t1)
    hit = y[sel] >= level if rising else y[sel] <= level
    return float(t[sel][np.argmax(hit)] - t0) if hit.any() else math.nan


def run(quick: bool = False, out: Path | str | None = None) -> Outcome:
    p = QUICK if quick else FULL
    folder = out_dir(out, NAME)
    r = vmemsim.simulate(scenario(p))
    v = r.vm("toucher")
    t = v.index.to_numpy(float)
    est = v["active_est_mb"].to_numpy(float)
    true_now = v["active_true_mb"].to_numpy(float)
    memsz = float(v["memsz_mb"].iloc[0])
    bounds = [k * p.period for k, _ in p.schedule] + [p.end * p.period]
    # The guest kernel's active part is active memory too (guest.kernel_active, touched by
    # guest.kernel_refs of the references): the truth is the toucher's set plus it.
    sc = Scenario.model_validate(scenario(p))
    kernel_active = sc.vm[0].guest.kernel_active * kernel_bytes(sc.vm[0]) / MIB
    levels = [w * p.scale + kernel_active for _, w in p.schedule]
    rows = []
    for i, level in enumerate(levels):
        t0, t1 = bounds[i], bounds[i + 1]
        f = level / memsz
        sigma = memsz * math.sqrt(f * (1 - f) / SAMPLE_SIZE)  # one sample's standard error
        # The last third of the phase: steady state after a rise.
        steady = (t > t1 - (t1 - t0) / 3) & (t <= t1)
        row: dict[str, Any] = {
            "phase": i, "start_min": t0 / 60, "true_mb": level,
            "from_mb": levels[i - 1] if i else math.nan,
        }
        if i:
            prev = levels[i - 1]
            rising = level > prev
            row["step"] = "rise" if rising else "fall"
            for q in (0.5, 0.9):
                row[f"est_t{int(q * 100)}_s"] = crossing(t, est, t0, t1, prev + q * (level - prev),
                                                        rising)
            row["truth_t90_s"] = crossing(t, true_now, t0, t1, prev + 0.9 * (level - prev),
                                          rising)
            row["paper"] = "rises quickly" if rising else "falls slowly"
        else:
            row["step"] = "start"
        row["end_est_mb"] = float(est[steady].mean())
        row["end_mae_mb"] = float(np.abs(est[steady] - level).mean())
        row["sample_sigma_mb"] = sigma
        rows.append(row)
    table = pd.DataFrame(rows)[[
        "phase", "start_min", "step", "from_mb", "true_mb", "est_t50_s", "est_t90_s",
        "truth_t90_s", "end_est_mb", "end_mae_mb", "sample_sigma_mb", "paper"]]
    files = write_table(table, folder, NAME)
    files.append(plot(v, p, bounds, levels, folder / f"{NAME}.png"))
    rises = table[table["step"] == "rise"]
    falls = table[table["step"] == "fall"]
    notes = [
        f"sample period {p.period:.0f} s, {SAMPLE_SIZE} pages per sample, VM {p.vm_mib} MB; "
        "gains fast 0.5, slow 0.1 (simulator defaults; ESX's are unpublished)",
        "est_tNN_s: seconds after the step until the estimate covers NN% of it (- : not within "
        "the phase); truth_t90_s: the same for the simulator's per-period true active memory",
        "end_*: mean over the last third of each phase (steady state after a rise, still "
        "decaying after a fall); sample_sigma_mb: standard error of one 100-page sample",
        "the paper reports no numbers for Fig. 6: its claim is the shape (quick rise, slow "
        "fall), so the comparison is qualitative",
    ]
    values = {"rise_t90_s": list(rises["est_t90_s"]), "fall_t50_s": list(falls["est_t50_s"]),
              "fall_t90_s": list(falls["est_t90_s"]), "rise_t50_s": list(rises["est_t50_s"]),
              "rise_end_mae_mb": list(rises["end_mae_mb"]),
              "rise_sigma_mb": list(rises["sample_sigma_mb"]), "period_s": p.period,
              "phase_s": [bounds[i + 1] - bounds[i] for i in range(len(levels))]}
    return Outcome(NAME, "Fig. 6: active memory sampling (toucher)", table, values, files,
                   notes)


def plot(v: pd.DataFrame, p: Params, bounds: list[float], levels: list[float],
         path: Path) -> Path:
    fig, (ax,) = figure(height=4.0)
    t = v.index.to_numpy(float) / 60
    step_t = np.array(bounds) / 60
    ax.step(step_t, [*levels, levels[-1]], where="post", color=COLORS["true"], lw=2,
            label="working set (toucher)")
    ax.plot(t, v["active_true_mb"], color="#9e9e9e", lw=1, ls=":",
            label="true active (pages touched last period)")
    ax.plot(t, v["active_slow_mb"], color=COLORS["slow"], lw=1, ls="--", label="slow average")
    ax.plot(t, v["active_fast_mb"], color=COLORS["fast"], lw=1, ls="--", label="fast average")
    ax.plot(t, v["active_est_mb"], color=COLORS["estimate"], lw=1.8,
            label="estimate = max(slow, fast)")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("memory (MB)")
    ax.set_ylim(0, max(levels) * 1.35)
    ax.set_xlim(0, step_t[-1])
    ax.set_title(f"Active memory sampling: {SAMPLE_SIZE} pages every {p.period:.0f} s")
    ax.legend(loc="upper right", frameon=False, fontsize=8, ncol=2)
    return save_figure(fig, path)


if __name__ == "__main__":
    main(run, __doc__)
