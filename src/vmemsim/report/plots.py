"""The report's figures as PNG files (matplotlib, Agg canvas, no pyplot global state).

Each figure answers one question; `FIGURES` holds its file name, title and the caption the HTML
report prints under it. Same data gives the same bytes: PNG metadata carries no version or date.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import EngFormatter, FixedLocator, FuncFormatter, LogLocator, NullFormatter

from vmemsim import _fork
from vmemsim.metrics.columns import STATES
from vmemsim.metrics.result import Result, atomic_write

# One colour per state, calm to alarming; the HTML timeline uses the same ones.
STATE_COLORS: dict[str, str] = {
    "high": "#4caf50",
    "clear": "#9ccc65",
    "soft": "#ffd54f",
    "hard": "#ff9800",
    "low": "#e53935",
}
MAX_VMS = 12  # more subplots than this stop being readable; the most reclaimed VMs are shown
MAX_POINTS = 2400  # points per line: about two per pixel of a figure's width
DPI = 100
WIDTH_IN = 11.0
PNG_META = {"Software": None}  # no matplotlib version in the file: same data, same bytes


@dataclass(frozen=True)
class FigureInfo:
    file: str
    title: str
    caption: str
    baseline: bool = False  # draws the baseline's columns: only once the baseline is in


FIGURES: dict[str, FigureInfo] = {f.file: f for f in (
    FigureInfo("memory_state.png", "Host memory state",
               "Free machine memory (black) against the thresholds of each memory state "
               "(dashed lines); the background colour is the state the host was in. Look for "
               "when free memory crosses a threshold and how long the host stays in soft, hard "
               "or low: ballooning starts in soft, swapping and compression in hard, blocking "
               "in low. The lower panel zooms in on the thresholds."),
    FigureInfo("vm_memory.png", "Where each VM's memory is",
               "Each VM's configured memory (dashed line) split into active and idle granted "
               "memory (backed by machine pages), memory reclaimed by the balloon, held "
               "compressed, and swapped by the host. Memory above the stack was never touched. "
               "Reclamation should take idle memory first; a shrinking active band means the "
               "VM lost memory it was using."),
    FigureInfo("reclamation_targets.png", "Balloon and swap: targets vs actual",
               "Dashed lines are the targets the host set (MCTLTGT, SWTGT), solid lines what "
               "was reclaimed (MCTLSZ, SWCUR); the dotted line is the balloon limit (MCTLMAX). "
               "A balloon that lags its target, or a VM without a balloon driver, leaves the "
               "host to swap instead."),
    FigureInfo("active_estimate.png", "Sampled active memory vs the truth",
               "ESX estimates a VM's active memory by sampling 100 random pages per period "
               "(blue: the estimate, the larger of the fast and slow averages). The black line "
               "is the true working set, which only a simulator knows. The estimate should rise "
               "quickly when the working set grows and fall slowly when it shrinks."),
    FigureInfo("throughput.png", "Throughput and slowdown",
               "Work each VM completes per simulated second (solid) against the same VM on a "
               "host with ample memory (dashed). The bottom panel shows slowdown = base / "
               "actual throughput (10 s moving average) on a log scale, so that a VM that "
               "almost stopped (thousands of times slower) does not flatten the others: 1x "
               "means unaffected, and 2x to 4x is as far as 1x to 2x. A gap is a window in "
               "which the VM did no work at all (or has no baseline).", baseline=True),
)}

Stack = tuple[str, str, Callable[[pd.DataFrame], np.ndarray]]
MEMORY_STACK: tuple[Stack, ...] = (
    ("active", "#1565c0",
     lambda d: np.minimum(d["active_true_mb"].to_numpy(float), d["grant_mb"].to_numpy(float))),
    ("idle granted", "#90caf9",
     lambda d: np.clip(d["grant_mb"].to_numpy(float) - d["active_true_mb"].to_numpy(float),
                       0, None)),
    ("ballooned", "#ffb300", lambda d: d["mctlsz_mb"].to_numpy(float)),
    ("compressed (cache used)", "#8e24aa", lambda d: d["zip_mb"].to_numpy(float)),
    ("swapped", "#e53935", lambda d: d["swcur_mb"].to_numpy(float)),
)


def _text(s: object) -> str:
    # '$' would switch matplotlib into mathtext and can make a title fail to render.
    return str(s).replace("$", r"\$")


def vm_order(result: Result) -> list[str]:
    """VM names in summary order, then any that only the time series has."""
    names = [str(v["name"]) for v in result.summary.get("vms", [])]
    if "vm" in result.vms.columns:
        names += [str(n) for n in pd.unique(result.vms["vm"])]
    return list(dict.fromkeys(names))


def select_vms(result: Result, limit: int = MAX_VMS) -> tuple[list[str], int]:
    """At most `limit` VMs for per-VM figures, the most reclaimed ones, in run order; and the
    total count (to say in the title that some were left out)."""
    names = vm_order(result)
    if len(names) <= limit:
        return names, len(names)
    vms = result.vms
    reclaimed = vms.assign(r=vms["mctlsz_mb"] + vms["swcur_mb"] + vms["zip_mb"])
    peak = reclaimed.groupby(vms["vm"].astype(str))["r"].max()
    top = set(sorted(names, key=lambda n: (-float(peak.get(n, 0.0)), names.index(n)))[:limit])
    return [n for n in names if n in top], len(names)


def state_segments(host: pd.DataFrame) -> list[tuple[str, float, float]]:
    """Contiguous runs of one state as (state, start_s, end_s); a row covers (t - dt, t]."""
    if host.empty or "state" not in host:
        return []
    t = host["time_s"].to_numpy(float)
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    states = host["state"].astype(str).to_numpy()
    starts = np.flatnonzero(np.r_[True, states[1:] != states[:-1]])
    ends = np.r_[starts[1:], len(t)] - 1
    return [(str(states[a]), float(t[a] - dt), float(t[b])) for a, b in zip(starts, ends,
                                                                            strict=True)]


def worst_per_bin(segs: list[tuple[str, float, float]],
                  bins: int) -> list[tuple[str, float, float]]:
    """Merge segments into `bins` equal intervals, each taking the most severe state in it, so a
    brief drop into low is not hidden by the high around it."""
    if not segs:
        return []
    t0, span = segs[0][1], max(segs[-1][2] - segs[0][1], 1e-9)
    severity = {s: i for i, s in enumerate(STATES)}
    worst = np.full(bins, -1)
    for state, a, b in segs:
        lo = min(int((a - t0) / span * bins), bins - 1)
        hi = max(min(int(np.ceil((b - t0) / span * bins)), bins), lo + 1)
        worst[lo:hi] = np.maximum(worst[lo:hi], severity.get(state, 0))
    out: list[tuple[str, float, float]] = []
    for i, w in enumerate(worst):
        state = STATES[max(int(w), 0)]
        a, b = t0 + span * i / bins, t0 + span * (i + 1) / bins
        if out and out[-1][0] == state:
            out[-1] = (state, out[-1][1], b)
        else:
            out.append((state, a, b))
    return out


def _segments(result: Result) -> list[tuple[str, float, float]]:
    segs = state_segments(result.host.sort_values("time_s"))
    # more bands than pixels only costs drawing time
    return worst_per_bin(segs, MAX_POINTS // 2) if len(segs) > MAX_POINTS // 2 else segs


def _reduce(d: pd.DataFrame, how: str = "mean") -> tuple[pd.DataFrame, int]:
    """At most MAX_POINTS rows: k-second buckets (`how` of each numeric column, time_s the
    bucket's end). A figure 1100 pixels wide cannot show more; drawing them costs seconds."""
    if len(d) <= MAX_POINTS:
        return d, 1
    k = -(-len(d) // MAX_POINTS)
    numeric = d.select_dtypes("number")
    grouped = numeric.groupby(np.arange(len(d)) // k)
    out = grouped.agg(how)
    out["time_s"] = grouped["time_s"].max()
    return out.reset_index(drop=True), k


def _shade(ax: Axes, segs: list[tuple[str, float, float]], alpha: float = 0.12) -> None:
    # one collection per state, not one patch per segment: a flapping run has thousands
    by_state: dict[str, list[list[tuple[float, float]]]] = {}
    for state, t0, t1 in segs:
        by_state.setdefault(state, []).append([(t0, 0.0), (t1, 0.0), (t1, 1.0), (t0, 1.0)])
    for state, verts in by_state.items():
        ax.add_collection(PolyCollection(verts, transform=ax.get_xaxis_transform(), lw=0,
                                         facecolors=STATE_COLORS.get(state, "#bdbdbd"),
                                         alpha=alpha, zorder=0), autolim=False)


def event_times(result: Result) -> list[tuple[float, str]]:
    """Each event's time and a short label (summary.json's events)."""
    out = []
    for e in result.summary.get("events", []) or []:
        what = [k.replace("_", " ") for k in ("set", "power_on", "power_off", "migrate_in",
                                               "migrate_out") if k in e]
        out.append((float(e["time_s"]), f"event {e['index']}: {', '.join(what)}"))
    return out


def _mark_events(ax: Axes, result: Result) -> None:
    """A dashed line at each event's time (the events of the scenario, summary.json)."""
    for t, _ in event_times(result):
        ax.axvline(t, color="#424242", ls="--", lw=0.9, zorder=1)


def _state_legend(segs: list[tuple[str, float, float]], alpha: float) -> list[Patch]:
    seen = {s for s, _, _ in segs}
    order = [s for s in STATES if s in seen] + sorted(seen - set(STATES))
    return [Patch(color=STATE_COLORS.get(s, "#bdbdbd"), alpha=alpha, label=f"{s} state")
            for s in order]


def _new_figure(rows: int, row_h: float, title: str, result: Result) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, max(3.0, rows * row_h + 1.0)), dpi=DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(f"{_text(title)} - {_text(result.name)}", fontsize=13, fontweight="bold")
    return fig


def _per_vm_axes(fig: Figure, names: list[str], extra_rows: int = 0,
                 sharey: bool = True) -> list[Axes]:
    n = len(names) + extra_rows
    axes = fig.subplots(n, 1, sharex=True, sharey=False, squeeze=False)[:, 0].tolist()
    if sharey and len(names) > 1:
        for ax in axes[1:len(names)]:
            ax.sharey(axes[0])
    return axes


def _whole_scale(axes: list[Axes]) -> None:
    """One y scale for panels that share it, from 0 to above the largest thing any of them
    draws. Setting `ylim(bottom=0)` on each shared panel instead froze the scale at the first
    panel's autoscaled top (a 2 GB VM's), cutting a 3 GB VM's configured line and balloon off
    below it."""
    tops = [ax.dataLim.y1 for ax in axes if np.isfinite(ax.dataLim.y1)]
    top = max(tops, default=0.0)
    for ax in axes:
        ax.set_ylim(0.0, top * 1.05 if top > 0 else 1.0)


def _no_data(fig: Figure, what: str) -> None:
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"No {what} in this result", ha="center", va="center", fontsize=14)


def _vm(result: Result, name: str) -> pd.DataFrame:
    return result.vms[result.vms["vm"].astype(str) == name].sort_values("time_s")


def _vm_reduced(result: Result, name: str) -> tuple[pd.DataFrame, int]:
    return _reduce(_vm(result, name))


def _vm_subtitle(ax: Axes, name: str, d: pd.DataFrame) -> None:
    memsz = float(d["memsz_mb"].iloc[0]) if len(d) else float("nan")
    ax.set_title(f"{_text(name)} (MEMSZ {memsz:,.0f} MB)", loc="left", fontsize=10)


def _footnote(ax: Axes, shown: int, total: int, bucket: int, how: str = "averages") -> None:
    """Say under the x label what the figure leaves out or averages."""
    notes = []
    if shown < total:
        notes.append(f"Showing the {shown} most reclaimed of {total} VMs.")
    if bucket > 1:
        notes.append(f"Lines are {bucket}-second {how}.")
    if notes:
        ax.set_xlabel(ax.get_xlabel() + "\n" + " ".join(notes), fontsize=9)


def plot_memory_state(result: Result) -> Figure:
    host = result.host.sort_values("time_s")
    fig = _new_figure(2, 2.6, FIGURES["memory_state.png"].title, result)
    if host.empty:
        _no_data(fig, "host time series")
        return fig
    top, zoom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    segs = _segments(result)
    # the minimum of each bucket: the dips into a state are what this figure is for
    host, k = _reduce(host[["time_s", "free_mb"]], how="min")
    thresholds = {k: float(v) for k, v in
                  result.summary.get("host", {}).get("thresholds_mb", {}).items()
                  if v is not None and np.isfinite(float(v))}
    t = host["time_s"].to_numpy(float)
    free = host["free_mb"].to_numpy(float)
    for ax in (top, zoom):
        _shade(ax, segs, alpha=0.3)
        ax.plot(t, free, color="black", lw=1.5, label="free memory")
        _mark_events(ax, result)
        for state, level in sorted(thresholds.items(), key=lambda kv: -kv[1]):
            color = STATE_COLORS.get(state, "#616161")
            ax.axhline(level, color=color, ls="--", lw=1.2)
        ax.set_ylabel("free memory (MB)")
        ax.grid(True, alpha=0.3)
    top.set_ylim(bottom=0)
    for te, what in event_times(result):
        top.text(te, 0.98, f" {what}", transform=top.get_xaxis_transform(), rotation=90,
                 fontsize=7, va="top", ha="left", color="#424242")
    # The zoom shows the thresholds and the free memory near them, whatever the host size.
    high_mark = max(thresholds.values(), default=float(np.nanmin(free)) or 1.0)
    zoom.set_ylim(0, high_mark * 1.6)
    for state, level in thresholds.items():
        zoom.annotate(f"{state} {level:,.0f} MB", xy=(1.0, level), xycoords=("axes fraction",
                      "data"), xytext=(4, 0), textcoords="offset points", va="center",
                      fontsize=8, color="#424242", annotation_clip=False)
    zoom.set_title("zoom on the thresholds", loc="left", fontsize=9)
    zoom.set_xlabel("simulated time (s)")
    _footnote(zoom, 0, 0, k, how="minima")
    if len(state_segments(result.host.sort_values("time_s"))) > len(segs):
        zoom.set_xlabel(zoom.get_xlabel() + " The background shows the most severe state of "
                        "each interval: the host changed state too often to draw each change.",
                        fontsize=9)
    handles = [top.get_lines()[0]] + _state_legend(segs, 0.3)
    handles.append(top.plot([], [], color="#616161", ls="--", label="state thresholds")[0])
    if event_times(result):
        handles.append(top.plot([], [], color="#424242", ls="--", lw=0.9, label="event")[0])
    top.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return fig


def plot_vm_memory(result: Result) -> Figure:
    names, total = select_vms(result)
    fig = _new_figure(len(names), 2.0, FIGURES["vm_memory.png"].title, result)
    if not names:
        _no_data(fig, "VMs")
        return fig
    axes = _per_vm_axes(fig, names)
    segs = _segments(result)
    for ax, name in zip(axes, names, strict=True):
        d, k = _vm_reduced(result, name)
        t = d["time_s"].to_numpy(float)
        _shade(ax, segs)
        _mark_events(ax, result)
        ax.stackplot(t, *[f(d) for _, _, f in MEMORY_STACK],
                     labels=[lbl for lbl, _, _ in MEMORY_STACK],
                     colors=[c for _, c, _ in MEMORY_STACK], lw=0)
        ax.plot(t, d["memsz_mb"].to_numpy(float), color="black", ls="--", lw=1,
                label="configured (MEMSZ)")
        _vm_subtitle(ax, name, d)
        ax.set_ylabel("MB")
        ax.grid(True, alpha=0.3)
    _whole_scale(axes)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1].set_xlabel("simulated time (s)")
    _footnote(axes[-1], len(names), total, k)
    return fig


def plot_targets(result: Result) -> Figure:
    names, total = select_vms(result)
    fig = _new_figure(len(names), 2.0, FIGURES["reclamation_targets.png"].title, result)
    if not names:
        _no_data(fig, "VMs")
        return fig
    axes = _per_vm_axes(fig, names)
    segs = _segments(result)
    for ax, name in zip(axes, names, strict=True):
        d, k = _vm_reduced(result, name)
        t = d["time_s"].to_numpy(float)
        _shade(ax, segs)
        _mark_events(ax, result)
        ax.plot(t, d["mctlsz_mb"], color="#ef6c00", lw=1.6, label="balloon (MCTLSZ)")
        ax.plot(t, d["mctltgt_mb"], color="#ef6c00", lw=1.2, ls="--",
                label="balloon target (MCTLTGT)")
        ax.plot(t, d["mctlmax_mb"], color="#ef6c00", lw=0.8, ls=":",
                label="balloon limit (MCTLMAX)")
        ax.plot(t, d["swcur_mb"], color="#c62828", lw=1.6, label="swapped (SWCUR)")
        ax.plot(t, d["swtgt_mb"], color="#c62828", lw=1.2, ls="--", label="swap target (SWTGT)")
        if len(d) and not (d["mctl"].fillna(0) > 0).any():
            ax.text(0.99, 0.92, "no balloon driver (MCTL? = N): the host must swap",
                    transform=ax.transAxes, ha="right", va="top", fontsize=8, style="italic")
        _vm_subtitle(ax, name, d)
        ax.set_ylabel("MB")
        ax.grid(True, alpha=0.3)
    _whole_scale(axes)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1].set_xlabel("simulated time (s)")
    _footnote(axes[-1], len(names), total, k)
    return fig


def plot_active_estimate(result: Result) -> Figure:
    names, total = select_vms(result)
    fig = _new_figure(len(names), 2.0, FIGURES["active_estimate.png"].title, result)
    if not names:
        _no_data(fig, "VMs")
        return fig
    axes = _per_vm_axes(fig, names, sharey=False)  # working sets differ by orders of magnitude
    for ax, name in zip(axes, names, strict=True):
        d, k = _vm_reduced(result, name)
        t = d["time_s"].to_numpy(float)
        ax.plot(t, d["active_true_mb"], color="black", lw=2.0, label="true active (simulator)")
        ax.plot(t, d["active_est_mb"], color="#1565c0", lw=1.5, label="estimate (TCHD, %ACTV)")
        ax.plot(t, d["active_slow_mb"], color="#2e7d32", lw=1.0, ls="--",
                label="slow average (%ACTVS)")
        ax.plot(t, d["active_fast_mb"], color="#ef6c00", lw=1.0, ls="--",
                label="fast average (%ACTVF)")
        _vm_subtitle(ax, name, d)
        ax.set_ylabel("MB")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[-1].set_xlabel("simulated time (s)")
    _footnote(axes[-1], len(names), total, k)
    return fig


def slowdown_series(d: pd.DataFrame, window: int = 10) -> pd.Series:
    """base / actual throughput, each a `window`-second moving average (no division by 0)."""
    tp = d["throughput"].astype(float).rolling(window, min_periods=1).mean()
    base = d["base_throughput"].astype(float).rolling(window, min_periods=1).mean()
    return (base / tp.where(tp > 0)).rename("slowdown")


def plot_throughput(result: Result) -> Figure:
    names, total = select_vms(result)
    fig = _new_figure(len(names) + 1, 1.9, FIGURES["throughput.png"].title, result)
    if not names:
        _no_data(fig, "VMs")
        return fig
    axes = _per_vm_axes(fig, names, extra_rows=1, sharey=False)
    segs = _segments(result)
    eng = EngFormatter(sep="")
    colors = [f"C{i % 10}" for i in range(len(names))]
    for ax, name, color in zip(axes, names, colors, strict=False):
        d, k = _vm_reduced(result, name)
        t = d["time_s"].to_numpy(float)
        _shade(ax, segs)
        _mark_events(ax, result)
        ax.plot(t, d["throughput"], color=color, lw=1.4, label="throughput")
        ax.plot(t, d["base_throughput"], color="#616161", lw=1.2, ls="--",
                label="base (ample memory)")
        _vm_subtitle(ax, name, d)
        ax.set_ylabel("refs/s")
        ax.yaxis.set_major_formatter(eng)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    slow_ax = axes[-1]
    _shade(slow_ax, segs)
    _mark_events(slow_ax, result)
    values = []
    for name, color in zip(names, colors, strict=True):
        full = _vm(result, name)
        slow, _ = _reduce(pd.DataFrame({"time_s": full["time_s"].to_numpy(float),
                                        "slowdown": slowdown_series(full).to_numpy(float)}))
        slow_ax.plot(slow["time_s"], slow["slowdown"], color=color, lw=1.4, label=_text(name))
        values.append(slow["slowdown"].to_numpy(float))
    slow_ax.axhline(1.0, color="#616161", lw=0.8)
    _slowdown_scale(slow_ax, np.concatenate(values) if values else np.empty(0))
    slow_ax.set_title("slowdown (base / actual, 10 s average, log scale)", loc="left",
                      fontsize=10)
    slow_ax.set_ylabel("x slower")
    slow_ax.set_xlabel("simulated time (s)")
    slow_ax.grid(True, alpha=0.3)
    slow_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _footnote(axes[-1], len(names), total, k)
    return fig


def _slowdown_scale(ax: Axes, values: np.ndarray) -> None:
    """A log scale, chosen over a cap: slowdown is a ratio, so equal factors get equal heights
    (1x to 2x as tall as 2x to 4x), and a VM whose throughput fell near 0 (40,000x) takes a few
    decades at the top instead of squashing every other VM's 1-5x into the bottom pixel row;
    nothing is clipped, so its true value is on the axis. Ticks at 1, 2, 5 x 10^n, or only the
    powers of ten when the range spans many decades."""
    finite = values[np.isfinite(values) & (values > 0)]
    low = min(0.9, float(finite.min()) * 0.9) if len(finite) else 0.9
    high = max(1.2, float(finite.max()) * 1.3) if len(finite) else 1.2
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    decades = np.log10(high / low)
    subs = (1.0,) if decades > 2.5 else (1.0, 2.0, 5.0) if decades > 0.7 else (
        1.0, 1.1, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0)
    ticks = [m * 10.0 ** e for e in range(int(np.floor(np.log10(low))),
                                          int(np.ceil(np.log10(high))) + 1)
             for m in subs if low <= m * 10.0 ** e <= high]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: f"{v:g}x" if v < 1000 else f"{v:,.0f}x"))
    ax.yaxis.set_minor_locator(LogLocator(subs="auto"))
    ax.yaxis.set_minor_formatter(NullFormatter())


PLOTTERS: dict[str, Callable[[Result], Figure]] = {
    "memory_state.png": plot_memory_state,
    "vm_memory.png": plot_vm_memory,
    "reclamation_targets.png": plot_targets,
    "active_estimate.png": plot_active_estimate,
    "throughput.png": plot_throughput,
}


def save_figure(fig: Figure, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=DPI, metadata=PNG_META))
    return path


def write_plots(result: Result, out_dir: Path | str,
                drawn: FigureJob | None = None) -> list[Path]:
    """Write every figure of `FIGURES` into `out_dir`, but those a job started earlier draws
    (`drawn`, waited for here); returns their paths in report order."""
    out = Path(out_dir)
    for file, plot in PLOTTERS.items():
        if drawn is None or file not in drawn.files:
            save_figure(plot(result), out / file)
    if drawn is not None:
        drawn.wait()
    return [out / file for file in FIGURES]


def figures_without_baseline() -> list[str]:
    """The figures a run can draw before its baseline is in: all but the throughput's."""
    return [file for file, info in FIGURES.items() if not info.baseline]


class FigureJob:
    """Figures drawn in a forked process while this one goes on: `vmemsim run` draws those
    that need no baseline while the baseline's processes finish, then the rest beside them
    (matplotlib takes 0.4-1.3 s a figure, 3.5 s for the default scenario's five).

    Without a second core, or where this process may not fork (`_fork.can_fork`), or if the
    fork fails, nothing starts and `wait` draws them here; it also draws any the child did not
    write (it failed, or was killed), so a failure shows as it would without the job.
    """

    def __init__(self, result: Result, out_dir: Path | str, files: Iterable[str]) -> None:
        import multiprocessing as mp

        self.result = result
        self.out = Path(out_dir)
        self.files = [f for f in FIGURES if f in set(files)]
        self._proc: Any = None
        self._recv: Any = None
        self.forked = False  # a child draws them (else `wait` does, here)
        # then "running", and "ok", what went wrong in the child, or "cancelled"
        self.status = "not started"
        self._drawn = False  # wait drew them here
        self._done: list[str] = []  # those the child wrote
        if not self.files or not _fork.can_fork():
            return
        ctx = mp.get_context("fork")  # inherits matplotlib and the result: nothing to load
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=self._child, args=(send, os.getpid()), daemon=True,
                           name="vmemsim-figures")
        try:
            with _fork.sigint_blocked():
                try:
                    proc.start()
                except OSError:  # no memory to fork a large simulation's process: wait draws
                    recv.close()
                    return
                self._proc, self._recv = proc, recv
                self.forked = True
                self.status = "running"
        except BaseException:  # a Ctrl-C held across the fork: the child is ours to stop
            self.cancel()
            raise
        finally:
            send.close()

    def _child(self, conn: Any, parent: int) -> None:
        # Terminated (cancel, or the parent's death): leave through atomic_write's cleanup,
        # which removes the temporary file a figure was being written to.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        _fork.child_start(parent, signal.SIGTERM)
        done: list[str] = []
        try:
            for file in self.files:
                save_figure(PLOTTERS[file](self.result), self.out / file)
                done.append(file)
            msg = "ok"
        except BaseException as exc:  # noqa: BLE001 - the parent draws it again, and fails
            msg = f"{type(exc).__name__}: {exc}"
        try:
            conn.send((msg, done))
        except OSError:  # the parent went away
            pass
        finally:
            conn.close()

    def wait(self) -> list[Path]:
        """The figures' paths, once written (by the child, or here)."""
        if self._proc is not None:
            try:
                self.status, self._done = self._recv.recv()
            except (EOFError, OSError):
                self.status = "the figures' process died"
            self._proc.join()
            self._recv.close()
            self._proc = None
        if self.status != "ok" and not self._drawn:
            self._remove_partial()  # a child killed mid-write leaves its temporary file
            for file in self.files:
                if file not in self._done:
                    save_figure(PLOTTERS[file](self.result), self.out / file)
            self._drawn = True
        return [self.out / file for file in self.files]

    def cancel(self) -> None:
        """Stop the child if it still runs (the run failed or was interrupted)."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join()
            self._recv.close()
            self._proc = None
            self._remove_partial()
            self.status = "cancelled"

    def _remove_partial(self) -> None:
        for file in self.files:
            for tmp in self.out.glob(f".{file}.*.tmp"):  # atomic_write's temporary names
                tmp.unlink(missing_ok=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
