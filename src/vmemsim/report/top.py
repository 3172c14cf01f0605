"""`vmemsim top`: a live view of a running simulation in the style of esxtop's memory screen.

The header mimics esxtop's (PMEM, VMKMEM, PSHARE, SWAP, ZIP, MEMCTL lines) and the table has one
row per VM with esxtop's field names, each with its unit on a second header line. Rates (SWR/s,
SWW/s, ZIP/s, UNZIP/s) are MB per simulated second, as in esxtop; the engine counts them in 4 KiB
pages. The default fields fit 80 columns; fields that do not fit the terminal are left off on the
right (and the screen says which), never cut.

Keys (when stdin is a terminal), as in esxtop: f chooses the fields shown, o the sort field (its
letter again reverses the order), M sorts by MEMSZ, B by MCTLSZ, N back to the run's order; q
quits, space pauses and resumes, + and - double and halve the speed. Ctrl-C also quits cleanly.
The terminal is always put back as it was.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from vmemsim.config.units import MIB, PAGE_SIZE

PAGES_TO_MB = PAGE_SIZE / MIB
MIN_FRAME_S = 0.05  # redraw at most 20 times a wall second: beyond that drawing costs more than
# simulating and nobody can read it; at speeds up to 20x every simulated second is drawn.
STATE_STYLES = {"high": "bold green", "clear": "bold green3", "soft": "bold yellow",
                "hard": "bold dark_orange", "low": "bold white on red"}


@dataclass(frozen=True)
class Field:
    """One column of the VM table: esxtop's name, where its value comes from, how it is shown.

    key: a VM row's column, or a value computed in `_values`. letter: the key that toggles it
    in the field list (f) and sorts by it in the sort list (o).
    """

    name: str
    key: str
    fmt: str  # "s" for text
    unit: str
    letter: str
    meaning: str
    default: bool = False


# Letters skip f, o and q, which keep their meaning in the lists (return, return, quit).
# MB are whole: a 64 GB VM's MEMSZ is 5 digits, and with esxtop's two decimals the columns
# that matter did not fit 80 columns.
FIELDS: tuple[Field, ...] = (
    Field("NAME", "vm", "s", "", "a", "VM name", True),
    Field("MEMSZ", "memsz_mb", ".0f", "MB", "b", "configured memory", True),
    Field("GRANT", "grant_mb", ".0f", "MB", "c", "machine-backed", True),
    Field("SZTGT", "sztgt_mb", ".0f", "MB", "d", "allocation target", True),
    Field("TCHD", "active_est_mb", ".0f", "MB", "e", "active estimate", True),
    Field("%ACTV", "%actv", ".0f", "%", "g", "TCHD, % of MEMSZ", True),
    Field("%ACTVS", "%actvs", ".0f", "%", "h", "slow average, %", False),
    Field("%ACTVF", "%actvf", ".0f", "%", "i", "fast average, %", False),
    Field("MCTL?", "mctl?", "s", "Y/N", "j", "balloon driver runs", False),
    Field("MCTLSZ", "mctlsz_mb", ".0f", "MB", "k", "ballooned", True),
    Field("MCTLTGT", "mctltgt_mb", ".0f", "MB", "l", "balloon target", False),
    Field("MCTLMAX", "mctlmax_mb", ".0f", "MB", "m", "balloon limit", False),
    Field("SWCUR", "swcur_mb", ".0f", "MB", "n", "host-swapped", True),
    Field("SWTGT", "swtgt_mb", ".0f", "MB", "p", "swap target", False),
    Field("SWR/s", "swr_mbs", ".2f", "MB/s", "r", "swapped in", True),
    Field("SWW/s", "sww_mbs", ".2f", "MB/s", "s", "swapped out", True),
    Field("CACHEUSD", "zip_mb", ".0f", "MB", "t", "compression cache", True),
    Field("ZIP/s", "zip_mbs", ".2f", "MB/s", "u", "compressed", False),
    Field("UNZIP/s", "unzip_mbs", ".2f", "MB/s", "v", "decompressed", False),
    Field("OVHD", "ovhd_mb", ".0f", "MB", "w", "overhead memory", False),
    Field("SHRD", "shrd_mb", ".0f", "MB", "y", "shared (TPS)", False),
    Field("ZERO", "zero_mb", ".0f", "MB", "z", "shared zero pages", False),
    Field("SHRDSVD", "shrdsvd_mb", ".0f", "MB", "A", "saved by sharing", False),
    Field("COWH", "cowh_mb", ".0f", "MB", "C", "copy-on-write hints", False),
)
BY_NAME = {f.name: f for f in FIELDS}
BY_LETTER = {f.letter: f for f in FIELDS}
RUN_ORDER_LETTER = "x"  # in the sort list: back to the run's order
SHORTCUTS = {"M": "MEMSZ", "B": "MCTLSZ", "N": None}  # esxtop's memory-screen sort keys
KEYS_HELP = "q quit  space pause  +/- speed  f fields  o sort  M MEMSZ  B MCTLSZ  N order"


@dataclass
class TopView:
    """What the screen shows: the fields, the sort, and whether a list (f, o) is open."""

    shown: list[str] = field(default_factory=lambda: [f.name for f in FIELDS if f.default])
    sort: str | None = None  # a field's name; None: the run's order
    descending: bool = True
    mode: str = "table"  # or "fields" (f) or "sort" (o)

    def sort_by(self, name: str | None) -> None:
        """Sort by `name`; the same field again reverses the order. Numbers start with the
        largest, names with A."""
        if name is not None and name == self.sort:
            self.descending = not self.descending
        else:
            self.sort = name
            self.descending = name is not None and BY_NAME[name].fmt != "s"

    def key(self, ch: str) -> bool:
        """Apply one key other than q, space, + and -; True if the screen changes."""
        if self.mode == "fields":
            f = BY_LETTER.get(ch)  # lower case only: M, B, N are not field letters
            if f is None:
                self.mode = "table"  # any other key returns, as in esxtop
            elif f.name != "NAME":  # the name always stays
                if f.name in self.shown:
                    self.shown.remove(f.name)
                else:
                    self.shown = [g.name for g in FIELDS if g.name in self.shown or g is f]
            return True
        if self.mode == "sort":
            f = BY_LETTER.get(ch)
            if f is not None:
                self.sort_by(f.name)
            elif ch == RUN_ORDER_LETTER:
                self.sort_by(None)
            self.mode = "table"
            return True
        if ch == "f":
            self.mode = "fields"
        elif ch == "o":
            self.mode = "sort"
        elif ch in SHORTCUTS:
            name = SHORTCUTS[ch]
            if name != self.sort:  # esxtop's M, B and N always sort, never reverse
                self.sort_by(name)
        else:
            return False
        return True

    def order(self, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The rows in the chosen order; unknown values last, ties in the run's order."""
        if self.sort is None:
            return list(rows)
        f = BY_NAME[self.sort]
        if f.fmt == "s":
            keyed = [(str(_values(r)[f.key]).lower(), i) for i, r in enumerate(rows)]
            keyed.sort(reverse=self.descending)
            return [rows[i] for _, i in keyed]
        values = [(_values(r)[f.key], i) for i, r in enumerate(rows)]
        known = sorted(((v, i) for v, i in values if not math.isnan(v)),
                       key=lambda vi: (-vi[0] if self.descending else vi[0], vi[1]))
        return [rows[i] for _, i in known] + [rows[i] for v, i in values if math.isnan(v)]


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


def _values(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every field's value for one VM row: the row's own columns and the computed ones."""
    memsz = _num(row, "memsz_mb")
    out: dict[str, Any] = {f.key: _num(row, f.key) for f in FIELDS if f.fmt != "s"}
    out.update({
        "vm": str(row.get("vm", "?")),
        "mctl?": "Y" if _num(row, "mctl") > 0 else "N",
        "%actv": _pct(_num(row, "active_est_mb"), memsz),
        "%actvs": _pct(_num(row, "active_slow_mb"), memsz),
        "%actvf": _pct(_num(row, "active_fast_mb"), memsz),
        "swr_mbs": _num(row, "swin_pages") * PAGES_TO_MB,
        "sww_mbs": _num(row, "swout_pages") * PAGES_TO_MB,
        "zip_mbs": _num(row, "zip_pages") * PAGES_TO_MB,
        "unzip_mbs": _num(row, "unzip_pages") * PAGES_TO_MB,
    })
    return out


def _cell(f: Field, values: Mapping[str, Any]) -> str:
    v = values[f.key]
    return str(v) if f.fmt == "s" else _fmt(v, f.fmt)


def header_lines(host: Mapping[str, Any], vm_rows: Sequence[Mapping[str, Any]]) -> list[Text]:
    """esxtop's memory header, from one host row (HOST_COLUMNS names) and the VM rows; each
    line fits 80 columns."""
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
                  f"{n(rsvd)} rsvd, {n(ursvd)} ursvd, ")
    vmkmem.append(f"{state} state", style=STATE_STYLES.get(state, "bold"))
    return [
        Text(f"PMEM  /MB: {n(total)}   total: {n(vmk)}     vmk,{n(other)} other,"
             f"{n(free)} free"),
        vmkmem,
        Text(f"PSHARE/MB: {n(_num(host, 'pshare_shared_mb'))}  shared, "
             f"{n(_num(host, 'pshare_common_mb'))}  common: "
             f"{n(_num(host, 'pshare_saving_mb'))} saving"),
        Text(f"SWAP  /MB: {n(_num(host, 'swapped_mb'))}    curr, {n(_num(host, 'swtgt_mb'))} "
             f"rclmtgt: {_fmt(_num(host, 'swr_pages') * PAGES_TO_MB, '.2f', 8)} r/s, "
             f"{_fmt(_num(host, 'sww_pages') * PAGES_TO_MB, '.2f', 8)} w/s"),
        Text(f"ZIP   /MB: {n(_num(host, 'compressed_mb'))}  zipped, "
             f"{n(_num(host, 'zip_saved_mb'))}   saved"),
        Text(f"MEMCTL/MB: {n(_num(host, 'balloon_mb'))}    curr, {n(_num(host, 'mctltgt_mb'))}"
             f"  target, {n(mctlmax)} max"),
    ]


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def vm_table_lines(vm_rows: Sequence[Mapping[str, Any]], view: TopView,
                   width: int) -> list[Text]:
    """The VM table for a terminal `width` columns wide: the fields of `view` that fit, in
    order (the rest are named on the last line, not cut), with names above units."""
    rows = view.order(vm_rows)
    values = [_values(r) for r in rows]
    fields = [BY_NAME["NAME"]] + [BY_NAME[n] for n in view.shown if n != "NAME"]
    widths = []
    for f in fields:
        widths.append(max([len(f.name), len(f.unit), *(len(_cell(f, v)) for v in values)]))
    used, fit = 0, 0
    for w in widths:
        if used + w + (1 if fit else 0) > width and fit:
            break
        used += w + (1 if fit else 0)
        fit += 1
    shown, widths, hidden = fields[:fit], widths[:fit], fields[fit:]

    def line(cells: Sequence[str]) -> str:
        return " ".join(c.ljust(w) if f.fmt == "s" else c.rjust(w)
                        for c, w, f in zip(cells, widths, shown, strict=True))

    out = [Text(line([f.name for f in shown]), style="reverse"),
           Text(line([f.unit for f in shown]), style="dim")]
    out += [Text(line([_cell(f, v) for f in shown])) for v in values]
    if hidden:
        more = ", ".join(f.name for f in hidden)
        out.append(Text(f"{len(hidden)} more not shown ({more}): widen the terminal or "
                        "press f", style="dim"))
    return out


def _sort_note(view: TopView) -> str:
    if view.sort is None:
        return "order: the run's (o or M/B to sort)"
    way = ("largest first" if view.descending else "smallest first") if (
        BY_NAME[view.sort].fmt != "s") else ("Z to A" if view.descending else "A to Z")
    return f"sorted by {view.sort}, {way} (o and its letter again: reversed)"


def _entries(view: TopView) -> list[str]:
    """The lines of the field list (f) or the sort list (o): `* b MEMSZ  MB  meaning`."""
    out = []
    for f in FIELDS:
        if view.mode == "fields":
            mark = "*" if f.name == "NAME" or f.name in view.shown else " "
        else:
            mark = ">" if f.name == view.sort else " "
        out.append(f"{mark} {f.letter} {f.name:<8} {f.unit:<4} {f.meaning}")
    if view.mode == "sort":
        mark = ">" if view.sort is None else " "
        out.append(f"{mark} {RUN_ORDER_LETTER} {'(none)':<8} {'':<4} the run's order")
    return out


def chooser_lines(view: TopView, width: int) -> list[Text]:
    """esxtop's field and sort screens: every field with its letter, in two columns when the
    terminal is wide enough (so that the list fits 24 rows)."""
    if view.mode == "fields":
        title = "Fields: a letter shows or hides its field (* = shown); other keys return"
    else:
        title = "Sort: a letter sorts by its field, again reverses (> = now); other keys return"
    entries = _entries(view)
    col = max(len(e) for e in entries) + 2
    out = [Text(title, style="bold")]
    if width >= 2 * col:
        half = -(-len(entries) // 2)
        left, right = entries[:half], entries[half:]
        for i, e in enumerate(left):
            out.append(Text(e.ljust(col) + (right[i] if i < len(right) else "")))
    else:
        out += [Text(e) for e in entries]
    return out


@dataclass
class TopFrame:
    """One frame, laid out for the width of the terminal it is drawn on."""

    host_row: Mapping[str, Any]
    vm_rows: Sequence[Mapping[str, Any]]
    time_s: float
    speed: float | None
    title: str
    paused: bool
    view: TopView

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.lines(options.max_width)

    def lines(self, width: int) -> Iterator[Text]:
        pace = "max speed" if self.speed is None else f"{self.speed:g}x real time"
        status = Text(f"{_clock(self.time_s)}  {self.title}  t={self.time_s:,.0f} s  ({pace})",
                      style="bold")
        if self.paused:
            status.append("  PAUSED", style="bold reverse")
        yield status
        yield Text(KEYS_HELP, style="dim")
        yield Text("")
        if self.view.mode != "table":
            yield from chooser_lines(self.view, width)
            return
        yield from header_lines(self.host_row, self.vm_rows)
        yield Text("")
        yield Text(_sort_note(self.view), style="dim")
        yield from vm_table_lines(self.vm_rows, self.view, width)


def render_top(host_row: Mapping[str, Any], vm_rows: Sequence[Mapping[str, Any]], *,
               time_s: float, speed: float | None, title: str = "vmemsim",
               paused: bool = False, view: TopView | None = None) -> TopFrame:
    """One frame of the live view: a status line, the keys, esxtop's header lines and the VM
    table (or the field or sort list while one is open)."""
    return TopFrame(host_row, vm_rows, time_s, speed, title, paused,
                    view if view is not None else TopView())


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
            keys: KeyReader | None = None, view: TopView | None = None) -> int:
    """Drive `sim` one simulated second at a time, redrawing the live view after each.

    speed: simulated seconds per wall second (1.0 = real time); None runs as fast as possible.
    view: the fields and sort to start with (esxtop's defaults otherwise).
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
            _loop(sim, live, reader, speed, max_seconds, title,
                  view if view is not None else TopView())
    except KeyboardInterrupt:
        pass
    return 0


class _Quit(Exception):
    pass


def _loop(sim: LiveSimulation, live: Live, keys: KeyReader, speed: float | None,
          max_seconds: int | None, title: str, view: TopView) -> None:
    steps = 0
    last_draw = -math.inf
    frame: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    # Pace against a baseline so that slow steps are caught up rather than accumulated.
    wall0, sim0 = time.monotonic(), float(sim.time_s)
    paused = False

    def draw() -> None:
        if frame is not None:
            live.update(render_top(frame[0], frame[1], time_s=float(sim.time_s), speed=speed,
                                   title=title, paused=paused, view=view), refresh=True)

    def handle(pressed: str) -> None:
        nonlocal speed, paused, wall0, sim0
        for ch in pressed:
            if ch in "qQ":  # quits from the lists too
                raise _Quit
            if view.mode != "table":  # a list is open: its letters, or back to the table
                if view.key(ch):
                    draw()
                continue
            if ch == " ":
                paused = not paused
            elif ch in "+=" and speed is not None:
                speed *= 2.0
            elif ch in "-_" and speed is not None:
                speed /= 2.0
            else:
                if view.key(ch):  # f, o, M, B, N: the pace is unchanged
                    draw()
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
