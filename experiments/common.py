"""Shared pieces of the paper-reproduction scripts (Waldspurger, OSDI 2002).

Each script `experiments/figN_*.py` has a `run(quick=False, out=None) -> Outcome` function and a
command line (`--out DIR`, `--quick`) built by `main()` here. This module holds what they share:
the guest model, host sizing, tables (CSV + markdown) and the figure style.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vmemsim.config.schema import HypervisorConfig
from vmemsim.config.units import PAGE_SIZE
from vmemsim.hypervisor.states import Thresholds

MIB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "results" / "experiments"

# The guest model shared by the experiments (a Linux 2.4-era guest):
# - kernel memory = 4 MiB + 3% of configured memory: struct page array and hash tables are sized
#   at boot from "physical" memory, so a 256 MB guest ballooned to S keeps the 256 MB-sized ones;
#   the paper names exactly this as the source of ballooning overhead.
# - free-page watermarks fixed in MiB (not a percentage), so both guests keep the same reserve.
#   They are small because the host charges only touched frames: never-touched free frames
#   lie outside a limit, and a large reserve would hand the ballooned VM memory beyond S.
KERNEL_FIXED_MIB = 4.0
KERNEL_FRACTION = 0.03
WATERMARKS_MIB = (0.25, 0.5, 1.0)  # min, low, high


def guest(memory_mib: float, **extra: Any) -> dict[str, Any]:
    """The `guest` table of a VM configured with `memory_mib` MiB."""
    kernel = int((KERNEL_FIXED_MIB + KERNEL_FRACTION * memory_mib) * MIB)
    lo, mid, hi = (100.0 * w / memory_mib for w in WATERMARKS_MIB)
    return {"kernel": kernel, "free_min_pct": lo, "free_low_pct": mid, "free_high_pct": hi,
            **extra}


def host_for_available(available: int, vmkernel: int, overheads: int,
                       hypervisor: dict[str, Any]) -> int:
    """Host memory (bytes) whose allocation targets can hand out exactly `available` bytes.

    The engine gives VMs the managed memory less overheads and the free memory it aims to keep
    (Thresholds.goal_free, which grows with the host): solved here by bisection, so the sizing
    follows the engine if its thresholds change.
    """
    hv = HypervisorConfig(**hypervisor)

    def handed_out(host: float) -> float:
        goal = Thresholds.build(hv, int(host)).goal_free() * PAGE_SIZE
        return host - vmkernel - overheads - goal

    lo, hi = float(available + vmkernel + overheads), 4.0 * (available + vmkernel + overheads)
    for _ in range(80):
        mid = (lo + hi) / 2
        if handed_out(mid) < available:
            lo = mid
        else:
            hi = mid
    # Whole pages; one page of slack so rounding never leaves the targets a page short.
    return (math.ceil(hi / PAGE_SIZE) + 1) * PAGE_SIZE


def window_mean(vm: pd.DataFrame, column: str, start: float, end: float | None = None) -> float:
    """Mean of a per-second column of one VM (indexed by time_s) over (start, end]."""
    t = vm.index.to_numpy(float)
    sel = t > start
    if end is not None:
        sel &= t <= end
    return float(vm.loc[sel, column].mean())


def pct(a: float, b: float) -> float:
    """a relative to b, in percent (positive: a is larger)."""
    return 100.0 * (a / b - 1.0)


# ---- results -----------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one experiment produced: its comparison table, the numbers tests check, files."""

    name: str
    title: str
    table: pd.DataFrame
    values: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _cell(x: Any) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.2f}"
    return str(x)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
    return "\n".join(lines)


def write_table(table: pd.DataFrame, out: Path, stem: str) -> list[Path]:
    """The table as CSV (full precision) and markdown (rounded for reading)."""
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    table.to_csv(csv, index=False, float_format="%.6g")
    md.write_text(markdown(table) + "\n", encoding="utf-8")
    return [csv, md]


# ---- figures -----------------------------------------------------------------------------
COLORS = {"true": "#212121", "estimate": "#1565c0", "slow": "#ef6c00", "fast": "#2e7d32",
          "configured": "#424242", "ballooned": "#9e9e9e", "idle": "#8d6e63",
          "active": "#1565c0"}


def figure(nrows: int = 1, ncols: int = 1, *, width: float = 9.0,
           height: float = 3.2) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no pyplot state) and its axes, flattened."""
    fig = Figure(figsize=(width, height * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.grid(True, color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, list(axes.flat)


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})  # same data, same bytes
    return path


# ---- command line ------------------------------------------------------------------------
def out_dir(out: Path | str | None, name: str) -> Path:
    return Path(out) if out is not None else DEFAULT_OUT / name


def main(run: Callable[..., Outcome], doc: str | None,
         argv: Sequence[str] | None = None) -> Outcome:
    """Parse `--out DIR --quick`, run the experiment, print its table and where files went."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the figure and table (default results/experiments/NAME)")
    ap.add_argument("--quick", action="store_true",
                    help="reduced version: smaller and shorter, seconds instead of minutes")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    res = run(quick=args.quick, out=args.out)
    wall = time.perf_counter() - t0
    print(f"## {res.title}{' (quick)' if args.quick else ''}\n")
    print(markdown(res.table))
    for note in res.notes:
        print(f"\n- {note}")
    print(f"\nwrote {', '.join(str(p) for p in res.files)} in {wall:.1f} s")
    return res
