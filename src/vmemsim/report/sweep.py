"""A sweep's figures (one per metric against the first axis) and its page, sweep.html.

Lines are one per VM and combination of the other axes; with several seeds each point is the
mean over them and the band its 95% interval (Student's t). The page is self-contained like
report.html: inline CSS, PNGs as data URIs, every text from the sweep escaped.
"""

from __future__ import annotations

import base64
import math
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vmemsim.metrics.result import atomic_write, atomic_write_text
from vmemsim.metrics.stats import t95
from vmemsim.report.html import CSS
from vmemsim.report.plots import DPI, PNG_META

LABELS = {
    "throughput": "throughput (references/s)", "slowdown": "slowdown (x)",
    "max_balloon_mb": "max balloon (MB)", "max_swapped_mb": "max host-swapped (MB)",
    "max_compressed_mb": "max compressed (MB)", "min_free_mb": "min free memory (MB)",
}


def summarize(frame: pd.DataFrame, x: str, by: list[str], metric: str) -> pd.DataFrame:
    """Mean, 95% half-width and count of `metric` per (by..., x) over seeds."""
    g = frame.groupby([*by, x], sort=False, dropna=False)[metric]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["ci"] = [t95(int(n)) * s / math.sqrt(n) if n > 1 and pd.notna(s) else 0.0
                 for s, n in zip(out["std"], out["count"], strict=True)]
    return out


def _figure(frame: pd.DataFrame, axes: list[str], metric: str, per_vm: bool) -> Figure:
    fig = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = axes[0] if axes else "seed"
    xs = list(dict.fromkeys(frame[x]))  # the axis's own order
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in xs)
    by = ([*axes[1:], "vm"] if per_vm else axes[1:])
    data = frame if per_vm else frame.drop_duplicates("point")
    s = summarize(data, x, by, metric)
    groups = s.groupby(by, sort=False) if by else [((), s)]
    for key, grp in groups:
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{k}={v}" if k != "vm" else str(v)
                          for k, v in zip(by, key, strict=True)) or metric
        pos = grp[x].tolist() if numeric else [xs.index(v) for v in grp[x]]
        line = ax.plot(pos, grp["mean"], marker="o", label=label)[0]
        if (grp["count"] > 1).any():
            ax.fill_between(pos, grp["mean"] - grp["ci"], grp["mean"] + grp["ci"],
                            color=line.get_color(), alpha=0.2, linewidth=0)
    if not numeric:
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(LABELS.get(metric, metric.replace("_", " ")))
    seeds = frame["seed"].nunique()
    ax.set_title(f"{metric} against {x}" + (f" (mean and 95% interval over {seeds} seeds)"
                                            if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    if len(ax.lines) > 1:
        ax.legend(fontsize=8)
    return fig


def write_sweep_report(plan: Any, frame: pd.DataFrame, out: Path, metrics: list[str],  # noqa: ANN401
                       host_metrics: set[str]) -> list[Path]:
    """Figures sweep-<metric>.png for each of `metrics` (those in `host_metrics` have one
    value per point, the others one per VM) and sweep.html in `out`; the figures' paths."""

    axes = list(plan.axes)
    figures = []
    if len(frame):
        for metric in metrics:
            if frame[metric].isna().all():
                continue  # slowdown without a baseline
            fig = _figure(frame, axes, metric, metric not in host_metrics)
            path = out / f"sweep-{metric}.png"
            atomic_write(path, lambda p, f=fig: f.savefig(p, format="png", dpi=DPI,
                                                          metadata=PNG_META))
            figures.append(path)
    atomic_write_text(out / "sweep.html", render(plan, frame, figures))
    return figures


def render(plan: Any, frame: pd.DataFrame, figures: list[Path]) -> str:  # noqa: ANN401
    axes = ", ".join(f"<code>{escape(k)}</code> = {escape(str(v))}"
                     for k, v in plan.axes.items()) or "none"
    facts = [("Sweep", escape(plan.source)), ("Base scenario", escape(plan.name)),
             ("Mode", escape(plan.mode)), ("Axes", axes),
             ("Seeds", escape(", ".join(map(str, plan.seeds)))),
             ("Points", f"{frame['point'].nunique() if len(frame) else 0} of "
                        f"{len(plan.points)} run")]
    dl = '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    imgs = []
    for p in figures:
        data = base64.b64encode(p.read_bytes()).decode()
        imgs.append(f'<figure><img alt="{escape(p.stem)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{escape(p.stem)}</figcaption></figure>")
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>vmemsim sweep: {escape(plan.name)}</title><style>{CSS}</style></head>"
            f"<body><h1>Sweep of {escape(plan.name)}</h1>{dl}<h2>Figures</h2>{''.join(imgs)}"
            f"<h2>Every point and VM</h2>{table}"
            "<footer>vmemsim sweep: sweep.parquet holds this table; points/ each point's "
            "time series.</footer></body></html>\n")


def _cell(v: Any) -> str:  # noqa: ANN401
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:,.6g}"
    return str(v)
