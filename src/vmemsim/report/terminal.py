"""The summary printed at the end of `vmemsim run`: one rich table, states, where files went."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vmemsim.metrics.columns import STATES
from vmemsim.metrics.result import Result
from vmemsim.metrics.slowdown import ratio

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


# (name, unit): esxtop's short names, the unit on a line of its own, so that the table fits 80
# columns with room for VM names ("throughput" and "max zipped" did not: rich cut them to
# "throug…"). The caption says what the short ones mean.
VM_HEADERS: tuple[tuple[str, str], ...] = (
    ("VM", ""), ("MEMSZ", "MB"), ("refs/s", "mean"), ("slowdown", ""),
    ("MCTLSZ", "max MB"), ("SWCUR", "max MB"), ("ZIP", "max MB"), ("blocked", "s"),
)
VM_CAPTION = ("refs/s: throughput; slowdown: base / actual throughput; MCTLSZ, SWCUR, ZIP: "
              "the most memory ballooned, host-swapped and compressed at once")


def vm_table(result: Result) -> Table:
    # No vertical rules: they cost 9 columns of an 80-column terminal.
    table = Table(title=f"{result.name}: per-VM summary", title_justify="left",
                  header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=VM_CAPTION, caption_justify="left")
    for name, unit in VM_HEADERS:
        if name == "VM":  # a long name wraps (fold) rather than lose its end
            table.add_column(name, justify="left", overflow="fold")
        else:  # numbers never wrap: rich shrinks the wrappable name column instead
            table.add_column(f"{name}\n{unit}", justify="right", no_wrap=True)
    for v in result.summary.get("vms", []) or []:
        slow = v.get("slowdown")
        style = _slowdown_style(slow)
        table.add_row(
            Text(str(v.get("name", "?"))), _f(v.get("memsz_mb"), ",.0f"),
            _f(v.get("throughput"), ",.0f"), Text(ratio(slow), style=style),
            # whole MB: a tenth of a MB says nothing here and cost the names their room
            _f(v.get("max_balloon_mb"), ",.0f"), _f(v.get("max_swapped_mb"), ",.0f"),
            _f(v.get("max_compressed_mb"), ",.0f"), _f(v.get("blocked_s")),
        )
    return table


def verdicts(result: Result) -> Table:
    """The verdicts as a grid: a sentence that wraps goes on under itself, not under the name."""
    grid = Table.grid(padding=(0, 1), pad_edge=True)
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for v in result.summary.get("vms", []) or []:
        grid.add_row(f" {v.get('name', '?')}:", Text(str(v.get("verdict", "")),
                                                     style=_slowdown_style(v.get("slowdown"))))
    return grid


def describe_event(rec: dict[str, Any]) -> str:
    """One line for an event's record in summary.json (the terminal, the report)."""
    parts = []
    if "set" in rec:
        parts.append("set " + ", ".join(f"{k} = {v}" for k, v in rec["set"].items()))
    for kind in ("power_on", "power_off", "migrate_in", "migrate_out"):
        if kind in rec:
            parts.append(f"{kind.replace('_', ' ')} {', '.join(rec[kind])}")
    for vm, got in (rec.get("migrated_in_mb") or {}).items():
        parts.append(f"{vm} arrived with {got:,.0f} MB backed")
    for r in rec.get("refused", []):
        parts.append(f"REFUSED {r['what']} of {r['vm']}: {r['why']}")
    return f"{rec['time_s']:g} s: " + "; ".join(parts)


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


def mmu_lines(result: Result) -> list[Text]:
    """Per VM with an MMU model: its TLB misses and walk time, its traps and their time."""
    out = []
    for v in result.summary.get("vms", []) or []:
        if v.get("mmu", "off") == "off" or "tlb_misses" not in v:
            continue
        out.append(Text(f"MMU {v['name']} ({v['mmu']}): {_f(v['tlb_misses'], ',.0f')} TLB "
                        f"misses, {_f(v.get('walk_s'), ',.2f')} vCPU-s walking; "
                        f"{_f(v.get('mmu_traps'), ',.0f')} traps, "
                        f"{_f(v.get('mmu_s'), ',.2f')} vCPU-s in them."))
    return out


def print_summary(result: Result, console: Console, out_dir: Path | str | None = None) -> None:
    """Print the per-VM table, the memory states and (if given) the output folder."""
    s = result.summary
    if not s.get("complete", False):
        console.print(Text(f"INCOMPLETE: the run stopped after {_f(s.get('simulated_s'), ',.0f')}"
                           " simulated seconds; numbers cover only that part.", style="bold red"))
    console.print(vm_table(result))
    console.print(verdicts(result))
    console.print(states_line(result))
    for e in s.get("events", []) or []:
        console.print(Text("Event " + describe_event(e),
                           style="bold red" if e.get("refused") else ""))
    for line in mmu_lines(result):
        console.print(line)
    seeds = s.get("seeds") or []
    if len(seeds) > 1:
        console.print(Text(f"Over {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), mean and 95% "
                           "interval:"))
        for v in s.get("vms", []):
            lo, hi = v.get("slowdown_ci", [None, None])
            tl, th = v.get("throughput_ci", [None, None])
            console.print(Text(f"  {v['name']}: slowdown {ratio(v.get('slowdown_mean'))} "
                               f"[{ratio(lo)}, {ratio(hi)}], refs/s "
                               f"{_f(v.get('throughput_mean'), ',.0f')} "
                               f"[{_f(tl, ',.0f')}, {_f(th, ',.0f')}]"))
    host = s.get("host", {})
    if "min_free_mb" in host:
        console.print(Text(f"Headroom: free memory fell to {_f(host['min_free_mb'], ',.0f')} MB "
                           f"({_f(host.get('min_free_pct'), '.1f')}% of the host) at "
                           f"{_f(host.get('min_free_at_s'), ',.1f')} s."))
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
