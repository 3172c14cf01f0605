"""The summary printed at the end of `vmemsim run`: one rich table, states, where files went."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vmemsim.metrics.columns import STATES
from vmemsim.metrics.result import Result

STATE_STYLES = {"high": "green", "clear": "green3", "soft": "yellow", "hard": "dark_orange",
                "low": "bold red"}


def _f(v: Any, fmt: str = ",.1f") -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-"
    return format(x, fmt) if math.isfinite(x) else "-"


def _slowdown_style(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return ""
    if not math.isfinite(x):
        return ""
    return "green" if x < 1.05 else "yellow" if x < 1.5 else "bold red"


def vm_table(result: Result) -> Table:
    table = Table(title=f"{result.name}: per-VM summary", title_justify="left",
                  header_style="bold")
    for head, justify in (("VM", "left"), ("MEMSZ\nMB", "right"), ("throughput\nrefs/s", "right"),
                          ("slowdown", "right"), ("max MCTLSZ\nMB", "right"),
                          ("max SWCUR\nMB", "right"), ("max zipped\nMB", "right"),
                          ("blocked\ns", "right")):
        table.add_column(head, justify=justify)  # type: ignore[arg-type]
    for v in result.summary.get("vms", []) or []:
        slow = v.get("slowdown")
        style = _slowdown_style(slow)
        table.add_row(
            Text(str(v.get("name", "?"))), _f(v.get("memsz_mb"), ",.0f"),
            _f(v.get("throughput"), ",.0f"), Text(_f(slow, ".3f") + "x", style=style),
            _f(v.get("max_balloon_mb")), _f(v.get("max_swapped_mb")),
            _f(v.get("max_compressed_mb")), _f(v.get("blocked_s")),
        )
    return table


def verdict_lines(result: Result) -> list[Text]:
    """One line per VM: verdicts are sentences, too long for a table column on a terminal."""
    lines = []
    for v in result.summary.get("vms", []) or []:
        line = Text(f"  {v.get('name', '?')}: ", style="bold")
        line.append(str(v.get("verdict", "")), style=_slowdown_style(v.get("slowdown")))
        lines.append(line)
    return lines


def states_line(result: Result) -> Text:
    host = result.summary.get("host", {}) or {}
    seen = [str(s) for s in host.get("states_seen", [])]
    time_in = host.get("time_in_state_s", {}) or {}
    n_trans = len(result.summary.get("transitions", []) or [])
    line = Text("States seen: ")
    ordered = [s for s in STATES if s in seen] + [s for s in seen if s not in STATES]
    for i, s in enumerate(ordered):
        if i:
            line.append(", ")
        line.append(s, style=STATE_STYLES.get(s, ""))
        if s in time_in:
            line.append(f" {_f(time_in[s], ',.0f')} s")
    if not ordered:
        line.append("-")
    line.append(f"; {n_trans} transition{'s' if n_trans != 1 else ''}.")
    return line


def print_summary(result: Result, console: Console, out_dir: Path | str | None = None) -> None:
    """Print the per-VM table, the memory states and (if given) the output folder."""
    s = result.summary
    if not s.get("complete", False):
        console.print(Text(f"INCOMPLETE: the run stopped after {_f(s.get('simulated_s'), ',.0f')}"
                           " simulated seconds; numbers cover only that part.", style="bold red"))
    console.print(vm_table(result))
    for line in verdict_lines(result):
        console.print(line)
    console.print(states_line(result))
    cached = s.get("baseline_cached") or []
    note = (f" Baselines of {', '.join(cached)} from the cache of earlier runs (--no-cache "
            "runs them)." if cached else "")
    console.print(Text(f"Simulated {_f(s.get('simulated_s'), ',.0f')} s in "
                       f"{_f(s.get('wall_s'), ',.1f')} s wall time, seed {s.get('seed', '?')}."
                       + note))
    if out_dir is not None:
        files = ", ".join(result.files) if result.files else ""
        line = Text("Results in ")
        line.append(str(out_dir), style="bold")
        if files:
            line.append(f": {files}")
        console.print(line)
