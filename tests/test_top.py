"""The live view: rendering, pacing and keys with a fake simulation, then for real in a pty
(at 80 and 120 columns, with the keys f, o, M and q)."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from helpers import sigint_default
from vmemsim.report.top import FIELDS, KeyReader, TopView, render_top, run_top

try:
    from conftest_report import FakeSim
except ImportError:  # tests collected as a package
    from .conftest_report import FakeSim

ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")
HEADER_STARTS = ("PMEM  /MB:", "VMKMEM/MB:", "PSHARE/MB:", "SWAP  /MB:", "ZIP   /MB:",
                 "MEMCTL/MB:")


DEFAULT = [f.name for f in FIELDS if f.default]
CELL = re.compile(r"^(-|\d+|\d+\.\d\d|[YN])$")  # a whole value: MB, %, MB/s or MCTL?


def _text(renderable, width: int = 220) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue()


def _everything() -> TopView:
    return TopView(shown=[f.name for f in FIELDS])


def _rows(seconds: int = 120):
    sim = FakeSim()
    host, vms = {}, []
    for _ in range(seconds):
        host, vms = sim.step_second()
    return sim, host, vms


def test_render_top_header_and_rows() -> None:
    sim, host, vms = _rows(120)  # t = 120 s: the synthetic host is in the low state
    text = _text(render_top(host, vms, time_s=sim.time_s, speed=1.0, view=_everything()))
    lines = text.splitlines()
    for start in HEADER_STARTS:
        assert any(line.startswith(start) for line in lines), start
    pmem = next(line for line in lines if line.startswith("PMEM"))
    assert re.search(r"4096\s+total:\s+300\s+vmk,\s*\d+ other,\s+71 free", pmem), pmem
    assert "low state" in text and "minfree" in text
    pshare = next(line for line in lines if line.startswith("PSHARE"))
    shared = host["pshare_shared_mb"]
    assert re.search(rf"{shared:.0f}\s+shared", pshare), pshare
    i = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    header = lines[i]
    assert header.split() == [f.name for f in FIELDS]
    units = {f.name: f.unit for f in FIELDS}
    assert lines[i + 1].split() == [units[n] for n in header.split() if units[n]]
    rows = {line.split()[0]: line.split() for line in lines
            if line.split() and line.split()[0] in ("db", "web", "idle")}
    assert set(rows) == {"db", "web", "idle"}
    db = dict(zip(header.split(), rows["db"], strict=True))
    idle = dict(zip(header.split(), rows["idle"], strict=True))
    row = next(r for r in vms if r["vm"] == "db")
    assert float(db["MEMSZ"]) == pytest.approx(1024.0)
    assert float(db["MCTLSZ"]) == pytest.approx(row["mctlsz_mb"], abs=0.5)  # whole MB
    assert int(db["%ACTV"]) == round(row["active_est_mb"] / row["memsz_mb"] * 100)
    assert float(db["SWR/s"]) == pytest.approx(row["swin_pages"] * 4096 / 2**20, abs=0.01)
    assert db["MCTL?"] == "Y" and idle["MCTL?"] == "N"
    assert "1x real time" in text and "0:02:00" in text


def _table(text: str) -> tuple[list[str], list[list[str]]]:
    """The VM table of a frame: its header's names, and each row's cells."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    rows = [line.split() for line in lines[i + 2:] if line.split()
            and line.split()[0] in ("db", "web", "idle")]
    return lines[i].split(), rows


@pytest.mark.parametrize("width", [80, 120])
def test_default_fields_fit(width: int) -> None:
    # esxtop at 80x24: every default field, whole, with its unit; no cell cut to "20…"
    sim, host, vms = _rows(120)
    text = _text(render_top(host, vms, time_s=sim.time_s, speed=20.0, title="esx-case-study"),
                 width)
    assert "\u2026" not in text
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    assert len(lines) <= 24
    names, rows = _table(text)
    assert names == DEFAULT and "more not shown" not in text
    assert {"MEMSZ", "GRANT", "SZTGT", "TCHD", "MCTLSZ", "SWCUR"} <= set(names)
    for row in rows:
        assert len(row) == len(names) and all(CELL.match(c) for c in row[1:]), row
    for start in HEADER_STARTS:  # the header lines fit too: none wrapped onto a second line
        assert sum(line.startswith(start) for line in lines) == 1, start
    assert any(line.rstrip().endswith("state") for line in lines if line.startswith("VMKMEM"))


def test_a_narrow_terminal_leaves_fields_off_rather_than_cut_them() -> None:
    sim, host, vms = _rows(120)
    text = _text(render_top(host, vms, time_s=sim.time_s, speed=None, view=_everything()), 80)
    names, rows = _table(text)
    assert names == [f.name for f in FIELDS][:len(names)] and len(names) < len(FIELDS)
    hidden = [f.name for f in FIELDS][len(names):]
    assert f"{len(hidden)} more not shown ({', '.join(hidden)})" in " ".join(text.split())
    for row in rows:
        assert len(row) == len(names) and all(CELL.match(c) for c in row[1:]), row
    assert "\u2026" not in text


def test_view_keys() -> None:
    view = TopView()
    assert view.key("f") and view.mode == "fields"
    letter = {f.name: f.letter for f in FIELDS}
    view.key(letter["MCTLTGT"])  # shown, in the order of FIELDS
    view.key(letter["GRANT"])  # hidden
    view.key(letter["NAME"])  # always shown
    assert view.mode == "fields"
    assert view.key("\r") and view.mode == "table"
    expected = [n for n in DEFAULT if n != "GRANT"]
    expected.insert(expected.index("MCTLSZ") + 1, "MCTLTGT")
    assert view.shown == expected
    rows = [{"vm": "b", "memsz_mb": 10, "mctlsz_mb": 5}, {"vm": "a", "memsz_mb": 30},
            {"vm": "c", "memsz_mb": 20, "mctlsz_mb": 7}]
    order = lambda: [r["vm"] for r in view.order(rows)]  # noqa: E731
    assert order() == ["b", "a", "c"]  # the run's order
    assert view.key("M") and order() == ["a", "c", "b"]  # MEMSZ, largest first
    view.key("M")
    assert order() == ["a", "c", "b"]  # M again does not reverse, as in esxtop
    view.key("B")
    assert order() == ["c", "b", "a"]  # MCTLSZ; a VM without a value goes last
    view.key("o")
    assert view.mode == "sort"
    view.key(letter["NAME"])
    assert view.mode == "table" and order() == ["a", "b", "c"]
    view.key("o")
    view.key(letter["NAME"])  # the same field again: reversed
    assert order() == ["c", "b", "a"]
    view.key("o")
    view.key("x")
    assert view.sort is None and order() == ["b", "a", "c"]
    view.key("M")
    view.key("N")
    assert order() == ["b", "a", "c"]
    assert not view.key("z") and view.mode == "table"


def test_render_top_tolerates_missing_values() -> None:
    text = _text(render_top({"state": "high"}, [{"vm": "x"}], time_s=0, speed=None,
                            paused=True))
    assert "max speed" in text and "PAUSED" in text and "high state" in text
    assert text.splitlines()[-1].split()[0] == "x"


def test_run_top_to_the_end() -> None:
    sim = FakeSim(seconds=40)
    buf = io.StringIO()
    console = Console(file=buf, width=220, force_terminal=True, color_system=None)
    assert run_top(sim, speed=None, console=console, keys=KeyReader(io.StringIO())) == 0
    assert sim.done and sim.steps == 40
    assert "t=40 s" in ANSI.sub("", buf.getvalue())  # the last second is always drawn


def test_run_top_max_seconds_and_pacing() -> None:
    sim = FakeSim(seconds=1000)
    console = Console(file=io.StringIO(), width=220, force_terminal=True)
    start = time.monotonic()
    assert run_top(sim, speed=100.0, console=console, max_seconds=20) == 0
    elapsed = time.monotonic() - start
    assert sim.steps == 20
    assert 0.15 <= elapsed < 3.0, elapsed  # 20 simulated s at 100x: about 0.2 s


def test_run_top_rejects_bad_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        run_top(FakeSim(), speed=0.0, console=Console(file=io.StringIO()))


class ScriptedKeys(KeyReader):
    """Keys typed by the test: one string per read() call, then nothing."""

    def __init__(self, script: list[str]) -> None:
        super().__init__(io.StringIO())
        self.script = list(script)
        self.reads = 0

    def read(self, timeout: float) -> str:
        self.reads += 1
        return self.script.pop(0) if self.script else ""


def test_keys_quit_pause_speed() -> None:
    sim = FakeSim(seconds=10_000)
    buf = io.StringIO()
    console = Console(file=buf, width=220, force_terminal=True, color_system=None)
    keys = ScriptedKeys(["", "+", " ", "", "", " ", "-", "-", "q"])
    assert run_top(sim, speed=1000.0, console=console, keys=keys) == 0
    assert sim.steps < 50 and keys.script == []
    out = ANSI.sub("", buf.getvalue())
    assert "PAUSED" in out and "2000x real time" in out and "500x real time" in out


def test_keys_choose_fields_and_sort() -> None:
    sim = FakeSim(seconds=10_000)
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    letter = {f.name: f.letter for f in FIELDS}
    keys = ScriptedKeys(["f", letter["MCTLTGT"], "\r", "", "o", letter["NAME"], "", "M", "",
                         "q"])
    view = TopView()
    assert run_top(sim, speed=1000.0, console=console, keys=keys, view=view) == 0
    assert keys.script == [] and sim.steps < 50
    out = ANSI.sub("", buf.getvalue())
    assert "Fields: a letter shows or hides its field" in out
    assert re.search(r"^NAME .*MCTLSZ MCTLTGT SWCUR", out, re.M)
    assert "sorted by NAME, A to Z" in out and "sorted by MEMSZ, largest first" in out
    assert view.sort == "MEMSZ" and "MCTLTGT" in view.shown


def test_ctrl_c_returns_zero() -> None:
    class Interrupted(FakeSim):
        def step_second(self):
            if self.steps == 5:
                raise KeyboardInterrupt
            return super().step_second()

    sim = Interrupted(seconds=100)
    assert run_top(sim, speed=None, console=Console(file=io.StringIO())) == 0
    assert sim.steps == 5


# ---- in a real pseudo-terminal ----------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, termios
    sys.path.insert(0, {tests!r})
    from conftest_report import FakeSim
    from rich.console import Console
    from vmemsim.report.top import run_top

    before = termios.tcgetattr(0)
    sim = FakeSim(seconds=100_000)
    rc = run_top(sim, speed=50.0, console=Console())
    after = termios.tcgetattr(0)
    print(f"EXIT rc={{rc}} steps={{sim.steps}} restored={{after == before}}", flush=True)
    sys.exit(rc)
""")


def _spawn(tmp_path: Path, rows: int = 50, cols: int = 220) -> tuple[int, int]:
    import fcntl
    import pty
    import struct
    import termios

    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    pid, fd = pty.fork()
    if pid == 0:  # child: a terminal of rows x cols before anything asks for its size
        try:
            sigint_default()  # ^C in the terminal interrupts it, however the tests started
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(sys.executable, [sys.executable, str(script)], env)
        finally:
            os._exit(127)
    return pid, fd


def _read(fd: int, seen: list[str], timeout: float) -> bool:
    """Read what the child wrote within `timeout`; False once it closed the terminal."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if ready:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        seen.append(chunk.decode("utf-8", errors="replace"))
    return True


def _read_until(fd: int, pattern: str, timeout: float, seen: list[str]) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _read(fd, seen, 0.1):
            break
        screen = ANSI.sub("", "".join(seen))
        if re.search(pattern, screen):
            return screen
    raise AssertionError(f"{pattern!r} not seen within {timeout} s; screen:\n"
                         + ANSI.sub("", "".join(seen))[-3000:])


FRAME_START = re.compile(r"^(?=\d+:\d\d:\d\d  )", re.M)  # each frame opens with the clock


def _frames(seen: list[str]) -> list[str]:
    """The frames drawn so far, whole ones only (rich redraws in place: after the escape
    sequences are gone, each frame follows the last)."""
    text = ANSI.sub("", "".join(seen)).replace("\r\n", "\n").replace("\r", "\n")
    parts = [p for p in FRAME_START.split(text) if FRAME_START.match(p)]
    return parts[:-1]  # the last may be half written


def _wait_frame(fd: int, seen: list[str], pred, timeout: float = 20.0) -> str:
    """The first whole frame drawn from now on for which `pred(frame)` holds."""
    start = len(_frames(seen))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _read(fd, seen, 0.1):
            break
        for frame in _frames(seen)[start:]:
            if pred(frame):
                return frame
    frames = _frames(seen)
    raise AssertionError("no such frame within {} s; last:\n{}".format(
        timeout, frames[-1] if frames else ANSI.sub("", "".join(seen))[-3000:]))


def _wait(pid: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("child did not exit")


def _check_screen(screen: str) -> None:
    lines = screen.splitlines()
    for start in HEADER_STARTS:
        assert any(line.lstrip().startswith(start) for line in lines), start
    assert re.search(r"^\s*NAME\s+MEMSZ\s+GRANT\s+SZTGT\s+TCHD\s+%ACTV", screen, re.M)
    for vm in ("db", "web", "idle"):
        assert re.search(rf"^\s*{vm}\s+\d+\s", screen, re.M), vm


def _has_table(frame: str) -> bool:
    return re.search(r"^NAME ", frame, re.M) is not None


def _check_frame(frame: str, cols: int) -> tuple[list[str], list[list[str]]]:
    """Nothing in a frame is wider than the terminal or cut short; its table's names and rows."""
    assert "\u2026" not in frame and "..." not in frame
    lines = frame.rstrip("\n").splitlines()
    assert all(len(line) <= cols for line in lines), max(lines, key=len)
    names, rows = _table(frame)
    assert set(names) <= {f.name for f in FIELDS}  # every header whole
    assert [r[0] for r in rows] and sorted(r[0] for r in rows) == ["db", "idle", "web"]
    for row in rows:
        assert len(row) == len(names) and all(CELL.match(c) for c in row[1:]), row
    return names, rows


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize("key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_top_in_a_pty(tmp_path: Path, key: bytes) -> None:
    pid, fd = _spawn(tmp_path)
    seen: list[str] = []
    try:
        # wait for a few seconds of simulation so the table has been drawn more than once
        screen = _read_until(fd, r"t=[3-9]\d* s", 30.0, seen)
        _check_screen(screen)
        os.write(fd, key)
        screen = _read_until(fd, r"EXIT rc=\d+ steps=\d+ restored=\w+", 15.0, seen)
        assert _wait(pid) == 0
    finally:
        os.close(fd)
    m = re.search(r"EXIT rc=(\d+) steps=(\d+) restored=(\w+)", screen)
    assert m and m.group(1) == "0"
    assert int(m.group(2)) < 100_000  # it stopped on the key, not at the end of the run
    assert m.group(3) == "True"  # terminal settings (cbreak) restored


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize("cols", [80, 120])
def test_top_keys_in_a_pty(tmp_path: Path, cols: int) -> None:
    """At 80x24 and 120x24, as esxtop: every cell whole, and f, o, M and q work."""
    letter = {f.name: f.letter for f in FIELDS}
    pid, fd = _spawn(tmp_path, rows=24, cols=cols)
    seen: list[str] = []
    try:
        frame = _wait_frame(fd, seen, lambda f: _has_table(f) and "db" in f, 30.0)
        names, _ = _check_frame(frame, cols)
        assert names == DEFAULT
        assert len(frame.rstrip("\n").splitlines()) <= 24

        os.write(fd, b"f")  # the field list, then show two more fields and leave it
        frame = _wait_frame(fd, seen, lambda f: "Fields:" in f)
        assert all(len(line) <= cols for line in frame.splitlines())
        assert len(frame.rstrip("\n").splitlines()) <= 24
        assert re.search(r"^\*? *\* b MEMSZ +MB +configured memory", frame, re.M)
        os.write(fd, (letter["MCTLTGT"] + letter["ZIP/s"] + "\r").encode())
        frame = _wait_frame(fd, seen, lambda f: _has_table(f) and "MCTLTGT" in f)
        names, _ = _check_frame(frame, cols)
        assert names[:names.index("MCTLTGT") + 1] == [
            "NAME", "MEMSZ", "GRANT", "SZTGT", "TCHD", "%ACTV", "MCTLSZ", "MCTLTGT"]
        assert ("ZIP/s" in names) == (cols >= 120)  # left off at 80, and said so
        if cols < 120:
            assert "more not shown (ZIP/s)" in " ".join(frame.split())

        os.write(fd, b"o")  # sort by name: db, idle, web
        _wait_frame(fd, seen, lambda f: "Sort:" in f)
        os.write(fd, letter["NAME"].encode())
        frame = _wait_frame(fd, seen, lambda f: "sorted by NAME" in f and _has_table(f))
        assert [r[0] for r in _check_frame(frame, cols)[1]] == ["db", "idle", "web"]

        os.write(fd, b"M")  # esxtop's M: by MEMSZ, largest first: db, web, idle
        frame = _wait_frame(fd, seen, lambda f: "sorted by MEMSZ" in f and _has_table(f))
        assert [r[0] for r in _check_frame(frame, cols)[1]] == ["db", "web", "idle"]

        os.write(fd, b"q")
        screen = _read_until(fd, r"EXIT rc=\d+ steps=\d+ restored=\w+", 15.0, seen)
        assert _wait(pid) == 0
    finally:
        os.close(fd)
    m = re.search(r"EXIT rc=(\d+) steps=(\d+) restored=(\w+)", screen)
    assert m and m.groups()[0] == "0" and int(m.group(2)) < 100_000 and m.group(3) == "True"
