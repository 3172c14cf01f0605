"""`vmemsim compare` for people: each VM's numbers side by side with the difference and the ratio
against the first run, at 80 and 120 columns (printed, and through the command in a pty), and
compare.png's labels clear of each other."""

from __future__ import annotations

import io
import math
import os
import re
import select
import struct
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from vmemsim.metrics.result import Result
from vmemsim.metrics.slowdown import ratio
from vmemsim.report.compare import METRICS, compare, plot_compare, print_compare

try:
    from conftest_report import make_result
except ImportError:  # tests collected as a package
    from .conftest_report import make_result

ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")
RUNS = ["mild", "deep", "deeper", "deepest"]
LABELS = sorted((m[0] for m in METRICS), key=len, reverse=True)  # longest first: no prefix hit
COLUMN = {m[0]: m[1] for m in METRICS}


@pytest.fixture(scope="module")
def trio() -> list[Result]:
    return [make_result(300, name=n, scale=s) for n, s in zip(RUNS, (1.0, 1.4, 1.8, 2.2),
                                                              strict=True)]


def _printed(df: pd.DataFrame, width: int) -> str:
    buf = io.StringIO()
    print_compare(df, Console(file=buf, width=width, color_system=None))
    return buf.getvalue()


def _number(cell: str) -> float:
    """A printed number back: 1,048.0, 72.6k, 1.43M, 4.93x, +0.35x, -1.2k; '-' is NaN."""
    if cell == "-":
        return math.nan
    text = cell.rstrip("x").replace(",", "")
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def _tables(text: str) -> list[tuple[list[str], dict[tuple[str, str], list[str]]]]:
    """Each per-VM table: the runs it shows, and its cells by (VM, metric)."""
    out: list[tuple[list[str], dict[tuple[str, str], list[str]]]] = []
    lines = text.splitlines()
    vm = ""
    for i, line in enumerate(lines):
        if line.startswith("Rows that are 0"):  # the note after the last table
            break
        if set(line.strip()) == {"\u2500"} and lines[i - 1].split()[:2] == ["VM", "metric"]:
            head = lines[i - 1].split()[2:]
            out.append(([h for h in head if h not in ("diff", "ratio")], {}))
            continue
        label = next((lb for lb in LABELS if f" {lb} " in f" {line} "), None)
        if not out or label is None:
            continue
        before, after = line.split(label, 1)
        vm = before.strip() or vm
        out[-1][1][(vm, label)] = after.split()
    return out


def _check(df: pd.DataFrame, text: str, width: int) -> None:
    assert "\u2026" not in text, "a cell was cut"
    assert all(len(line) <= width for line in text.splitlines())
    tables = _tables(text)
    assert tables
    others = [r for runs, _ in tables for r in runs[1:]]
    assert all(runs[0] == RUNS[0] for runs, _ in tables)  # the first run in every table
    assert sorted(others) == sorted(RUNS[1:])  # every other run once
    by = df.set_index(["vm", "run"])
    for runs, cells in tables:
        assert {vm for vm, _ in cells} == {"db", "web", "idle"}
        for (vm, label), row in cells.items():
            assert len(row) == 1 + 3 * (len(runs) - 1), (vm, label, row)
            first = float(by.loc[(vm, runs[0]), COLUMN[label]])
            values = [float(by.loc[(vm, r), COLUMN[label]]) for r in runs]
            got = [_number(c) for c in row]
            expect = [values[0]]
            for v in values[1:]:
                expect += [v, v - first, v / first if first else math.nan]
            for g, e, c in zip(got, expect, row, strict=True):
                if math.isnan(e):
                    assert c == "-", (vm, label, row)
                else:  # printed to 3 significant digits (k, M) or 0.1: never cut short
                    assert g == pytest.approx(e, rel=6e-3, abs=0.051), (vm, label, row)
            if label == "slowdown":  # the ratio form, as every other output says it
                assert row[0] == ratio(values[0]) and re.fullmatch(r"\d+\.\d\dx", row[0])
        # a row of zeros in every run says nothing: idle has no balloon driver
        assert ("idle", "MCTLSZ max MB") not in cells and ("db", "MCTLSZ max MB") in cells
        for label in ("TLB misses", "walk vCPU-s", "MMU traps", "MMU vCPU-s"):  # the MMU's
            assert ("db", label) in cells and ("idle", label) not in cells
        assert all((vm, lb) in cells for vm in ("db", "web", "idle")
                   for lb in ("slowdown", "refs/s"))


@pytest.mark.parametrize("width", [80, 120])
def test_print_compare_side_by_side(trio: list[Result], width: int) -> None:
    df = compare(trio, RUNS)
    text = _printed(df, width)
    _check(df, text, width)
    tables = _tables(text)
    if width == 120:  # room for every run beside the first
        assert [runs for runs, _ in tables] == [RUNS]
    else:  # wrapped: the last run below, beside the first again
        assert [runs for runs, _ in tables] == [RUNS[:3], [RUNS[0], RUNS[3]]]
    flat = " ".join(text.split())
    for r in df.itertuples():
        assert f"{r.run}: {r.verdict}" in flat
    assert "Time in each memory state" in text


def test_print_compare_long_run_names_wrap_whole(trio: list[Result]) -> None:
    names = ["balloon-policy-default", "balloon-policy-aggressive", "x", "y"]
    text = _printed(compare(trio, names), 80)
    assert "\u2026" not in text and all(len(line) <= 80 for line in text.splitlines())
    # the header cell of a long name takes more lines, each line a piece of it, in order
    head = text[:text.index("\u2500")].splitlines()[1:]
    for name in names[:2]:
        pieces = textwrap.wrap(name, 12, break_long_words=True)
        assert len(pieces) > 1
        at = [next(i for i, line in enumerate(head) if piece in line.split()) for piece in pieces]
        assert at == sorted(at) and len(set(at)) == len(at), (name, head)
    assert "balloon-policy-default" in text.split()  # and whole in the title


CHILD = """
import sys
from vmemsim.cli import main
sys.exit(main(["compare", *sys.argv[1:]]))
"""


def _run_in_pty(args: list[str], cols: int, rows: int = 24) -> tuple[int, str]:
    import fcntl
    import pty
    import termios

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    pid, fd = pty.fork()
    if pid == 0:  # child: a terminal of rows x cols, then the command as a user runs it
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(sys.executable, [sys.executable, "-c", CHILD, *args], env)
        finally:
            os._exit(127)
    seen: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            seen.append(chunk)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = ANSI.sub("", b"".join(seen).decode("utf-8", errors="replace"))
    return os.waitstatus_to_exitcode(status), text.replace("\r\n", "\n")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pty")
@pytest.mark.parametrize("cols", [80, 120])
def test_compare_command_in_a_pty(trio: list[Result], tmp_path: Path, cols: int) -> None:
    folders = []
    for r in trio:
        folder = tmp_path / r.name
        r.save(folder, parquet=False)
        folders.append(str(folder))
    code, text = _run_in_pty(folders, cols)
    assert code == 0, text[-2000:]
    assert "Per-VM comparison" in text
    _check(compare(trio, RUNS), text, cols)


def _overlaps(labels: list, renderer) -> list[tuple[str, str]]:
    """Pairs of tick labels whose text runs into each other. Level labels: their boxes may
    not meet; slanted ones (parallel lines of text): neighbours' anchors must lie at least a
    line's height apart across the slant."""
    shown = [t for t in labels if t.get_visible() and t.get_text()]
    bad = []
    for a, b in zip(shown, shown[1:], strict=False):
        if a.get_rotation() == 0:
            if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer)):
                bad.append((a.get_text(), b.get_text()))
            continue
        xa = a.get_transform().transform(a.get_position())[0]
        xb = b.get_transform().transform(b.get_position())[0]
        height = a.get_fontsize() * a.figure.dpi / 72 * 1.2 * (a.get_text().count("\n") + 1)
        if abs(xb - xa) * math.sin(math.radians(a.get_rotation())) < height:
            bad.append((a.get_text(), b.get_text()))
    return bad


@pytest.mark.parametrize("vms", [3, 8])
def test_compare_png_labels_do_not_overlap(vms: int) -> None:
    case = [(f"vm-{i:02d}-{name}", 1024.0, i % 2, 0.5, 1e5) for i, name in
            zip(range(vms), ("web", "database", "batch", "legacy") * 2, strict=False)]
    names = ["default", "balloon-policy-aggressive", "compression-off-and-swap-ssd"]
    results = [make_result(60, name=n, scale=s, vms=case) for n, s in zip(names, (1, 1.3, 1.6),
                                                                          strict=True)]
    fig = plot_compare(compare(results, names))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [a for ax in fig.axes for a in (ax, *ax.child_axes)]
    checked = 0
    for ax in axes:
        labels = ax.get_xticklabels()
        assert not _overlaps(labels, renderer), _overlaps(labels, renderer)
        checked += len(labels)
    assert checked >= vms * len(names) + vms  # the bars' runs, and the VMs (twice)
    # every label inside the figure: none pushed off its edge
    width, height = fig.canvas.get_width_height()
    for ax in axes:
        for t in ax.get_xticklabels():
            box = t.get_window_extent(renderer)
            if t.get_text():
                assert box.x0 >= -1 and box.x1 <= width + 1, t.get_text()
                assert box.y0 >= -1 and box.y1 <= height + 1, t.get_text()


# ---- replicates: the seeds' means and intervals (vmemsim run --seeds N) ----------------------
def _seeded(r: Result, slow: tuple[float, float, float] | None, n: int = 5) -> Result:
    """The result as `run --seeds n` writes it: every VM's slowdown mean and interval `slow`
    (mean, low, high); throughput's interval 10% either side of its value. None: one seed."""
    import copy

    summary = copy.deepcopy(r.summary)
    if slow is not None:
        summary["seeds"] = list(range(7, 7 + n))
        for vm in summary["vms"]:
            m, lo, hi = slow
            vm |= {"slowdown_mean": m, "slowdown_ci": [lo, hi],
                   "throughput_mean": vm["throughput"] * 1.01,
                   "throughput_ci": [vm["throughput"] * 0.9, vm["throughput"] * 1.1]}
    return Result(host=r.host, vms=r.vms, summary=summary)


@pytest.fixture(scope="module")
def seeded(trio: list[Result]) -> list[Result]:
    # against the first: apart (beyond), overlapping (within), one seed (its value, 2.6)
    return [_seeded(trio[0], (2.0, 1.8, 2.2)), _seeded(trio[1], (3.0, 2.7, 3.3)),
            _seeded(trio[2], (2.1, 1.9, 2.4)), _seeded(trio[3], None)]


def test_compare_uses_the_seeds_means_and_says_which_differences_are_beyond_them(
        trio: list[Result], seeded: list[Result]) -> None:
    df = compare(seeded, RUNS).set_index(["run", "vm"])
    for vm in ("db", "web", "idle"):
        assert df.loc[("mild", vm), "slowdown"] == 2.0  # the mean, not the first seed's
        assert (df.loc[("mild", vm), "slowdown_ci_low"],
                df.loc[("mild", vm), "slowdown_ci_high"]) == (1.8, 2.2)
        assert df.loc[("mild", vm), "seeds"] == 5 and df.loc[("deepest", vm), "seeds"] == 1
        assert math.isnan(df.loc[("mild", vm), "slowdown_beyond_ci"])  # the first itself
        assert df.loc[("deep", vm), "slowdown_beyond_ci"] == 1.0
        assert df.loc[("deeper", vm), "slowdown_beyond_ci"] == 0.0
        one = df.loc[("deepest", vm)]  # one seed: its own value, a point interval
        assert one["slowdown_ci_low"] == one["slowdown_ci_high"] == one["slowdown"]
        assert df.loc[("deepest", vm), "slowdown_beyond_ci"] == float(
            not 1.8 <= one["slowdown"] <= 2.2)
        assert df.loc[("deep", vm), "throughput"] == pytest.approx(
            1.01 * seeded[1].summary["vms"][[v["name"] for v in seeded[1].summary["vms"]]
                                            .index(vm)]["throughput"])
    # without replicates in any run: no interval verdicts
    plain = compare(trio, RUNS)
    assert plain["slowdown_beyond_ci"].isna().all() and (plain["seeds"] == 1).all()


@pytest.mark.parametrize("width", [80, 120])
def test_print_compare_shows_the_intervals_side_by_side(trio: list[Result],
                                                        seeded: list[Result],
                                                        width: int) -> None:
    df = compare(seeded, RUNS)
    text = _printed(df, width)
    _check(df, text, width)  # the means, diffs and ratios as before, never cut
    ci = [line.split() for line in text.splitlines() if line.split()[:2] == ["95%", "CI"]
          or line.split()[1:3] == ["95%", "CI"]]
    assert ci
    tables = _tables(text)
    n_tables = len(tables)
    assert len(ci) == n_tables * 3 * 2  # under slowdown and refs/s, for each VM, per table
    first_slow = [c for c in ci if "1.80-2.20x" in c]
    assert len(first_slow) == n_tables * 3
    joined = " ".join(" ".join(c) for c in ci)
    assert "2.70-3.30x beyond" in joined and "1.90-2.40x within" in joined
    assert "1 seed" in joined
    plain = _printed(compare(trio, RUNS), width)  # no seeds in any run: no interval rows
    assert "95% CI" not in plain and "beyond" not in plain


def test_the_report_shows_the_seeds_intervals(trio: list[Result], seeded: list[Result]) -> None:
    from vmemsim.report.html import render_report

    html = render_report(seeded[0], [])
    assert "Over 5 seeds (7&ndash;11)" in html
    assert html.count("1.80x &ndash; 2.20x") == 3  # each VM's slowdown interval
    db = next(v for v in seeded[0].summary["vms"] if v["name"] == "db")
    lo, hi = db["throughput_ci"]
    assert f"{lo:,.0f} &ndash; {hi:,.0f}" in html
    assert "95% interval" not in render_report(trio[0], [])  # one seed: no such table
