"""The workload library: named presets of a process's fields (issue 21).

`workload = "database"` in a scenario's `[[vm.process]]` fills every field the scenario leaves
out from the preset below: size, working set (a share of the size, or a cap), rate, vCPUs,
distribution and skew, write and file-backed shares. Any of them may be set beside it and
wins. docs/scenarios.md gives each preset's shape and where it comes from; what no published
trace or measurement gives is marked *assumed* there and in the comments here.

This module imports nothing from the schema: config.schema calls `apply` before validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmemsim.config.units import PAGE_SIZE, parse_size


@dataclass(frozen=True)
class Preset:
    """A preset: the process fields it fills, and its working set."""

    summary: str
    size: str  # default process size
    wss_share: float = 1.0  # working set as a share of the size ...
    wss_cap: str | None = None  # ... at most this (idle: a few MB whatever the size)
    fields: dict[str, Any] = field(default_factory=dict)  # ProcessConfig fields


PRESETS: dict[str, Preset] = {
    # OLTP: a buffer pool in anonymous memory (O_DIRECT, no page cache), Zipf-skewed pages.
    # YCSB's default request skew is Zipf 0.99 [Cooper et al., SoCC 2010]; a buffer pool's
    # page-level skew is milder than its key-level skew, so 0.9 (assumed), as are the 80%
    # working set and the 30% writes.
    "database": Preset("OLTP database: Zipf 0.9 over 80% of its buffer pool, 30% writes",
                       "2GiB", wss_share=0.8,
                       fields={"dist": "zipf", "alpha": 0.9, "write_frac": 0.3,
                               "file_frac": 0.0, "cpu": 1.0}),
    # Web serving: document popularity is Zipf-like with alpha 0.64-0.83 in six proxy traces
    # [Breslau et al., INFOCOM 1999]: 0.75. Half of its pages are static files in the page
    # cache, 10% of references write (both assumed).
    "web": Preset("web server: Zipf 0.75 (Breslau 1999), half its pages cached files, 10% "
                  "writes", "1GiB", wss_share=0.6,
                  fields={"dist": "zipf", "alpha": 0.75, "write_frac": 0.1,
                          "file_frac": 0.5, "cpu": 1.0}),
    # File serving: nearly all memory is page cache; reads dominate writes about 2:1 in
    # bytes in the CIFS traces of Leung et al. (USENIX ATC 2008), and most files are touched
    # rarely [Roselli et al., USENIX ATC 2000]. Hot/cold 20/70 and 10% writes per reference
    # are assumed.
    "fileserver": Preset("file server: 90% page cache, hot/cold 20/70, 10% writes: "
                         "evictions mostly clean", "2GiB",
                         fields={"dist": "hotcold", "hot_frac": 0.2, "hot_prob": 0.7,
                                 "write_frac": 0.1, "file_frac": 0.9, "cpu": 0.5}),
    # A VDI desktop (office worker): bursty, a third of a vCPU, a hot set of applications over
    # a working set of 40% of its memory. All assumed (no public per-page traces); use it
    # with guest os = "windows" (zeroes its memory at boot).
    "vdi": Preset("VDI desktop: hot/cold 15/85 over 40% of its memory, a third of a vCPU",
                  "1536MiB", wss_share=0.4,
                  fields={"dist": "hotcold", "hot_frac": 0.15, "hot_prob": 0.85,
                          "write_frac": 0.3, "file_frac": 0.3, "cpu": 0.3}),
    # Idle: a service that wakes now and then. Waldspurger's idle memory tax (OSDI 2002)
    # exists because idle VMs touch little of what they hold; 4 MiB and 2% of a vCPU assumed.
    "idle": Preset("idle service: 2% of a vCPU over 4 MiB, mostly reads", "1GiB",
                   wss_cap="4MiB",
                   fields={"dist": "uniform", "write_frac": 0.05, "file_frac": 0.0,
                           "cpu": 0.02}),
    # Batch/ETL: sequential scans over all of its data, half writes (assumed): the access
    # pattern that defeats LRU and that the host's random swap victims handle better.
    "batch": Preset("batch job: sequential scan over its whole size, 50% writes", "2GiB",
                    fields={"dist": "scan", "write_frac": 0.5, "file_frac": 0.0,
                            "cpu": 1.0}),
}


def apply(data: dict[str, Any]) -> dict[str, Any]:
    """The preset's fields under the process table `data` (which wins): size, then the
    working set from the size actually used. Not a preset: `data` as it is."""
    p = PRESETS.get(data.get("workload"))  # type: ignore[arg-type]
    if p is None:
        return data
    out = {**p.fields, "size": p.size, **data}
    if "wss" not in data and out.get("schedule") is None:
        try:
            size = parse_size(out["size"])
        except (TypeError, ValueError):
            return out  # the schema reports the bad size
        wss = size * p.wss_share
        if p.wss_cap is not None:
            wss = min(wss, parse_size(p.wss_cap))
        out["wss"] = max(PAGE_SIZE, int(wss) // PAGE_SIZE * PAGE_SIZE)
    return out


def describe() -> list[tuple[str, str]]:
    """(name, one line) per preset, for `vmemsim scenarios` and the docs."""
    return [(name, p.summary) for name, p in PRESETS.items()]
