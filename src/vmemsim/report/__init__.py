"""Results people can read: terminal summary, figures, HTML report, live top, comparisons.

Everything here reads a `metrics.result.Result` (or the engine's per-second rows for `top`) and
takes column names and meanings from `metrics.columns`; nothing here changes a result.

`compare()` is not re-exported: the submodule of the same name would shadow it. Names are
imported lazily so that `vmemsim top` does not pay for importing matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "print_compare": "compare",
    "write_compare": "compare",
    "write_report": "html",
    "write_plots": "plots",
    "print_summary": "terminal",
    "render_top": "top",
    "run_top": "top",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vmemsim.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vmemsim.report.{_WHERE[name]}"), name)
