"""`report.html`: one self-contained page per run (inline CSS, inline SVG, PNGs as data URIs).

It opens from a mail attachment or a USB stick: no script, no network, no sibling files. Every
piece of text that comes from a scenario or a result goes through `html.escape`.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from html import escape
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vmemsim.metrics.columns import HOST_COLUMNS, STATES, VM_COLUMNS, Column
from vmemsim.metrics.result import Result, atomic_write_text
from vmemsim.metrics.slowdown import ratio
from vmemsim.report.plots import (
    FIGURES,
    STATE_COLORS,
    state_segments,
    worst_per_bin,
    write_plots,
)
from vmemsim.report.terminal import describe_event

MAX_TRANSITION_ROWS = 500  # a flapping run can have thousands; the table would bury the page
# The state bar's narrowest span, in viewBox units (about pixels at the page's width): at its
# true width a 1 s hard state of a 600 s run is 1.7 units, which nobody sees.
MIN_SPAN_W = 6.0
LABEL_CHAR_W = 6.5  # viewBox units per character of an 11 px label: room to print one inside

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1.5em; color: #212121; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #e0e0e0; padding-bottom: 0.2em;
       margin-top: 1.8em; }
.desc { color: #555; margin-top: 0; }
.banner { padding: 0.8em 1em; border-radius: 6px; font-weight: 600; margin: 1em 0; }
.incomplete { background: #ffebee; border: 2px solid #c62828; color: #b71c1c; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #e0e0e0; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.ok { background: #e8f5e9; } td.warn { background: #fff8e1; } td.bad { background: #ffebee; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1.2em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #424242; font-size: 0.92em; max-width: 60em; }
.legend span { display: inline-block; margin-right: 1.2em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: middle;
          margin-right: 0.3em; border: 1px solid #9e9e9e; }
code { background: #f5f5f5; padding: 0 0.2em; }
footer { margin-top: 3em; color: #757575; font-size: 0.85em; }
"""


def _version() -> str:
    try:
        return metadata.version("vmemsim")
    except metadata.PackageNotFoundError:
        return "unknown"


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _num(v: Any, fmt: str = ",.1f") -> str:
    f = _finite(v)
    return "&ndash;" if f is None else escape(format(f, fmt))


def _slowdown_class(v: Any) -> str:
    f = _finite(v)
    if f is None:
        return ""
    return "ok" if f < 1.05 else "warn" if f < 1.5 else "bad"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool],
           classes: Iterable[Sequence[str]] | None = None) -> str:
    """Rows hold cell HTML that is already escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    cls_rows = iter(classes) if classes is not None else None
    for row in rows:
        extra = next(cls_rows) if cls_rows is not None else [""] * len(row)
        cells = []
        for cell, is_num, cls in zip(row, numeric, extra, strict=True):
            names = " ".join(n for n in (("num" if is_num else ""), cls) if n)
            attr = f' class="{names}"' if names else ""
            cells.append(f"<td{attr}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _facts(result: Result) -> str:
    s = result.summary
    host = s.get("host", {}) or {}
    thresholds = host.get("thresholds_mb", {}) or {}
    time_in = host.get("time_in_state_s", {}) or {}
    items: list[tuple[str, str]] = [
        ("Seed", escape(str(s.get("seed", "?")))),
        ("Simulated time", f"{_num(s.get('simulated_s'), ',.0f')} s"),
        ("Wall-clock time", f"{_num(s.get('wall_s'), ',.1f')} s"),
        ("Complete", "yes" if s.get("complete", False) else "<strong>no</strong>"),
        ("Host memory", f"{_num(host.get('memory_mb'), ',.0f')} MB"),
        ("minFree", f"{_num(host.get('minfree_mb'), ',.0f')} MB"),
        ("Threshold preset", escape(str(host.get("threshold_preset", "?")))),
        ("State thresholds (free memory)", ", ".join(
            f"{escape(str(k))} &lt; {_num(v, ',.0f')} MB" for k, v in thresholds.items())
         or "&ndash;"),
        ("States seen", escape(", ".join(str(x) for x in host.get("states_seen", [])))
         or "&ndash;"),
        ("Time in each state", ", ".join(
            f"{escape(str(k))} {_num(v, ',.0f')} s" for k, v in time_in.items()) or "&ndash;"),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _story(result: Result) -> str:
    """The run in sentences (metrics.story, kept in summary.json): the host's, then each VM's.
    A summary written before they existed has none: the section says so."""
    s = result.summary
    lines = [str((s.get("host", {}) or {}).get("story", ""))]
    lines += [str(v.get("story", "")) for v in s.get("vms", []) or []]
    lines = [x for x in lines if x]
    if not lines:
        return "<p>This summary has no story (written by an older vmemsim).</p>"
    return '<p class="story">' + "</p><p class=\"story\">".join(escape(x) for x in lines) + "</p>"


def _vm_table(result: Result) -> str:
    vms = result.summary.get("vms", []) or []
    headers = ["VM", "MEMSZ (MB)", "throughput (refs/s)", "base (refs/s)", "slowdown",
               "max MCTLSZ (MB)", "max compressed (MB)", "max SWCUR (MB)", "blocked (s)",
               "double paging (pages)", "TLB misses", "walk (vCPU-s)", "MMU traps",
               "MMU (vCPU-s)", "verdict"]
    numeric = [False] + [True] * 13 + [False]
    rows, classes = [], []
    for v in vms:
        rows.append([escape(str(v.get("name", "?"))), _num(v.get("memsz_mb"), ",.0f"),
                     _num(v.get("throughput"), ",.0f"), _num(v.get("base_throughput"), ",.0f"),
                     escape(ratio(v.get("slowdown"))),
                     _num(v.get("max_balloon_mb")), _num(v.get("max_compressed_mb")),
                     _num(v.get("max_swapped_mb")), _num(v.get("blocked_s")),
                     _num(v.get("double_paging"), ",.0f"), _num(v.get("tlb_misses"), ",.0f"),
                     _num(v.get("walk_s")), _num(v.get("mmu_traps"), ",.0f"),
                     _num(v.get("mmu_s")), escape(str(v.get("verdict", ""))),
                     ])
        cls = _slowdown_class(v.get("slowdown"))
        classes.append([""] * 4 + [cls] + [""] * 9 + [cls])
    if not rows:
        return "<p>No VMs in this result.</p>"
    return (_table(headers, rows, numeric, classes) +
            "<p>Slowdown = base throughput (same VM and seed on a host with ample memory) / "
            "throughput; 1.00x means unaffected.</p>")


def _seeds_table(result: Result) -> str:
    """With replicates (`run --seeds N`): each VM's mean slowdown and throughput over the
    seeds with their 95% intervals; the tables above are the first seed's. Empty without."""
    seeds = result.summary.get("seeds") or []
    if len(seeds) < 2:
        return ""
    headers = ["VM", "slowdown (mean)", "95% interval", "throughput (mean, refs/s)",
               "95% interval (refs/s)"]
    rows = []
    for v in result.summary.get("vms", []) or []:
        slo, shi = (v.get("slowdown_ci") or [None, None])[:2]
        tlo, thi = (v.get("throughput_ci") or [None, None])[:2]
        rows.append([escape(str(v.get("name", "?"))), escape(ratio(v.get("slowdown_mean"))),
                     f"{escape(ratio(slo))} &ndash; {escape(ratio(shi))}",
                     _num(v.get("throughput_mean"), ",.0f"),
                     f"{_num(tlo, ',.0f')} &ndash; {_num(thi, ',.0f')}"])
    return (f"<p>Over {len(seeds)} seeds ({seeds[0]}&ndash;{seeds[-1]}): each VM's mean and "
            "95% interval (Student's t). The table above and the figures are the first "
            "seed's run.</p>" + _table(headers, rows, [False] + [True] * 4))


def state_timeline_svg(result: Result, width: int = 1000, height: int = 34) -> str:
    """An inline SVG bar: one rectangle per contiguous state, time on the x axis."""
    segs = state_segments(result.host.sort_values("time_s"))
    if not segs:
        return "<p>No host time series in this result.</p>"
    t0, t1 = segs[0][1], segs[-1][2]
    span = max(t1 - t0, 1e-9)
    note = ""
    if len(segs) > width:
        segs = worst_per_bin(segs, width)
        note = ("<p>The host changed state more often than the bar has pixels: each pixel "
                "shows the most severe state reached in its interval.</p>")
    axis_h = 18
    parts = [f'<svg role="img" width="100%" '
             f'viewBox="0 0 {width} {height + axis_h}" '
             f'aria-label="memory state over time">']
    severity = {s: i for i, s in enumerate(STATES)}
    wide, narrow = [], []
    for state, a, b in segs:
        x, w = (a - t0) / span * width, (b - a) / span * width
        if w >= MIN_SPAN_W:
            wide.append((state, a, b, x, w))
        else:  # widened about its middle, kept inside the bar
            x = min(max(x + w / 2 - MIN_SPAN_W / 2, 0.0), width - MIN_SPAN_W)
            narrow.append((state, a, b, x, MIN_SPAN_W))
    # Widened spans overlap their neighbours: draw them last, the most severe on top.
    narrow.sort(key=lambda n: severity.get(n[0], len(STATES)))
    for state, a, b, x, w in wide + narrow:
        color = STATE_COLORS.get(state, "#bdbdbd")
        parts.append(f"<g><title>{escape(state)}: {_seconds(a)}-{_seconds(b)} s "
                     f"({_seconds(b - a)} s)</title>"
                     f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" '
                     f'fill="{color}"/>')
        label = f"{state} {_seconds(b - a)} s"
        if w >= (len(label) + 2) * LABEL_CHAR_W:
            ink = "#ffffff" if state == "low" else "#212121"
            parts.append(f'<text x="{x + w / 2:.2f}" y="{height / 2 + 4:.2f}" font-size="11" '
                         f'fill="{ink}" text-anchor="middle">{escape(label)}</text>')
        parts.append("</g>")
    for tick in np.linspace(t0, t1, 6):
        x = (tick - t0) / span * width
        anchor = "start" if x < 1 else "end" if x > width - 1 else "middle"
        parts.append(f'<line x1="{x:.2f}" y1="{height}" x2="{x:.2f}" y2="{height + 4}" '
                     f'stroke="#616161"/>')
        parts.append(f'<text x="{x:.2f}" y="{height + 15}" font-size="11" fill="#424242" '
                     f'text-anchor="{anchor}">{tick:,.0f} s</text>')
    for e in result.summary.get("events", []) or []:  # the scenario's events, marked
        x = (float(e["time_s"]) - t0) / span * width
        parts.append(f'<g><title>{escape(describe_event(e))}</title><line x1="{x:.2f}" y1="0" '
                     f'x2="{x:.2f}" y2="{height}" stroke="#212121" stroke-width="2" '
                     'stroke-dasharray="4 2"/></g>')
    parts.append("</svg>")
    seen = {s for s, _, _ in segs}
    legend = "".join(f'<span><span class="swatch" style="background:{STATE_COLORS[s]}"></span>'
                     f"{escape(s)}</span>" for s in STATES if s in seen)
    return "".join(parts) + f'<p class="legend">{legend}</p>' + note


def _seconds(v: float) -> str:
    """Exact enough for a tooltip: 1, 0.5, 1,234.5 (not rounded to whole seconds)."""
    return format(round(v, 3) + 0.0, ",.10g")


def _transitions(result: Result) -> str:
    trans = result.summary.get("transitions", []) or []
    if not trans:
        return "<p>The host never changed memory state.</p>"
    rows = [[_num(t.get("time_s"), ",.1f"), escape(str(t.get("from", ""))),
             escape(str(t.get("to", ""))), _num(t.get("free_pct"), ".2f")]
            for t in trans[:MAX_TRANSITION_ROWS]]
    note = ""
    if len(trans) > MAX_TRANSITION_ROWS:
        note = (f"<p>Showing the first {MAX_TRANSITION_ROWS} of {len(trans):,} transitions; "
                "all are in summary.json.</p>")
    return _table(["time (s)", "from", "to", "free memory (%)"], rows,
                  [True, False, False, True]) + note


def _events(result: Result) -> str:
    evs = result.summary.get("events", []) or []
    if not evs:
        return "<p>The scenario has no events.</p>"
    rows = [[_num(e.get("time_s"), ",.1f"), str(e.get("index")), escape(describe_event(e))]
            for e in evs]
    return _table(["time (s)", "event", "what happened"], rows, [True, True, False])


def _figures(plots: Sequence[Path]) -> str:
    out = []
    for i, path in enumerate(plots, start=1):
        info = FIGURES.get(path.name)
        title = info.title if info else path.stem.replace("_", " ")
        caption = info.caption if info else ""
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        out.append(f'<figure id="fig-{escape(path.stem)}"><img src="data:image/png;base64,'
                   f'{data}" alt="{escape(title)}"><figcaption><strong>Figure {i}. '
                   f"{escape(title)}.</strong> {escape(caption)}</figcaption></figure>")
    return "".join(out) or "<p>No figures.</p>"


def _glossary_table(cols: Sequence[Column]) -> str:
    rows = [[f"<code>{escape(c.name)}</code>", escape(c.unit), escape(c.esxtop or ""),
             escape(c.meaning)] for c in cols]
    return _table(["column", "unit", "esxtop", "meaning"], rows, [False] * 4)


def _glossary() -> str:
    return ("<p>Every column of <code>host.csv</code> and <code>vms.csv</code>, with the esxtop "
            "name where esxtop has one. MB means MiB; pages are 4 KiB.</p>"
            "<h3>Host (one row per simulated second)</h3>" + _glossary_table(HOST_COLUMNS) +
            "<h3>Per VM (one row per VM per second)</h3>" + _glossary_table(VM_COLUMNS))


def render_report(result: Result, plots: Sequence[Path]) -> str:
    """The report page as a string."""
    s = result.summary
    name = escape(result.name)
    banner = ""
    if not s.get("complete", False):
        banner = ('<div class="banner incomplete">INCOMPLETE: this run stopped before the end of '
                  f"its scenario (after {_num(s.get('simulated_s'), ',.0f')} simulated seconds). "
                  "Every number below covers only the part that was simulated.</div>")
    sections = [
        ("What happened", _story(result)),
        ("Run", _facts(result)),
        ("Virtual machines", _vm_table(result) + _seeds_table(result)),
        ("Memory state over time", state_timeline_svg(result)),
        ("Figures", _figures(plots)),
        ("Events", _events(result)),
        ("State transitions", _transitions(result)),
        ("Glossary of counters", _glossary()),
    ]
    body = "".join(f'<section id="{escape(t.lower().replace(" ", "-"))}"><h2>{escape(t)}</h2>'
                   f"{html}</section>" for t, html in sections)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>vmemsim report: {name}</title><style>{CSS}</style></head><body>"
            f'<header><h1>{name}</h1><p class="desc">{escape(str(s.get("description", "")))}'
            f"</p></header>{banner}{body}"
            f"<footer>Written by vmemsim {escape(_version())}.</footer></body></html>\n")


def write_report(result: Result, out_dir: Path | str, plots: list[Path] | None = None) -> Path:
    """Write `out_dir/report.html`. With `plots=None` the figures are drawn first (into
    `out_dir`); pass the list `write_plots` returned to avoid drawing them twice."""
    out = Path(out_dir)
    if plots is None:
        plots = write_plots(result, out)
    path = out / "report.html"
    atomic_write_text(path, render_report(result, plots))
    return path
