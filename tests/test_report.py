"""Figures, the HTML report (also in headless Chromium), the terminal summary and comparisons."""

from __future__ import annotations

import base64
import copy
import io
import math
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from rich.console import Console

from vmemsim.metrics.columns import HOST_COLUMNS, STATES, VM_COLUMNS
from vmemsim.metrics.recorder import _verdict
from vmemsim.metrics.result import Result
from vmemsim.metrics.slowdown import is_slower, ratio
from vmemsim.report.compare import compare, print_compare, unique_names, write_compare
from vmemsim.report.html import MIN_SPAN_W, render_report, state_timeline_svg, write_report
from vmemsim.report.plots import (
    FIGURES,
    MAX_VMS,
    MEMORY_STACK,
    PLOTTERS,
    FigureJob,
    figures_without_baseline,
    save_figure,
    select_vms,
    slowdown_series,
    state_segments,
    write_plots,
)
from vmemsim.report.terminal import print_summary

try:
    from conftest_report import make_result
except ImportError:  # tests collected as a package
    from .conftest_report import make_result


@pytest.fixture(scope="module")
def result() -> Result:
    return make_result(300, name="case study")


@pytest.fixture(scope="module")
def out(result: Result, tmp_path_factory) -> tuple[Path, list[Path], Path]:
    folder = tmp_path_factory.mktemp("report")
    plots = write_plots(result, folder)
    report = write_report(result, folder, plots)
    return folder, plots, report


# ---- figures ----------------------------------------------------------------------------------

def test_every_figure_is_a_valid_png(out) -> None:
    _, plots, _ = out
    assert [p.name for p in plots] == list(FIGURES)
    for p in plots:
        assert p.stat().st_size > 10_000, p.name
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = imread(p)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 500, p.name
        assert float(img[..., :3].std()) > 0.02, f"{p.name} looks blank"


def test_figures_are_deterministic(result: Result, out, tmp_path: Path) -> None:
    # one figure is enough to catch a date or version in the PNG metadata (and keeps it fast)
    folder, _, _ = out
    again = save_figure(PLOTTERS["vm_memory.png"](result), tmp_path / "again.png")
    assert again.read_bytes() == (folder / "vm_memory.png").read_bytes()


@pytest.fixture
def forkable(monkeypatch: pytest.MonkeyPatch) -> None:
    # whatever this machine's cores, and any thread another test left: take the fork path
    from vmemsim import _fork

    monkeypatch.setattr(_fork, "can_fork", lambda: True)


def test_figure_job_draws_the_same_figures(result: Result, out, tmp_path: Path,
                                           forkable: None) -> None:
    folder, _, _ = out
    files = ["memory_state.png", "active_estimate.png"]
    job = FigureJob(result, tmp_path, files)
    assert job.forked
    assert write_plots(result, tmp_path, drawn=job) == [tmp_path / f for f in FIGURES]
    assert job.status == "ok"  # drawn by the child, not again here
    for f in FIGURES:
        assert (tmp_path / f).read_bytes() == (folder / f).read_bytes(), f
    assert figures_without_baseline() == [f for f in FIGURES if f != "throughput.png"]


def test_figure_job_redraws_what_its_process_failed_to(result: Result, out, tmp_path: Path,
                                                       forkable: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _, _ = out
    parent = os.getpid()
    real_vm, real_targets = PLOTTERS["vm_memory.png"], PLOTTERS["reclamation_targets.png"]
    drawn_here: list[str] = []

    def vm_memory(r: Result):  # noqa: ANN202
        if os.getpid() == parent:
            drawn_here.append("vm_memory.png")
        return real_vm(r)

    def targets_fail_in_the_child(r: Result):  # noqa: ANN202
        if os.getpid() != parent:
            raise RuntimeError("no memory in the child")
        drawn_here.append("reclamation_targets.png")
        return real_targets(r)

    monkeypatch.setitem(PLOTTERS, "vm_memory.png", vm_memory)
    monkeypatch.setitem(PLOTTERS, "reclamation_targets.png", targets_fail_in_the_child)
    job = FigureJob(result, tmp_path, ["vm_memory.png", "reclamation_targets.png"])
    assert job.forked
    paths = job.wait()
    assert paths == [tmp_path / "vm_memory.png", tmp_path / "reclamation_targets.png"]
    assert job.status == "RuntimeError: no memory in the child"
    assert drawn_here == ["reclamation_targets.png"]  # the child wrote the other one
    for p in paths:
        assert p.read_bytes() == (folder / p.name).read_bytes(), p.name
    assert job.wait() == paths and len(drawn_here) == 1  # a second wait draws nothing again


def test_figure_job_cancelled_leaves_no_partial_file(result: Result, tmp_path: Path,
                                                     forkable: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    class Stuck:  # a figure whose PNG is half written when the run is interrupted
        def savefig(self, path: Path, **_: object) -> None:
            Path(path).write_bytes(b"\x89PNG half")
            time.sleep(120)

    real_state = PLOTTERS["memory_state.png"]
    monkeypatch.setitem(PLOTTERS, "vm_memory.png", lambda r: Stuck())
    job = FigureJob(result, tmp_path, ["vm_memory.png"])
    assert job.forked
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".vm_memory.png.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".vm_memory.png.*.tmp")), "the child never started writing"
    job.cancel()
    assert list(tmp_path.iterdir()) == [] and job.status == "cancelled"
    # Killed outright (out of memory): wait removes what it left, and draws the figure here.
    monkeypatch.setitem(PLOTTERS, "memory_state.png", lambda r: Stuck())
    job = FigureJob(result, tmp_path, ["memory_state.png"])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".memory_state.png.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    job._proc.kill()
    monkeypatch.setitem(PLOTTERS, "memory_state.png", real_state)
    assert job.wait() == [tmp_path / "memory_state.png"]
    assert job.status == "the figures' process died"
    assert [p.name for p in tmp_path.iterdir()] == ["memory_state.png"]


def test_figure_job_without_a_fork_draws_in_wait(result: Result, out, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from vmemsim import _fork

    monkeypatch.setattr(_fork, "can_fork", lambda: False)
    job = FigureJob(result, tmp_path, ["memory_state.png"])
    assert not job.forked and not list(tmp_path.iterdir())
    assert job.wait() == [tmp_path / "memory_state.png"]
    drawn = (tmp_path / "memory_state.png").read_bytes()
    assert drawn == (out[0] / "memory_state.png").read_bytes()


def test_figures_survive_odd_input(tmp_path: Path) -> None:
    # '$' in names would start matplotlib mathtext; an empty result must still draw
    r = make_result(20, name="cost $5 $$")
    r.vms["vm"] = r.vms["vm"].replace({"db": "$db"})
    save_figure(PLOTTERS["throughput.png"](r), tmp_path / "odd.png")
    empty = Result(host=r.host.iloc[:0], vms=r.vms.iloc[:0], summary={"scenario": "empty"})
    assert all(p.stat().st_size > 0 for p in write_plots(empty, tmp_path / "empty"))


def test_many_vms_are_capped() -> None:
    r = make_result(10)
    vms = pd.concat([r.vms.assign(vm=r.vms["vm"] + f"-{i}") for i in range(6)],
                    ignore_index=True)
    many = Result(host=r.host, vms=vms, summary={"scenario": "many"})
    names, total = select_vms(many)
    assert total == 18 and len(names) == MAX_VMS
    assert names == [n for n in pd.unique(vms["vm"]) if n in names]  # run order kept


# The default scenario's shape: a 2 GB VM first, then 3 GB ones (the old shared scale stopped at
# the first panel's 2.1 GB), and one without a balloon driver.
CASE_VMS = (("web", 2048.0, 1, 0.6, 2.0e5), ("db", 3072.0, 1, 0.7, 2.0e5),
            ("batch", 3072.0, 1, 0.5, 3.0e5), ("legacy", 1536.0, 0, 0.1, 4.0e3))


def _drawn_top(ax) -> float:
    """The highest y of everything drawn in data coordinates (lines, stacked areas), not the
    state shading (drawn in axes coordinates)."""
    tops = [float(np.nanmax(line.get_ydata())) for line in ax.get_lines()
            if np.isfinite(np.asarray(line.get_ydata(), float)).any()]
    for coll in ax.collections:
        if coll.get_transform() != ax.transData:
            continue
        for path in coll.get_paths():
            ys = path.vertices[:, 1]
            if np.isfinite(ys).any():
                tops.append(float(np.nanmax(ys)))
    return max(tops, default=0.0)


@pytest.mark.parametrize("file", ["vm_memory.png", "reclamation_targets.png"])
def test_per_vm_panels_show_the_whole_vm(file: str) -> None:
    r = make_result(120, vms=CASE_VMS, scale=1.3)
    fig = PLOTTERS[file](r)
    axes = fig.axes
    assert [ax.get_title(loc="left").split()[0] for ax in axes] == [v[0] for v in CASE_VMS]
    limits = {ax.get_ylim() for ax in axes}
    assert len(limits) == 1, limits  # one scale, so panels compare
    low, high = limits.pop()
    assert low == 0
    tallest = 0.0
    for ax, (name, memsz, *_) in zip(axes, CASE_VMS, strict=True):
        d = r.vms[r.vms["vm"] == name]
        if file == "vm_memory.png":  # the configured line and the whole stack
            stack = sum(f(d) for _, _, f in MEMORY_STACK)
            need = max(memsz, float(np.max(stack)))
        else:
            need = float(d[["mctlsz_mb", "mctltgt_mb", "mctlmax_mb", "swcur_mb",
                            "swtgt_mb"]].max().max())
        assert _drawn_top(ax) >= need * 0.999
        assert high >= _drawn_top(ax), (name, high, _drawn_top(ax))
        tallest = max(tallest, _drawn_top(ax))
    assert high <= tallest * 1.1  # and not much more: the data fill the panels
    first = _drawn_top(axes[0])
    assert tallest > first * 1.2  # the data that the first panel's scale used to cut


def test_slowdown_panel_is_log_and_keeps_the_stall_on_it() -> None:
    r = make_result(300, vms=(("stalled", 1024.0, 1, 0.7, 2.0e5), ("steady", 1024.0, 1, 0.7,
                                                                     2.0e5)))
    vms = r.vms.copy()
    stalled = (vms["vm"] == "stalled") & vms["time_s"].between(100, 130)
    vms.loc[stalled, "throughput"] = 1.0  # almost stopped: 200,000x slower
    steady = vms["vm"] == "steady"
    vms.loc[steady, "throughput"] = vms.loc[steady, "base_throughput"] / 2  # 2x throughout
    r = Result(host=r.host, vms=vms, summary=r.summary)
    ax = PLOTTERS["throughput.png"](r).axes[-1]
    assert "slowdown" in ax.get_title(loc="left")
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    worst = float(slowdown_series(vms[vms["vm"] == "stalled"]).max())
    assert worst > 1e4 and high >= worst and low <= 1.0  # nothing clipped, 1x in view

    def frac(y: float) -> float:  # height in the panel, 0 at the bottom, 1 at the top
        return float(ax.transAxes.inverted().transform(ax.transData.transform((0.0, y)))[1])

    # the steady VM's 2x stands clear of 1x (on the old linear axis: 1/200,000 of it)
    assert frac(2.0) - frac(1.0) > 0.05
    assert ax.yaxis.get_major_formatter()(1.0, 0) == "1x"
    assert ax.yaxis.get_major_formatter()(10000.0, 0) == "10,000x"


def test_state_segments(result: Result) -> None:
    segs = state_segments(result.host)
    assert [s for s, _, _ in segs] == ["high", "soft", "hard", "low", "hard", "soft", "high"]
    assert segs[0][1] == 0.0 and segs[-1][2] == 300.0
    assert all(a[2] == b[1] for a, b in zip(segs, segs[1:], strict=False))


# ---- HTML report ------------------------------------------------------------------------------

def test_report_is_self_contained(out) -> None:
    _, plots, report = out
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', html)
    assert len(srcs) == len(plots)
    for src, p in zip(srcs, plots, strict=True):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == p.read_bytes()
    for info in FIGURES.values():
        assert escape(info.title) in html


def test_report_contents(out, result: Result) -> None:
    html = out[2].read_text(encoding="utf-8")
    for vm in result.summary["vms"]:
        assert f"<td>{vm['name']}</td>" in html
    assert "<svg" in html and html.count("<rect") >= 7  # one bar per state run
    assert "INCOMPLETE" not in html
    for tr in result.summary["transitions"]:
        assert f"<td>{tr['to']}</td>" in html
    for col in (*HOST_COLUMNS, *VM_COLUMNS):
        assert f"<code>{col.name}</code>" in html  # glossary
    assert "This summary has no story" in html  # a synthetic summary, as an old one


def test_report_tells_the_story(result: Result) -> None:
    """The run's story, the host's sentence and each VM's, as summary.json has them."""
    summary = copy.deepcopy(result.summary)
    summary["host"]["story"] = "The host went <high> & back."
    for vm in summary["vms"]:
        vm["story"] = f"{vm['name']} was ballooned."
    html = render_report(Result(host=result.host, vms=result.vms, summary=summary), [])
    assert '<p class="story">The host went &lt;high&gt; &amp; back.</p>' in html
    for vm in summary["vms"]:
        assert f'<p class="story">{escape(vm["story"])}</p>' in html
    assert "This summary has no story" not in html


def test_incomplete_banner_and_default_plots(out, tmp_path: Path, monkeypatch) -> None:
    _, plots, _ = out
    calls = []

    def fake_write_plots(result: Result, folder: Path) -> list[Path]:
        calls.append(folder)
        return plots

    # plots=None draws the figures first; reuse the fixture's to keep the test fast
    monkeypatch.setattr("vmemsim.report.html.write_plots", fake_write_plots)
    r = make_result(30, complete=False)
    html = write_report(r, tmp_path).read_text(encoding="utf-8")
    assert calls == [tmp_path]
    assert "INCOMPLETE" in html
    assert len(re.findall(r"<img ", html)) == len(FIGURES)


def test_text_is_escaped() -> None:
    r = make_result(10, name="<script>alert(1)</script>")
    r.summary["description"] = 'a & b <img src=x onerror="boom">'
    r.summary["vms"][0]["verdict"] = "<b>bad</b>"
    html = render_report(r, [])
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "onerror=\"boom\"" not in html and "&lt;img src=x" in html
    assert "&lt;b&gt;bad&lt;/b&gt;" in html


def _bar_spans(svg: str) -> list[tuple[str, float]]:
    """(tooltip, width) of each state span of the timeline, in drawing order."""
    root = ET.fromstring(svg[:svg.index("</svg>") + 6])
    spans = []
    for parent in root.iter():
        for child in parent:
            if child.tag != "rect":
                continue
            title = child.find("title")
            if title is None:
                title = parent.find("title")
            spans.append((title.text if title is not None else "", float(child.get("width"))))
    return spans


def test_state_bar_shows_a_one_second_state(result: Result) -> None:
    r = make_result(600)
    host = r.host.copy()
    host["state"] = "high"
    host.loc[host["time_s"] == 300, "state"] = "hard"  # 1 s of hard in 600 s
    svg = state_timeline_svg(Result(host=host, vms=r.vms, summary=r.summary))
    spans = _bar_spans(svg)
    hard = [i for i, (t, _) in enumerate(spans) if t.startswith("hard")]
    assert len(hard) == 1 and len(spans) == 3
    title, width = spans[hard[0]]
    assert width >= MIN_SPAN_W >= 4  # its true width is 1.7 of 1000
    assert title == "hard: 299-300 s (1 s)"  # the exact duration
    assert hard[0] == len(spans) - 1  # drawn over the high spans it overlaps
    assert spans[0] == ("high: 0-299 s (299 s)", pytest.approx(299 / 600 * 1000, abs=0.01))
    assert ">high 299 s</text>" in svg  # a span wide enough is labelled too


def test_report_is_deterministic(result: Result, out) -> None:
    _, plots, report = out
    assert render_report(result, plots) == report.read_text(encoding="utf-8")


@pytest.mark.browser
def test_report_in_headless_chromium(out, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("VMEMSIM_SKIP_BROWSER") == "1":
            pytest.skip("chromium not installed and VMEMSIM_SKIP_BROWSER=1")
        pytest.fail("chromium not found: install it (apt-get install chromium) or set "
                    "VMEMSIM_SKIP_BROWSER=1 to skip this test")
    _, plots, report = out
    shot = tmp_path / "shot.png"
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2000"]
    url = report.resolve().as_uri()
    subprocess.run([*base, f"--screenshot={shot}", url], check=True, timeout=120,
                   capture_output=True)
    dom = subprocess.run([*base, "--dump-dom", url], check=True, timeout=120,
                         capture_output=True, text=True).stdout
    assert dom.count("<img ") == len(plots)
    assert "Virtual machines" in dom
    assert shot.exists() and shot.stat().st_size > 0
    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1280)
    assert float(pixels[..., :3].std()) > 0.05, "screenshot is blank"


# ---- terminal summary -------------------------------------------------------------------------

def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=160, force_terminal=False, color_system=None), buf


def test_print_summary(result: Result) -> None:
    console, buf = _console()
    result.files = ["host.csv", "vms.csv", "summary.json"]
    print_summary(result, console, out_dir="results/case")
    text = buf.getvalue()
    for vm in result.summary["vms"]:
        assert vm["name"] in text and vm["verdict"] in text
    assert "MCTLSZ" in text and "SWCUR" in text and "slowdown" in text
    assert "States seen: high 179 s, soft 30 s, hard 48 s, low 43 s; 6 transitions." in text
    assert "results/case" in text and "summary.json" in text
    assert "INCOMPLETE" not in text


def _summary_rows(text: str) -> dict[str, list[str]]:
    """The per-VM table's rows by VM name, a folded name joined again."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.strip()) == {"\u2500"}) + 1
    rows: dict[str, list[str]] = {}
    name = ""
    for line in lines[start:]:
        cells = line.split()
        if not cells:
            break
        if len(cells) == 1:  # the rest of a long name
            rows[name + cells[0]] = rows.pop(name)
            name += cells[0]
        else:
            name = cells[0]
            rows[name] = cells[1:]
    return rows


def test_print_summary_fits_80_columns() -> None:
    # a 64 GB VM, millions of refs/s, a long name: nothing cut to "throug…" or "1,04…"
    vms = (("web-frontend-01", 2048.0, 1, 0.6, 12.5e6), ("db", 65536.0, 1, 0.7, 2.0e5),
           ("batch", 3072.0, 1, 0.5, 3.0e5), ("legacy", 1536.0, 0, 0.1, 4.0e3))
    r = make_result(120, vms=vms, scale=1.3)
    buf = io.StringIO()
    print_summary(r, Console(file=buf, width=80, color_system=None), out_dir="results/x")
    text = buf.getvalue()
    assert "\u2026" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    table = text[:text.index("refs/s: throughput")]
    for head in ("VM", "MEMSZ", "refs/s", "slowdown", "MCTLSZ", "SWCUR", "ZIP", "blocked"):
        assert re.search(rf"(?<!\S){re.escape(head)}(?!\S)", table), head
    rows = _summary_rows(table)
    assert list(rows) == [v[0] for v in vms]  # the long name wraps, whole
    for v in r.summary["vms"]:
        assert rows[v["name"]] == [
            f"{v['memsz_mb']:,.0f}", f"{v['throughput']:,.0f}", ratio(v["slowdown"]),
            f"{v['max_balloon_mb']:,.0f}", f"{v['max_swapped_mb']:,.0f}",
            f"{v['max_compressed_mb']:,.0f}", f"{v['blocked_s']:,.1f}"], v["name"]
        assert " ".join(v["verdict"].split()) in " ".join(text.split())


def test_verdicts_say_slowdown_as_the_tables_do(result: Result, pair: list[Result]) -> None:
    peaks = {"balloon": 1048.0, "zipped": 130.0, "swapped": 129.5}
    assert _verdict(4.926, peaks, 0.0, 0) == (
        "ballooned up to 1048 MB; compressed up to 130 MB; host-swapped up to 130 MB; "
        "4.93x slower than with ample memory")  # was "393% slower" beside a 4.926x table
    none = dict.fromkeys(peaks, 0.0)
    assert _verdict(1.004, none, 0.0, 0) == "untouched by reclamation; no measurable slowdown"
    assert _verdict(0.97, none, 0.0, 0).endswith("; no measurable slowdown")
    assert _verdict(1.0062, none, 0.0, 0).endswith("; 1.01x slower than with ample memory")
    assert _verdict(40123.4, none, 0.0, 0).endswith("; 40,123x slower than with ample memory")
    assert _verdict(math.nan, none, 0.0, 0).endswith("; slowdown unknown (no baseline run)")
    # every output shows the verdict's number: the terminal, the report and compare
    buf = io.StringIO()
    print_summary(result, Console(file=buf, width=80, color_system=None))
    html = render_report(result, [])
    buf2 = io.StringIO()
    print_compare(compare(pair, ["mild", "deep"]), Console(file=buf2, width=80,
                                                           color_system=None))
    rows = _summary_rows(buf.getvalue())
    for v in result.summary["vms"]:
        cell = ratio(v["slowdown"])
        assert re.fullmatch(r"\d+\.\d\dx", cell)
        assert is_slower(v["slowdown"]) and v["verdict"].endswith(
            f"; {cell} slower than with ample memory")
        assert rows[v["name"]][2] == cell
        assert re.search(rf'<td class="num \w+">{re.escape(cell)}</td>', html)
        assert cell in buf2.getvalue() and v["verdict"] in " ".join(buf2.getvalue().split())
    assert "%" not in " ".join(v["verdict"] for v in result.summary["vms"])


def test_print_summary_incomplete() -> None:
    console, buf = _console()
    print_summary(make_result(20, complete=False), console)
    assert "INCOMPLETE" in buf.getvalue()


# ---- comparison -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair() -> list[Result]:
    return [make_result(300, name="mild"), make_result(300, name="deep", scale=1.4)]


def test_compare_frame(pair: list[Result]) -> None:
    df = compare(pair, ["mild", "deep"])
    assert len(df) == 6
    assert list(df["run"]) == ["mild"] * 3 + ["deep"] * 3
    for col in ("throughput", "slowdown", "max_balloon_mb", "max_compressed_mb",
                "max_swapped_mb", "balloon_mb_s", "compressed_mb_s", "swapped_mb_s",
                *(f"time_{s}_s" for s in STATES)):
        assert col in df.columns
    mild, deep = (df[df["run"] == r].set_index("vm") for r in ("mild", "deep"))
    assert (deep["slowdown"] > mild["slowdown"]).all()
    assert deep.loc["db", "balloon_mb_s"] > mild.loc["db", "balloon_mb_s"]
    assert deep.loc["db", "time_low_s"] > mild.loc["db", "time_low_s"]
    # time in states covers the whole run; the integral matches a direct sum (1 s rows)
    assert mild[[f"time_{s}_s" for s in STATES]].iloc[0].sum() == 300
    db = pair[0].vm("db")
    assert mild.loc["db", "swapped_mb_s"] == pytest.approx(db["swcur_mb"].sum())


def test_compare_without_summary_numbers(pair: list[Result]) -> None:
    bare = Result(host=pair[0].host, vms=pair[0].vms, summary={"scenario": "bare"})
    df = compare([bare, pair[0]], ["bare", "full"]).set_index(["run", "vm"])
    for col in ("throughput", "slowdown", "max_swapped_mb", "blocked_s", "time_hard_s"):
        assert df.loc[("bare", "db"), col] == pytest.approx(df.loc[("full", "db"), col])


def test_compare_checks_names(pair: list[Result]) -> None:
    with pytest.raises(ValueError):
        compare(pair, ["one"])
    with pytest.raises(ValueError):
        compare(pair, ["same", "same"])
    assert unique_names([pair[0], pair[0], pair[1]]) == ["mild", "mild (2)", "deep"]


def test_write_and_print_compare(pair: list[Result], tmp_path: Path) -> None:
    csv_path, png_path = write_compare(pair, tmp_path)
    df = pd.read_csv(csv_path)
    assert len(df) == 6 and set(df["run"]) == {"mild", "deep"}
    img = imread(png_path)
    assert img.shape[0] > 500 and float(np.std(img[..., :3])) > 0.02
    console, buf = _console()
    print_compare(compare(pair, ["mild", "deep"]), console)
    text = buf.getvalue()
    assert "mild" in text and "deep" in text and "Time in each memory state" in text


def test_long_flapping_run_stays_cheap(tmp_path: Path) -> None:
    # a day-long run that flaps between states: figures average into buckets, bands merge
    r = make_result(6000)
    r.host["state"] = np.array(["high", "soft", "hard", "low"])[np.arange(6000) // 2 % 4]
    fig = PLOTTERS["memory_state.png"](r)
    labels = " ".join(ax.get_xlabel() for ax in fig.axes)
    assert "3-second minima" in labels and "most severe state" in labels
    save_figure(fig, tmp_path / "m.png")
    html = render_report(r, [])
    assert html.count("<rect") <= 1000 and "more often than the bar has pixels" in html
