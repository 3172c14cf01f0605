"""The live view: rendering, pacing and keys with a fake simulation, then for real in a pty."""

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

from vmemsim.report.top import VM_FIELDS, KeyReader, render_top, run_top

try:
    from conftest_report import FakeSim
except ImportError:  # tests collected as a package
    from .conftest_report import FakeSim

ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")
HEADER_STARTS = ("PMEM  /MB:", "VMKMEM/MB:", "PSHARE/MB:", "SWAP  /MB:", "ZIP   /MB:",
                 "MEMCTL/MB:")


def _text(renderable) -> str:
    buf = io.StringIO()
    Console(file=buf, width=220, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue()


def _rows(seconds: int = 120):
    sim = FakeSim()
    host, vms = {}, []
    for _ in range(seconds):
        host, vms = sim.step_second()
    return sim, host, vms


def test_render_top_header_and_rows() -> None:
    sim, host, vms = _rows(120)  # t = 120 s: the synthetic host is in the low state
    text = _text(render_top(host, vms, time_s=sim.time_s, speed=1.0))
    lines = text.splitlines()
    for start in HEADER_STARTS:
        assert any(line.startswith(start) for line in lines), start
    pmem = next(line for line in lines if line.startswith("PMEM"))
    assert re.search(r"4096\s+total:\s+300\s+vmk,\s*\d+ other,\s+71 free", pmem), pmem
    assert "low state" in text and "minfree" in text
    assert "page sharing is not simulated" in text
    header = next(line for line in lines if line.startswith("NAME"))
    assert header.split() == [h for h, _, _ in VM_FIELDS]
    rows = {line.split()[0]: line.split() for line in lines
            if line.split() and line.split()[0] in ("db", "web", "idle")}
    assert set(rows) == {"db", "web", "idle"}
    db = dict(zip(header.split(), rows["db"], strict=True))
    row = next(r for r in vms if r["vm"] == "db")
    assert float(db["MEMSZ"]) == pytest.approx(1024.0)
    assert float(db["MCTLSZ"]) == pytest.approx(row["mctlsz_mb"], abs=0.01)
    assert int(db["%ACTV"]) == round(row["active_est_mb"] / row["memsz_mb"] * 100)
    assert float(db["SWR/s"]) == pytest.approx(row["swin_pages"] * 4096 / 2**20, abs=0.01)
    assert db["MCTL?"] == "Y" and rows["idle"][VM_FIELDS.index(("MCTL?", "mctl?", "s"))] == "N"
    assert "1x real time" in text and "0:02:00" in text


def test_render_top_tolerates_missing_values() -> None:
    text = _text(render_top({"state": "high"}, [{"vm": "x"}], time_s=0, speed=None,
                            paused=True))
    assert "max speed" in text and "PAUSED" in text and "high state" in text
    assert "x" in text.splitlines()[-1]


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


def _spawn(tmp_path: Path) -> tuple[int, int]:
    import fcntl
    import pty
    import struct
    import termios

    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    pid, fd = pty.fork()
    if pid == 0:  # child: a terminal of 50 x 220 before anything asks for its size
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
            os.execve(sys.executable, [sys.executable, str(script)], env)
        finally:
            os._exit(127)
    return pid, fd


def _read_until(fd: int, pattern: str, timeout: float, seen: list[str]) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen.append(chunk.decode("utf-8", errors="replace"))
        screen = ANSI.sub("", "".join(seen))
        if re.search(pattern, screen):
            return screen
    raise AssertionError(f"{pattern!r} not seen within {timeout} s; screen:\n"
                         + ANSI.sub("", "".join(seen))[-3000:])


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
        assert re.search(rf"^\s*{vm}\s+\d+\.\d\d\s", screen, re.M), vm


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
