"""`vmemsim plan`'s outputs: plan.csv (one row per candidate and VM), plan.json (the
answers), plan-<question>.png (each VM's slowdown against host memory, the memory state the
host reached shaded behind), plan.html (all of it on one page), and the terminal's tables."""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from vmemsim.planning.plan import PlanResult, Search, _mem_text
from vmemsim.sweeps import STATES

TERMINAL_VMS = 6  # VM columns in the terminal's tables: the most slowed


def frame(res: PlanResult) -> Any:  # noqa: ANN401
    import pandas as pd

    rows = []
    for s in res.searches:
        for c in s.sorted():
            common = {"question": s.question, "x": c.x, "admitted": c.admitted,
                      "fits": c.fits(s.limit), "answer": c.x == s.answer,
                      "worst_state": c.worst_state,
                      **{f"time_{k}_s": c.time_in_state_s.get(k, 0.0) for k in STATES}}
            if not c.vms:
                rows.append({**common, "vm": "", "slowdown": math.nan, "slowdown_low": math.nan,
                             "slowdown_high": math.nan})
            for v in c.vms:
                rows.append({**common, "vm": v.name, "slowdown": v.slowdown,
                             "slowdown_low": v.low, "slowdown_high": v.high})
    return pd.DataFrame(rows)


def _xlabel(s: Search) -> str:
    return "copies added" if s.question == "copies" else "host memory (GiB)"


def _xs(s: Search, x: float) -> float:
    return x if s.question == "copies" else x / 1024


def figure(s: Search, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from vmemsim.report.plots import PNG_META, STATE_COLORS

    cands = [c for c in s.sorted() if c.admitted]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=100)
    xs = [_xs(s, c.x) for c in cands]
    # Shading: each candidate's span (halfway to its neighbours) in the colour of the lowest
    # state its runs reached.
    for i, c in enumerate(cands):
        left = xs[i] - (xs[i] - xs[i - 1]) / 2 if i else xs[i]
        right = xs[i] + (xs[i + 1] - xs[i]) / 2 if i + 1 < len(xs) else xs[i]
        if right == left:
            pad = 0.02 * (max(xs) - min(xs) or 1)
            left, right = left - pad, right + pad
        ax.axvspan(left, right, color=STATE_COLORS.get(c.worst_state, "#bdbdbd"), alpha=0.18,
                   lw=0)
    names = sorted({v.name for c in cands for v in c.vms})
    for name in names:
        pts = [(x, v) for x, c in zip(xs, cands, strict=True) for v in c.vms if v.name == name]
        px = [p[0] for p in pts]
        py = [p[1].slowdown for p in pts]
        err = [[max(0.0, p[1].slowdown - p[1].low) for p in pts],
               [max(0.0, p[1].high - p[1].slowdown) for p in pts]]
        ax.errorbar(px, py, yerr=err, marker="o", ms=4, capsize=3, lw=1.2, label=name)
    ax.axhline(s.limit, color="#b71c1c", ls="--", lw=1, label=f"limit {s.limit:g}x")
    if s.answer is not None:
        ax.axvline(_xs(s, s.answer), color="#212121", ls=":", lw=1.2, label="answer")
    finite = [v.high for c in cands for v in c.vms if math.isfinite(v.high)]
    top = max([s.limit * 1.3, *finite]) if finite else s.limit * 1.3
    ax.set_ylim(0.95, min(top * 1.05, max(3 * s.limit, 2.0)) if top > 3 * s.limit else
                top * 1.05)
    ax.set_xlabel(_xlabel(s))
    ax.set_ylabel("slowdown (x)")
    what = "copies" if s.question == "copies" else "host size"
    ax.set_title(f"{s.label}: slowdown per VM against {what}")
    seen = [st for st in STATES if any(c.worst_state == st for c in cands)]
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=STATE_COLORS[st], alpha=0.3, label=f"reached {st}") for st in seen]
    ax.legend(handles=handles, fontsize=8, loc="upper right", ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / f"plan-{s.question.replace('+', '-')}.png"
    fig.savefig(path, metadata=PNG_META)
    plt.close(fig)
    return path


def table_rows(s: Search, most: int | None = None) -> tuple[list[str], list[list[str]]]:
    """One row per candidate: its size, whether it fits, the state reached, each VM's
    slowdown (mean [upper end of the interval]); only the `most` most slowed VMs if given."""
    names = sorted({v.name for c in s.candidates for v in c.vms})
    if most is not None and len(names) > most:
        top = {n: max(v.high for c in s.candidates for v in c.vms if v.name == n)
               for n in names}
        names = sorted(sorted(names, key=lambda n: -top[n])[:most])
    head = ["copies" if s.question == "copies" else "host memory", "fits", "state", *names]
    rows = []
    for c in s.sorted():
        by = {v.name: v for v in c.vms}
        cells = [f"{c.x:g}" if s.question == "copies" else _mem_text(c.x),
                 ("yes" if c.fits(s.limit) else "no") + (" *" if c.x == s.answer else ""),
                 c.worst_state if c.admitted else "refused"]
        for n in names:
            v = by.get(n)
            if v is None:
                cells.append("")
            elif v.high == v.slowdown:
                cells.append(f"{v.slowdown:.2f}")
            else:
                cells.append(f"{v.slowdown:.2f} ({v.high:.2f})")
        rows.append(cells)
    return head, rows


def print_tables(res: PlanResult, console: Any) -> None:  # noqa: ANN401
    from rich.table import Table

    for s in res.searches:
        head, rows = table_rows(s, TERMINAL_VMS)
        shown = len(head) - 3
        more = len({v.name for c in s.candidates for v in c.vms}) - shown
        title = s.label + (f" (the {shown} most slowed VMs; plan.csv has all)" if more else "")
        t = Table(title=title, title_justify="left")
        for h in head:
            t.add_column(h, justify="left" if h in ("host memory", "state") else "right")
        for r in rows:
            t.add_row(*r)
        console.print(t)
    for text in res.sentences:
        console.print(text)


def write_outputs(res: PlanResult, out: Path) -> list[Path]:
    from vmemsim.metrics.result import atomic_write, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    f = frame(res)
    atomic_write(out / "plan.csv", lambda p: f.to_csv(p, index=False, float_format="%.6g"))
    doc = {"scenario": res.scenario.name, "limit": res.limit,
           "duration_s": res.scenario.duration,
           "answers": [{"question": s.question, "label": s.label, "answer": s.answer,
                        "monotonic": s.monotonic, "sentence": text}
                       for s, text in zip(res.searches, res.sentences, strict=True)]}
    atomic_write_text(out / "plan.json", json.dumps(doc, indent=1) + "\n")
    figs = [figure(s, out) for s in res.searches if s.candidates]
    atomic_write_text(out / "plan.html", html(res, figs))
    return [out / "plan.csv", out / "plan.json", *figs, out / "plan.html"]


def html(res: PlanResult, figs: list[Path]) -> str:
    from vmemsim.report.html import CSS

    parts = [f"<h1>Plan for {escape(res.scenario.name)}</h1>",
             "<ul>" + "".join(f"<li><strong>{escape(t)}</strong></li>"
                              for t in res.sentences) + "</ul>",
             f"<p>Limit: every VM's slowdown within {res.limit:g}x (the upper end of its 95% "
             f"interval over the seeds); {res.scenario.duration:g} simulated seconds per run. "
             "What the answer depends on: docs/planning.md.</p>"]
    for s, fig in zip([s for s in res.searches if s.candidates], figs, strict=True):
        data = base64.b64encode(fig.read_bytes()).decode()
        head, rows = table_rows(s)
        table = ("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
                 + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>"
                           for r in rows) + "</tbody></table>")
        parts.append(f"<h2>{escape(s.label)}</h2><figure><img alt=\"{escape(fig.stem)}\" "
                     f"src=\"data:image/png;base64,{data}\"></figure>{table}"
                     "<p>Each VM: mean slowdown (upper end of the 95% interval); * the answer.</p>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>vmemsim plan: {escape(res.scenario.name)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}<footer>vmemsim plan: plan.csv holds the tables; "
            "points/ each run.</footer></body></html>\n")
