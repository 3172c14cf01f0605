"""`vmemsim top`: a live view of a running simulation in the style of esxtop's memory screen.

The header mimics esxtop's (PMEM, VMKMEM, PSHARE, SWAP, ZIP, MEMCTL lines) and the table has one
row per VM with esxtop's column names. Rates (SWR/s, SWW/s, ZIP/s, UNZIP/s) are MB per simulated
second, as in esxtop; the engine counts them in 4 KiB pages.

Keys (when stdin is a terminal): q quits, space pauses and resumes, + and - double and halve the
speed. Ctrl-C also quits cleanly. The terminal is always put back as it was.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vmemsim.config.units import MIB, PAGE_SIZE

PAGES_TO_MB = PAGE_SIZE / MIB
MIN_FRAME_S = 0.05  # redraw at most 20 times a wall second: beyond that drawing costs more than
# simulating and nobody can read it; at speeds up to 20x every simulated second is drawn.
STATE_STYLES = {"high": "bold green", "clear": "bold green3", "soft": "bold yellow",
                "hard": "bold dark_orange", "low": "bold white on red"}

# (header, row key or computed field, format); see _vm_cells for the computed ones.
VM_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("NAME", "vm", "s"),
    ("MEMSZ", "memsz_mb", ".2f"),
    ("GRANT", "grant_mb", ".2f"),
    ("SZTGT", "sztgt_mb", ".2f"),
    ("TCHD", "active_est_mb", ".2f"),
    ("%ACTV", "%actv", ".0f"),
    ("%ACTVS", "%actvs", ".0f"),
    ("%ACTVF", "%actvf", ".0f"),
    ("MCTL?", "mctl?", "s"),
    ("MCTLSZ", "mctlsz_mb", ".2f"),
    ("MCTLTGT", "mctltgt_mb", ".2f"),
    ("MCTLMAX", "mctlmax_mb", ".2f"),
    ("SWCUR", "swcur_mb", ".2f"),
    ("SWTGT", "swtgt_mb", ".2f"),
    ("SWR/s", "swr_mbs", ".2f"),
    ("SWW/s", "sww_mbs", ".2f"),
    ("CACHEUSD", "zip_mb", ".2f"),
    ("ZIP/s", "zip_mbs", ".2f"),
    ("UNZIP/s", "unzip_mbs", ".2f"),
    ("OVHD", "ovhd_mb", ".2f"),
)


class LiveSimulation(Protocol):
    """What `run_top` needs from a simulation (`vmemsim.engine.Simulation` provides it)."""

    @property
    def done(self) -> bool: ...

    @property
    def time_s(self) -> float: ...

    def step_second(self) -> tuple[dict[str, Any], list[dict[str, Any]]]: ...


def _num(row: Mapping[str, Any], key: str) -> float:
    try:
        v = float(row.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan
    return v


def _fmt(v: float, fmt: str, width: int = 0) -> str:
    text = "-" if not math.isfinite(v) else format(v, fmt)
    return text.rjust(width)


def _pct(part: float, whole: float) -> float:
    return part / whole * 100.0 if whole and math.isfinite(whole) else math.nan


def _vm_cells(row: Mapping[str, Any]) -> list[str]:
    memsz = _num(row, "memsz_mb")
    derived = {
        "%actv": _pct(_num(row, "active_est_mb"), memsz),
        "%actvs": _pct(_num(row, "active_slow_mb"), memsz),
        "%actvf": _pct(_num(row, "active_fast_mb"), memsz),
        "swr_mbs": _num(row, "swin_pages") * PAGES_TO_MB,
        "sww_mbs": _num(row, "swout_pages") * PAGES_TO_MB,
        "zip_mbs": _num(row, "zip_pages") * PAGES_TO_MB,
        "unzip_mbs": _num(row, "unzip_pages") * PAGES_TO_MB,
    }
    cells = []
    for _, key, fmt in VM_FIELDS:
        if key == "vm":
            cells.append(str(row.get("vm", "?")))
        elif key == "mctl?":
            cells.append("Y" if _num(row, "mctl") > 0 else "N")
        else:
            cells.append(_fmt(derived[key] if key in derived else _num(row, key), fmt))
    return cells


def header_lines(host: Mapping[str, Any], vm_rows: Sequence[Mapping[str, Any]]) -> list[Text]:
    """esxtop's memory header, from one host row (HOST_COLUMNS names) and the VM rows."""
    total, vmk = _num(host, "total_mb"), _num(host, "vmk_mb")
    free, used = _num(host, "free_mb"), _num(host, "used_mb")
    other = used - vmk if math.isfinite(used) else total - vmk - free
    managed = total - vmk
    # Reservations are not in the host row yet: show them when the engine adds rsvd_mb.
    rsvd = _num(host, "rsvd_mb")
    ursvd = managed - rsvd
    state = str(host.get("state", "?"))
    mctlmax = sum(_num(r, "mctlmax_mb") for r in vm_rows if math.isfinite(_num(r, "mctlmax_mb")))

    def n(v: float, w: int = 6) -> str:
        return _fmt(v, ".0f", w)

    vmkmem = Text(f"VMKMEM/MB: {n(managed)} managed: {n(_num(host, 'minfree_mb'))} minfree, "
                  f"{n(rsvd)} rsvd, {n(ursvd)} ursvd,  ")
    vmkmem.append(f"{state} state", style=STATE_STYLES.get(state, "bold"))
    return [
        Text(f"PMEM  /MB: {n(total)}   total: {n(vmk)}     vmk,{n(other)} other,"
             f"{n(free)} free"),
        vmkmem,
        Text(f"PSHARE/MB: {n(0)}  shared, {n(0)}  common: {n(0)} saving"
             "  (page sharing is not simulated yet)", style="dim"),
        Text(f"SWAP  /MB: {n(_num(host, 'swapped_mb'))}    curr, {n(_num(host, 'swtgt_mb'))} "
             f"rclmtgt: {_fmt(_num(host, 'swr_pages') * PAGES_TO_MB, '.2f', 12)} r/s, "
             f"{_fmt(_num(host, 'sww_pages') * PAGES_TO_MB, '.2f', 8)} w/s"),
        Text(f"ZIP   /MB: {n(_num(host, 'compressed_mb'))}  zipped, "
             f"{n(_num(host, 'zip_saved_mb'))}   saved"),
        Text(f"MEMCTL/MB: {n(_num(host, 'balloon_mb'))}    curr, {n(_num(host, 'mctltgt_mb'))}"
             f"  target, {n(mctlmax)} max"),
    ]


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_top(host_row: Mapping[str, Any], vm_rows: Sequence[Mapping[str, Any]], *,
               time_s: float, speed: float | None, title: str = "vmemsim",
               paused: bool = False) -> RenderableType:
    """One frame of the live view: a status line, esxtop's header lines and the VM table."""
    pace = "max speed" if speed is None else f"{speed:g}x real time"
    status = Text(f"{_clock(time_s)}  {title}  t={time_s:,.0f} s  ({pace})", style="bold")
    if paused:
        status.append("  PAUSED", style="bold reverse")
    status.append("   q quit  space pause  +/- speed", style="dim")
    table = Table(box=None, header_style="reverse", pad_edge=False, padding=(0, 1),
                  show_edge=False)
    for head, _, fmt in VM_FIELDS:
        table.add_column(head, justify="left" if fmt == "s" else "right", no_wrap=True)
    for row in vm_rows:
        table.add_row(*_vm_cells(row))
    return Group(status, Text(""), *header_lines(host_row, vm_rows), Text(""), table)


class KeyReader:
    """Single keys from stdin without Enter, only when stdin is a terminal.

    cbreak mode (not raw) keeps Ctrl-C a signal, so it still raises KeyboardInterrupt; the saved
    terminal settings come back on exit whatever happens.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self.fd: int | None = None
        self._saved: list[Any] | None = None

    def __enter__(self) -> KeyReader:
        try:
            fd = self.stream.fileno()
            if not os.isatty(fd):
                return self
            import termios
            import tty

            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self.fd = fd
        except Exception:  # no termios (Windows), odd stream, background process group...
            self.fd = None  # ... then run without keys rather than fail
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None and self._saved is not None:
            import termios

            with contextlib.suppress(Exception):
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        self.fd = None

    def read(self, timeout: float) -> str:
        """Keys pressed within `timeout` seconds (returns as soon as one arrives)."""
        timeout = max(timeout, 0.0)
        if self.fd is None:
            if timeout:
                time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return ""
        return os.read(self.fd, 64).decode("utf-8", errors="ignore")


def run_top(sim: LiveSimulation, *, speed: float | None, console: Console,
            max_seconds: int | None = None, title: str = "vmemsim",
            keys: KeyReader | None = None) -> int:
    """Drive `sim` one simulated second at a time, redrawing the live view after each.

    speed: simulated seconds per wall second (1.0 = real time); None runs as fast as possible.
    Stops at the end of the run, after `max_seconds` simulated seconds, on `q` or on Ctrl-C;
    returns 0 in every case (the caller saves whatever was simulated).
    """
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be a positive number of simulated seconds per second, "
                         f"got {speed!r}")
    reader = keys if keys is not None else KeyReader()
    try:
        with reader, Live(console=console, auto_refresh=False, transient=False,
                          redirect_stdout=False, redirect_stderr=False,
                          vertical_overflow="crop") as live:
            _loop(sim, live, reader, speed, max_seconds, title)
    except KeyboardInterrupt:
        pass
    return 0


class _Quit(Exception):
    pass


def _loop(sim: LiveSimulation, live: Live, keys: KeyReader, speed: float | None,
          max_seconds: int | None, title: str) -> None:
    steps = 0
    last_draw = -math.inf
    frame: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    # Pace against a baseline so that slow steps are caught up rather than accumulated.
    wall0, sim0 = time.monotonic(), float(sim.time_s)
    paused = False

    def draw() -> None:
        if frame is not None:
            live.update(render_top(frame[0], frame[1], time_s=float(sim.time_s), speed=speed,
                                   title=title, paused=paused), refresh=True)

    def handle(pressed: str) -> None:
        nonlocal speed, paused, wall0, sim0
        for ch in pressed:
            if ch in "qQ":
                raise _Quit
            if ch == " ":
                paused = not paused
            elif ch in "+=" and speed is not None:
                speed *= 2.0
            elif ch in "-_" and speed is not None:
                speed /= 2.0
            else:
                continue
            wall0, sim0 = time.monotonic(), float(sim.time_s)
            draw()

    try:
        while not sim.done and (max_seconds is None or steps < max_seconds):
            frame = sim.step_second()
            steps += 1
            now = time.monotonic()
            if now - last_draw >= MIN_FRAME_S or sim.done:
                draw()
                last_draw = now
            if speed is None:
                handle(keys.read(0.0))
            else:
                while True:  # keys are read at least once a step, even when running late
                    remaining = wall0 + (float(sim.time_s) - sim0) / speed - time.monotonic()
                    handle(keys.read(0.1 if paused else min(max(remaining, 0.0), 0.1)))
                    if remaining <= 0 and not paused:
                        break
            while paused:
                handle(keys.read(0.1))
        draw()  # the last second, even if it fell between frames
    except _Quit:
        draw()
