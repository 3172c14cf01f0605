"""Compare runs: per-VM throughput, slowdown, memory reclaimed by each mechanism, time in states.

One row per (run, VM). Numbers come from summary.json where it has them and from the time series
otherwise, so a `Result` read from an esxtop capture (`metrics.esxtop.result_from_esxtop`) can
be compared too (its throughput columns are NaN).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from vmemsim.metrics.columns import STATES
from vmemsim.metrics.result import Result, atomic_write
from vmemsim.report.plots import DPI, PNG_META, STATE_COLORS, vm_order

# (name in the comparison, summary key, time-series column): reclaimed memory per mechanism
MECHANISMS: tuple[tuple[str, str, str], ...] = (
    ("balloon", "max_balloon_mb", "mctlsz_mb"),
    ("compressed", "max_compressed_mb", "zip_mb"),
    ("swapped", "max_swapped_mb", "swcur_mb"),
)
MECH_COLORS = {"balloon": "#ffb300", "compressed": "#8e24aa", "swapped": "#e53935"}


def _dt(t: np.ndarray) -> np.ndarray:
    """Seconds each row stands for: rows are the end of (t - dt, t]."""
    if len(t) == 0:
        return t
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    return np.diff(t, prepend=t[0] - step)


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _mean(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(finite.mean()) if len(finite) else math.nan


def _max(a: np.ndarray) -> float:
    finite = a[np.isfinite(a)]
    return float(finite.max()) if len(finite) else math.nan


def time_in_states(result: Result) -> dict[str, float]:
    """Seconds spent in each of `STATES`: from the summary, else counted from the host rows."""
    given = (result.summary.get("host", {}) or {}).get("time_in_state_s")
    if given:
        return {s: float(given.get(s, 0.0)) for s in STATES}
    host = result.host.sort_values("time_s")
    if host.empty or "state" not in host:
        return {s: math.nan for s in STATES}
    dt = pd.Series(_dt(host["time_s"].to_numpy(float)), index=host.index)
    per = dt.groupby(host["state"].astype(str)).sum()
    return {s: float(per.get(s, 0.0)) for s in STATES}


def _vm_row(result: Result, run: str, name: str, info: dict[str, Any],
            states: dict[str, float]) -> dict[str, Any]:
    d = result.vms[result.vms["vm"].astype(str) == name].sort_values("time_s")
    dt = _dt(d["time_s"].to_numpy(float))

    def series(col: str) -> np.ndarray:
        return d[col].to_numpy(float) if col in d else np.full(len(d), np.nan)

    tp = _float(info.get("throughput", _mean(series("throughput"))))
    base = _float(info.get("base_throughput", _mean(series("base_throughput"))))
    slow = _float(info.get("slowdown", base / tp if tp and math.isfinite(tp) else math.nan))
    memsz = _float(info.get("memsz_mb", _max(series("memsz_mb"))))
    row: dict[str, Any] = {"run": run, "vm": name, "memsz_mb": memsz, "throughput": tp,
                           "base_throughput": base, "slowdown": slow}
    for mech, key, col in MECHANISMS:
        values = series(col)
        row[f"max_{mech}_mb"] = _float(info.get(key, _max(values)))
        # MB held times seconds held: two runs with the same peak can differ a lot here
        row[f"{mech}_mb_s"] = float(np.nansum(values * dt)) if len(values) else math.nan
    blocked = series("blocked_s")
    row["blocked_s"] = _float(info.get("blocked_s", float(np.nansum(blocked))
                                       if np.isfinite(blocked).any() else math.nan))
    row["verdict"] = str(info.get("verdict", ""))
    for s in STATES:
        row[f"time_{s}_s"] = states[s]
    row["simulated_s"] = _float(result.summary.get("simulated_s"))
    row["complete"] = bool(result.summary.get("complete", False))
    return row


def compare(results: Sequence[Result], names: Sequence[str]) -> pd.DataFrame:
    """One row per (run, VM): throughput, slowdown, reclaimed memory (peak MB and MB*s per
    mechanism), blocked time, and the run's time in each state."""
    if len(results) != len(names):
        raise ValueError(f"{len(results)} results but {len(names)} names")
    if len(set(names)) != len(names):
        raise ValueError(f"run names must differ, got {list(names)}")
    rows = []
    for result, run in zip(results, names, strict=True):
        states = time_in_states(result)
        infos = {str(v.get("name")): v for v in result.summary.get("vms", []) or []}
        for vm in vm_order(result):
            rows.append(_vm_row(result, run, vm, infos.get(vm, {}), states))
    return pd.DataFrame(rows)


def unique_names(results: Sequence[Result]) -> list[str]:
    """Scenario names, with ' (2)', ' (3)' ... added where two runs share one."""
    seen: dict[str, int] = {}
    out = []
    for r in results:
        seen[r.name] = seen.get(r.name, 0) + 1
        out.append(r.name if seen[r.name] == 1 else f"{r.name} ({seen[r.name]})")
    return out


def _text(s: object) -> str:
    return str(s).replace("$", r"\$")


def plot_compare(df: pd.DataFrame) -> Figure:
    runs = list(dict.fromkeys(df["run"])) if len(df) else []
    vms = list(dict.fromkeys(df["vm"])) if len(df) else []
    fig = Figure(figsize=(11.0, 10.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle("Comparison of runs", fontsize=13, fontweight="bold")
    ax_slow, ax_mem, ax_state = fig.subplots(3, 1)
    if not runs:
        for ax in (ax_slow, ax_mem, ax_state):
            ax.set_axis_off()
        ax_slow.text(0.5, 0.5, "No runs to compare", ha="center", va="center")
        return fig
    width = 0.8 / len(runs)
    x = np.arange(len(vms))
    for i, run in enumerate(runs):
        sub = df[df["run"] == run].set_index("vm").reindex(vms)
        slow = sub["slowdown"].to_numpy(float)
        # bars grow from 1.0 (unaffected): slowdowns near 1 would look alike from 0
        bars = ax_slow.bar(x + (i - (len(runs) - 1) / 2) * width, np.nan_to_num(slow - 1.0),
                           width, bottom=1.0, label=_text(run), color=f"C{i % 10}")
        ax_slow.bar_label(bars, labels=[_f(v, ".3f") for v in slow], fontsize=7, padding=2)
    ax_slow.axhline(1.0, color="#616161", lw=0.8)
    ax_slow.margins(y=0.15)
    ax_slow.set_xticks(x, [_text(v) for v in vms])
    ax_slow.set_ylabel("slowdown (x, base / actual)")
    ax_slow.set_title("Slowdown per VM (1.0 = unaffected)", loc="left")
    ax_slow.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_slow.grid(True, axis="y", alpha=0.3)

    # one bar per (VM, run), stacked by mechanism
    labels, pos = [], []
    for j, vm in enumerate(vms):
        for i, run in enumerate(runs):
            pos.append(j * (len(runs) + 1) + i)
            labels.append(f"{_text(vm)}\n{_text(run)}")
    bottom = np.zeros(len(pos))
    for mech, _, _ in MECHANISMS:
        vals = np.array([_float(df[(df["vm"] == vm) & (df["run"] == run)][f"max_{mech}_mb"]
                                .iloc[0]) if ((df["vm"] == vm) & (df["run"] == run)).any()
                         else 0.0 for vm in vms for run in runs])
        vals = np.nan_to_num(vals)
        ax_mem.bar(pos, vals, 0.8, bottom=bottom, label=mech, color=MECH_COLORS[mech])
        bottom += vals
    ax_mem.set_xticks(pos, labels, fontsize=7)
    ax_mem.set_ylabel("MB (peak of each)")
    ax_mem.set_title("Memory reclaimed per VM: peak balloon, compressed, swapped", loc="left")
    ax_mem.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_mem.grid(True, axis="y", alpha=0.3)

    per_run = df.drop_duplicates("run").set_index("run").reindex(runs)
    left = np.zeros(len(runs))
    y = np.arange(len(runs))
    for s in STATES:
        vals = np.nan_to_num(per_run[f"time_{s}_s"].to_numpy(float))
        if vals.any():
            ax_state.barh(y, vals, left=left, color=STATE_COLORS[s], label=s)
        left += vals
    ax_state.set_yticks(y, [_text(r) for r in runs])
    ax_state.invert_yaxis()
    ax_state.set_xlabel("simulated time (s)")
    ax_state.set_title("Time in each memory state", loc="left")
    ax_state.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def write_compare(results: Sequence[Result], out_dir: Path | str,
                  names: Sequence[str] | None = None) -> list[Path]:
    """Write `compare.csv` and `compare.png` into `out_dir`; returns both paths."""
    out = Path(out_dir)
    df = compare(results, list(names) if names is not None else unique_names(results))
    csv_path, png_path = out / "compare.csv", out / "compare.png"
    atomic_write(csv_path, lambda p: df.to_csv(p, index=False, float_format="%.6g"))
    fig = plot_compare(df)
    atomic_write(png_path, lambda p: fig.savefig(p, format="png", dpi=DPI, metadata=PNG_META))
    return [csv_path, png_path]


def _f(v: Any, fmt: str) -> str:
    x = _float(v)
    return format(x, fmt) if math.isfinite(x) else "-"


def print_compare(df: pd.DataFrame, console: Console) -> None:
    """The comparison as rich tables: per VM, then time in states per run."""
    table = Table(title="Per-VM comparison", title_justify="left", header_style="bold")
    heads = ("run", "VM", "throughput\nrefs/s", "slowdown", "max balloon\nMB",
             "max compr.\nMB", "max swapped\nMB", "balloon\nMB*s", "swapped\nMB*s",
             "blocked\ns")
    for h in heads:
        table.add_column(h, justify="left" if h in ("run", "VM") else "right")
    for r in df.itertuples(index=False):
        table.add_row(str(r.run), str(r.vm), _f(r.throughput, ",.0f"), _f(r.slowdown, ".3f"),
                      _f(r.max_balloon_mb, ",.1f"), _f(r.max_compressed_mb, ",.1f"),
                      _f(r.max_swapped_mb, ",.1f"), _f(r.balloon_mb_s, ",.0f"),
                      _f(r.swapped_mb_s, ",.0f"), _f(r.blocked_s, ",.1f"))
    console.print(table)
    states = Table(title="Time in each memory state (s)", title_justify="left",
                   header_style="bold")
    states.add_column("run")
    for s in STATES:
        states.add_column(s, justify="right")
    if len(df):
        for r in df.drop_duplicates("run").itertuples(index=False):
            states.add_row(str(r.run), *(_f(getattr(r, f"time_{s}_s"), ",.0f") for s in STATES))
    console.print(states)
