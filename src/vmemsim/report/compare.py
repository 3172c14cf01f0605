"""Compare runs: per-VM throughput, slowdown, memory reclaimed by each mechanism, time in states.

One row per (run, VM). Numbers come from summary.json where it has them and from the time series
otherwise, so a `Result` read from an esxtop capture (`metrics.esxtop.result_from_esxtop`) can
be compared too (its throughput columns are NaN).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from vmemsim.metrics.columns import STATES
from vmemsim.metrics.result import Result, atomic_write
from vmemsim.metrics.slowdown import ratio
from vmemsim.report.plots import DPI, PNG_META, STATE_COLORS, vm_order

# (name in the comparison, summary key, time-series column): reclaimed memory per mechanism
MECHANISMS: tuple[tuple[str, str, str], ...] = (
    ("balloon", "max_balloon_mb", "mctlsz_mb"),
    ("compressed", "max_compressed_mb", "zip_mb"),
    ("swapped", "max_swapped_mb", "swcur_mb"),
)
MECH_COLORS = {"balloon": "#ffb300", "compressed": "#8e24aa", "swapped": "#e53935"}
INTERVAL_KEYS = ("slowdown", "throughput")  # summary keys with a mean and 95% interval


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
    # Replicates (vmemsim run --seeds N): the mean over the seeds, not the first seed's, and
    # its 95% interval; one seed is its own point interval [v, v].
    seeds = len(result.summary.get("seeds") or []) or 1
    intervals: dict[str, float] = {}
    for key in INTERVAL_KEYS:
        value = slow if key == "slowdown" else tp
        if seeds > 1 and f"{key}_ci" in info:
            value = _float(info.get(f"{key}_mean", value))
            lo, hi = (_float(x) for x in info[f"{key}_ci"])
        else:
            lo = hi = value
        intervals |= {key: value, f"{key}_ci_low": lo, f"{key}_ci_high": hi}
    tp, slow = intervals.pop("throughput"), intervals.pop("slowdown")
    row: dict[str, Any] = {"run": run, "vm": name, "memsz_mb": memsz, "throughput": tp,
                           "base_throughput": base, "slowdown": slow, "seeds": seeds,
                           **intervals}
    for mech, key, col in MECHANISMS:
        values = series(col)
        row[f"max_{mech}_mb"] = _float(info.get(key, _max(values)))
        # MB held times seconds held: two runs with the same peak can differ a lot here
        row[f"{mech}_mb_s"] = float(np.nansum(values * dt)) if len(values) else math.nan
    blocked = series("blocked_s")
    row["blocked_s"] = _float(info.get("blocked_s", float(np.nansum(blocked))
                                       if np.isfinite(blocked).any() else math.nan))
    for col in ("tlb_misses", "walk_s", "mmu_traps", "mmu_s"):  # where the MMU's time went
        values = series(col)
        row[col] = _float(info.get(col, float(np.nansum(values))
                                   if np.isfinite(values).any() else math.nan))
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
    df = pd.DataFrame(rows)
    # Against the first run, when any run has seeds: is the difference beyond the intervals
    # (they do not overlap)? NaN for the first run itself and when no run has replicates.
    replicated = len(df) and (df["seeds"] > 1).any()
    for key in INTERVAL_KEYS:
        beyond = []
        for r in df.itertuples(index=False) if len(df) else []:
            first = df[(df["vm"] == r.vm) & (df["run"] == names[0])]
            if not replicated or r.run == names[0] or first.empty:
                beyond.append(math.nan)
                continue
            f = first.iloc[0]
            beyond.append(apart((f[f"{key}_ci_low"], f[f"{key}_ci_high"]),
                                (getattr(r, f"{key}_ci_low"), getattr(r, f"{key}_ci_high"))))
        df[f"{key}_beyond_ci"] = beyond
    return df


def apart(a: tuple[float, float], b: tuple[float, float]) -> float:
    """1.0 when two intervals do not overlap (the difference is beyond them), 0.0 when they
    do, NaN when either is unknown. Disjoint 95% intervals are a conservative test: a
    difference can be real with overlapping ones, never the other way about."""
    lo_a, hi_a = (_float(x) for x in a)
    lo_b, hi_b = (_float(x) for x in b)
    if not all(math.isfinite(x) for x in (lo_a, hi_a, lo_b, hi_b)):
        return math.nan
    return float(hi_a < lo_b or hi_b < lo_a)


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


LABEL_CHARS = 14  # a run's name under its bar: longer ones are cut, with "…" (the legend and
# the state panel have it whole)
AXES_SHARE = 0.7  # of the figure's width, for the axes (the legends take the rest)


def _short(s: object, n: int = LABEL_CHARS) -> str:
    text = str(s)
    return _text(text if len(text) <= n else text[:n - 1] + "\u2026")


def _wrap(s: object, n: int = LABEL_CHARS) -> str:
    return _text("\n".join(textwrap.wrap(str(s), n, break_long_words=True)) or str(s))


def _fit_xlabels(ax: Axes, fig: Figure, slots: int) -> None:
    """Slant the x labels when the widest is wider than its slot: side by side they overlapped
    (`vm\nrun` under each of many bars)."""
    renderer = fig.canvas.get_renderer()
    labels = ax.get_xticklabels()
    if not labels:
        return
    slot = fig.get_figwidth() * fig.dpi * AXES_SHARE / max(slots, 1)
    if max(t.get_window_extent(renderer).width for t in labels) > 0.9 * slot:
        for t in labels:
            t.set_rotation(40)
            t.set_horizontalalignment("right")
            t.set_rotation_mode("anchor")


def plot_compare(df: pd.DataFrame) -> Figure:
    runs = list(dict.fromkeys(df["run"])) if len(df) else []
    vms = list(dict.fromkeys(df["vm"])) if len(df) else []
    bars = len(runs) * len(vms) + max(len(vms) - 1, 0)
    # wider for many bars, so that slanted labels still have room (up to twice the width)
    width = min(max(11.0, 3.0 + 0.28 * bars), 22.0)
    fig = Figure(figsize=(width, 10.0), dpi=DPI, layout="constrained")
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
        ax_slow.bar_label(bars, labels=[ratio(v) for v in slow], fontsize=7, padding=2)
    ax_slow.axhline(1.0, color="#616161", lw=0.8)
    ax_slow.margins(y=0.15)
    ax_slow.set_xticks(x, [_wrap(v) for v in vms])
    _fit_xlabels(ax_slow, fig, len(vms))
    ax_slow.set_ylabel("slowdown (x, base / actual)")
    ax_slow.set_title("Slowdown per VM (1x = unaffected)", loc="left")
    ax_slow.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax_slow.grid(True, axis="y", alpha=0.3)

    # one bar per (VM, run), stacked by mechanism; the run under each bar, the VM above its group
    labels, pos = [], []
    for j, _ in enumerate(vms):
        for i, run in enumerate(runs):
            pos.append(j * (len(runs) + 1) + i)
            labels.append(_short(run))
    bottom = np.zeros(len(pos))
    for mech, _, _ in MECHANISMS:
        vals = np.array([_float(df[(df["vm"] == vm) & (df["run"] == run)][f"max_{mech}_mb"]
                                .iloc[0]) if ((df["vm"] == vm) & (df["run"] == run)).any()
                         else 0.0 for vm in vms for run in runs])
        vals = np.nan_to_num(vals)
        ax_mem.bar(pos, vals, 0.8, bottom=bottom, label=mech, color=MECH_COLORS[mech])
        bottom += vals
    ax_mem.set_xticks(pos, labels, fontsize=8)
    _fit_xlabels(ax_mem, fig, len(pos))
    groups = ax_mem.secondary_xaxis("top")
    groups.set_xticks([j * (len(runs) + 1) + (len(runs) - 1) / 2 for j in range(len(vms))],
                      [_wrap(v, 10) for v in vms], fontsize=9, fontweight="bold")
    groups.tick_params(length=0)
    _fit_xlabels(groups, fig, len(vms))
    ax_mem.set_ylabel("MB (peak of each)")
    ax_mem.set_title("Memory reclaimed per VM and run: peak balloon, compressed, swapped",
                     loc="left", pad=18)
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
    ax_state.set_yticks(y, [_wrap(r, 24) for r in runs])
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


def _eng(v: Any) -> str:
    """Three significant digits with k, M, G: 72,641 refs/s is 72.6k (abbreviated so that a
    number never has to be cut to fit a column)."""
    x = _float(v)
    if not math.isfinite(x):
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div * 0.9995:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def _signed(fmt: Callable[[Any], str]) -> Callable[[Any], str]:
    """A difference in the value's own format, with its sign; 0 when none."""
    def diff(d: Any) -> str:
        x = _float(d)
        if not math.isfinite(x):
            return "-"
        return "0" if x == 0 else ("+" if x > 0 else "") + fmt(x)
    return diff


def _one(v: Any) -> str:
    return _f(v, ",.1f")


def _two(v: Any) -> str:
    return _f(v, ",.2f")


def _x(v: Any) -> str:
    return _f(v, ".2f") + "x" if math.isfinite(_float(v)) else "-"


# (label, compare() column, format of a value, of its difference to the first run): the rows
# of each VM, with esxtop's names. `ratio` formats a slowdown as every other output does.
METRICS: tuple[tuple[str, str, Callable[[Any], str], Callable[[Any], str]], ...] = (
    ("slowdown", "slowdown", ratio, _signed(_x)),
    ("refs/s", "throughput", _eng, _signed(_eng)),
    ("MCTLSZ max MB", "max_balloon_mb", _one, _signed(_one)),
    ("ZIP max MB", "max_compressed_mb", _one, _signed(_one)),
    ("SWCUR max MB", "max_swapped_mb", _one, _signed(_one)),
    ("MCTLSZ MB*s", "balloon_mb_s", _eng, _signed(_eng)),
    ("ZIP MB*s", "compressed_mb_s", _eng, _signed(_eng)),
    ("SWCUR MB*s", "swapped_mb_s", _eng, _signed(_eng)),
    ("blocked s", "blocked_s", _one, _signed(_one)),
    # where the MMU's time went (shadow against nested paging): each 0 with mmu = "off"
    ("TLB misses", "tlb_misses", _eng, _signed(_eng)),
    ("walk vCPU-s", "walk_s", _two, _signed(_two)),
    ("MMU traps", "mmu_traps", _eng, _signed(_eng)),
    ("MMU vCPU-s", "mmu_s", _two, _signed(_two)),
)
ALWAYS = ("slowdown", "throughput")  # shown even when 0 or unknown in every run
HEAD_CHARS = 12  # a run's name wraps onto more header lines beyond this: never cut


CI_LABEL = "95% CI"  # the row under slowdown and refs/s when a run has several seeds

Row = tuple[str, str, list[Any]]  # (VM, metric label or CI_LABEL + its metric, values per run)


def _vm_rows(df: pd.DataFrame, runs: list[str]) -> list[Row]:
    """(VM, metric label, value per run) for every VM and metric worth a row; with
    replicates, under slowdown and refs/s their 95% interval per run, (low, high, seeds,
    beyond the first run's?)."""
    out: list[Row] = []
    by = df.set_index(["vm", "run"]) if len(df) else df
    replicated = bool(len(df)) and "seeds" in df and bool((df["seeds"] > 1).any())
    for vm in dict.fromkeys(df["vm"]) if len(df) else []:
        for label, col, _, _ in METRICS:
            values = [_float(by.loc[(vm, r), col]) if (vm, r) in by.index else math.nan
                      for r in runs]
            if col not in ALWAYS and all(not v for v in values if math.isfinite(v)):
                continue  # 0 (or unknown) in every run: a row of zeros says nothing
            out.append((str(vm), label, values))
            if replicated and col in INTERVAL_KEYS:
                cis = [(_float(by.loc[(vm, r), f"{col}_ci_low"]),
                        _float(by.loc[(vm, r), f"{col}_ci_high"]),
                        int(by.loc[(vm, r), "seeds"]),
                        _float(by.loc[(vm, r), f"{col}_beyond_ci"]))
                       if (vm, r) in by.index else None for r in runs]
                out.append((str(vm), f"{CI_LABEL} {label}", cis))
    return out


def _interval(label: str, ci: tuple[float, float, int, float] | None) -> str:
    """A run's interval in a cell: '3.10-6.80x', '72.6k-80.1k'; '1 seed' for a point."""
    if ci is None or not all(math.isfinite(x) for x in ci[:2]):
        return "-"
    lo, hi, seeds, _ = ci
    if seeds <= 1:
        return "1 seed"
    if label.endswith("slowdown"):
        return f"{_f(lo, '.2f')}-{ratio(hi)}"
    return f"{_eng(lo)}-{_eng(hi)}"


def _beyond(ci: tuple[float, float, int, float] | None) -> str:
    """Against the first run: 'beyond' the intervals (they do not overlap), or 'within'."""
    b = math.nan if ci is None else ci[3]
    return "-" if not math.isfinite(b) else ("beyond" if b else "within")


def _vm_table(rows: list[Row], runs: list[str], shown: list[int]) -> Table:
    """The runs `shown` (indices into `runs`; 0, the first run, always) side by side, each
    other run followed by its difference and ratio against the first."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold",
                  show_edge=False)
    table.add_column("VM", overflow="fold")
    table.add_column("metric", no_wrap=True)
    for i in shown:
        table.add_column(_wrap_head(runs[i]), justify="right", no_wrap=True)
        if i:
            table.add_column("diff", justify="right", no_wrap=True)
            table.add_column("ratio", justify="right", no_wrap=True)
    fmt = {label: (f, d) for label, _, f, d in METRICS}
    last_vm = None
    for n, (vm, label, values) in enumerate(rows):
        if label.startswith(CI_LABEL):  # under its metric: the interval, beyond or within
            cells = [vm if vm != last_vm else "", CI_LABEL]
            for i in shown:
                cells.append(_interval(label, values[i]))
                if i:
                    cells += [_beyond(values[i]), ""]
            end = n + 1 == len(rows) or rows[n + 1][0] != vm
            table.add_row(*cells, end_section=end)
            last_vm = vm
            continue
        cells = [vm if vm != last_vm else "", label]
        for i in shown:
            value, diff = fmt[label]
            cells.append(value(values[i]))
            if i:  # against the first run; a ratio to 0 has no meaning
                first = values[0]
                cells += [diff(values[i] - first), ratio(values[i] / first if first else math.nan)]
        end = n + 1 == len(rows) or rows[n + 1][0] != vm
        table.add_row(*cells, end_section=end)
        last_vm = vm
    return table


def _wrap_head(name: str) -> str:
    return "\n".join(textwrap.wrap(name, HEAD_CHARS, break_long_words=True)) or name


def _fits(console: Console, table: Table) -> bool:
    # measured without the console's limit: within it, rich reports at most its width
    wide = console.options.update_width(1 << 20)
    return Measurement.get(console, wide, table).maximum <= console.width


def _chunks(console: Console, rows: list[Row], runs: list[str]) -> list[list[int]]:
    """The other runs in groups that fit the terminal beside the first (wrapping, as a wide
    table wraps on paper), rather than columns cut to "1,04…"."""
    chunks: list[list[int]] = []
    for i in range(1, len(runs)):
        if chunks and _fits(console, _vm_table(rows, runs, [0, *chunks[-1], i])):
            chunks[-1].append(i)
        else:
            chunks.append([i])
    return [[0, *c] for c in chunks] or [[0]]


def print_compare(df: pd.DataFrame, console: Console) -> None:
    """The comparison for a terminal of any width: per VM, one row per metric and one column
    per run, then each run's difference and ratio against the first run; runs that do not fit
    beside the first go to a table of their own below. Then the verdicts and the time in each
    state."""
    runs = [str(r) for r in dict.fromkeys(df["run"])] if len(df) else []
    rows = _vm_rows(df, runs)
    if runs:
        title = Text("Per-VM comparison", style="bold")
        if len(runs) > 1:
            title.append(f": diff and ratio are each run against the first, {runs[0]}",
                         style="")
        console.print(title)
        for shown in _chunks(console, rows, runs):
            console.print(_vm_table(rows, runs, shown))
        console.print(Text("Rows that are 0 in every run are left out. MCTLSZ, ZIP, SWCUR: "
                           "memory ballooned, compressed, host-swapped (MB*s: held over "
                           "time).", style="dim"))
        if any(label.startswith(CI_LABEL) for _, label, _ in rows):
            console.print(Text(
                "Runs with several seeds: slowdown and refs/s are their means over the seeds, "
                "95% CI their 95% interval. beyond: the run's interval and the first run's do "
                "not overlap, the difference is more than seed-to-seed noise; within: they "
                "overlap, more seeds may tell (a run of 1 seed counts as its one value).",
                style="dim"))
        console.print(_verdicts(df))
    states = Table(title="Time in each memory state (s)", title_justify="left",
                   header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    states.add_column("run", overflow="fold")
    for s in STATES:
        states.add_column(s, justify="right", no_wrap=True)
    if len(df):
        for r in df.drop_duplicates("run").itertuples(index=False):
            states.add_row(str(r.run), *(_f(getattr(r, f"time_{s}_s"), ",.0f") for s in STATES))
    console.print(states)


def _verdicts(df: pd.DataFrame) -> Table:
    """Each VM's verdict in each run; a long one wraps under itself."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    grid.add_column(overflow="fold")
    order = {v: i for i, v in enumerate(dict.fromkeys(df["vm"]))}
    last = None
    for r in df.sort_values("vm", key=lambda c: c.map(order), kind="stable").itertuples(
            index=False):
        if not str(r.verdict):  # an esxtop capture has none
            continue
        grid.add_row(str(r.vm) if r.vm != last else "", f"{r.run}:", str(r.verdict))
        last = r.vm
    return grid
