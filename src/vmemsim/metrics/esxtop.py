"""esxtop batch-mode export: the Windows perfmon CSV (PDH-CSV 4.0) that `esxtop -b` writes.

Layout of `esxtop.csv`:
- header row: `"(PDH-CSV 4.0) (UTC)(0)"`, then one counter per column, named
  `\\\\HOST\\Memory\\Free MBytes` for host counters and
  `\\\\HOST\\Group Memory(ID:NAME)\\Memory Size MBytes` for per-VM counters. Counter names are
  the `perfmon` names of `metrics.columns`; IDs are 1, 2, ... in the order the VMs appear.
- one row per simulated second: a `"MM/DD/YYYY HH:MM:SS"` timestamp (start + time_s, UTC), then
  the values. Every cell is quoted, as esxtop does; a missing value is an empty cell.

Values are written in the column's unit, except that a per-second page count whose perfmon name
says MBytes (host `Swap MBytes Read/sec`) is converted to MB. `Kernel State` is esxtop's numeric
code: high 0, clear 1, soft 2, hard 3, low 4 (`STATE_CODES`).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vmemsim.config.units import MIB, PAGE_SIZE
from vmemsim.metrics.columns import HOST_COLUMNS, STATES, VM_COLUMNS, VM_NAMES, Column
from vmemsim.metrics.result import Result, atomic_write, atomic_write_text

PDH_HEADER = "(PDH-CSV 4.0) (UTC)(0)"
TIME_FORMAT = "%m/%d/%Y %H:%M:%S"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
STATE_CODES: dict[str, int] = {s: i for i, s in enumerate(STATES)}  # high 0 ... low 4
CODE_STATES: dict[int, str] = {i: s for s, i in STATE_CODES.items()}
HOST_OBJECT = "Memory"
VM_OBJECT = "Group Memory"

_PAGES_TO_MB = PAGE_SIZE / MIB
_COUNTER_RE = re.compile(r"^\\\\(?P<host>[^\\]+)\\(?P<object>.+)\\(?P<counter>[^\\]+)$")
_GROUP_RE = re.compile(rf"^{VM_OBJECT}\((?P<id>[^:]*):(?P<name>.*)\)$")


def _exported(columns: Iterable[Column]) -> list[Column]:
    return [c for c in columns if c.perfmon]


def _scale(col: Column) -> float:
    # perfmon names are the contract: a page count exported under an "MBytes" name is converted.
    return _PAGES_TO_MB if col.unit == "pages" and "MBytes" in (col.perfmon or "") else 1.0


def host_counter(host_name: str, col: Column) -> str:
    return f"\\\\{host_name}\\{HOST_OBJECT}\\{col.perfmon}"


def vm_counter(host_name: str, vm_id: int, vm_name: str, col: Column) -> str:
    return f"\\\\{host_name}\\{VM_OBJECT}({vm_id}:{vm_name})\\{col.perfmon}"


def vm_ids(result: Result) -> dict[str, int]:
    """Stable group IDs: 1, 2, ... in summary order, then any VM only the time series names."""
    names = [str(v["name"]) for v in result.summary.get("vms", [])]
    if "vm" in result.vms.columns:
        names += [str(n) for n in pd.unique(result.vms["vm"]) if str(n) not in names]
    return {n: i for i, n in enumerate(dict.fromkeys(names), start=1)}


def esxtop_frame(result: Result, host_name: str = "vmemsim") -> pd.DataFrame:
    """The esxtop counters as a wide DataFrame indexed by time_s, columns in file order."""
    return _counters(result, host_name)[0]


def _counters(result: Result, host_name: str) -> tuple[pd.DataFrame, list[Column]]:
    """esxtop_frame, and the vmemsim column behind each counter."""
    if "\\" in host_name or not host_name:
        raise ValueError(f"host name {host_name!r} must be non-empty and without backslashes")
    host = result.host.set_index("time_s")
    parts: dict[str, pd.Series] = {}
    sources: dict[str, Column] = {}
    for col in _exported(HOST_COLUMNS):
        if col.name not in host.columns:
            continue
        s = host[col.name]
        if col.name == "state":
            s = s.map(lambda v: STATE_CODES.get(str(v), np.nan)).astype(float)
        parts[host_counter(host_name, col)] = s.astype(float) * _scale(col)
        sources[host_counter(host_name, col)] = col
    vms = result.vms
    for name, vm_id in vm_ids(result).items():
        one = vms[vms["vm"].astype(str) == name].set_index("time_s")
        for col in _exported(VM_COLUMNS):
            if col.name in one.columns:
                key = vm_counter(host_name, vm_id, name, col)
                parts[key] = one[col.name].astype(float) * _scale(col)
                sources[key] = col
    frame = pd.DataFrame(parts).sort_index()  # outer join: a VM absent at a second -> blank
    frame.index.name = "time_s"
    return frame, [sources[name] for name in frame.columns]


def write_esxtop_csv(result: Result, path: Path | str, host_name: str = "vmemsim", *,
                     start: datetime = DEFAULT_START) -> Path:
    """Write `result` as esxtop batch output (perfmon CSV) to `path`; returns the path."""
    path = Path(path)
    frame, sources = _counters(result, host_name)
    if start.tzinfo is not None:  # timestamps are UTC, printed without a zone as esxtop does
        start = start.astimezone(UTC).replace(tzinfo=None)
    stamps = pd.Timestamp(start) + pd.to_timedelta(frame.index.to_numpy(float), unit="s")
    cols: dict[str, Any] = {PDH_HEADER: stamps.strftime(TIME_FORMAT)}
    for name, col in zip(frame.columns, sources, strict=True):
        values = frame[name].to_numpy(float)
        if col.name == "state":
            cols[name] = pd.array(np.round(values), dtype="Int64")  # the code, as an integer
        else:
            # MB to the KB; page counts shown in MB keep page precision
            cols[name] = np.round(values, 6 if _scale(col) != 1.0 else 3)
    # one frame from all columns at once (inserted one by one, pandas warns past ~100)
    out = pd.DataFrame(cols, index=range(len(frame)))

    # pandas' C writer: a day of seconds for dozens of VMs is millions of cells
    atomic_write(path, lambda p: out.to_csv(p, index=False, quoting=csv.QUOTE_ALL,
                                            lineterminator="\r\n", na_rep="",
                                            encoding="utf-8"))
    return path


def read_esxtop_csv(path: Path | str) -> pd.DataFrame:
    """Parse an esxtop batch CSV: a `timestamp` column (UTC datetimes), then one float column per
    counter, named exactly as in the file. Works on real `esxtop -b` captures too (non-numeric
    cells become NaN)."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = next(csv.reader([fh.readline()]), [])
    if not first or not first[0].startswith("(PDH-CSV"):
        raise ValueError(f"{path}: not an esxtop/perfmon CSV (first cell should be "
                         f'"{PDH_HEADER}")')
    raw = pd.read_csv(path, encoding="utf-8-sig", dtype={first[0]: str},
                      skip_blank_lines=True, low_memory=False)
    frame = raw.drop(columns=[first[0]])
    for name in frame.columns:
        if not pd.api.types.is_float_dtype(frame[name]):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame.insert(0, "timestamp", pd.to_datetime(raw[first[0]].str.strip(), format=TIME_FORMAT,
                                                utc=True))
    return frame


def parse_counter(name: str) -> tuple[str, str, str | None, str | None, str] | None:
    """Split `\\\\host\\Object(instance)\\Counter` into (host, object, id, instance, counter)."""
    m = _COUNTER_RE.match(name)
    if not m:
        return None
    obj = m.group("object")
    g = _GROUP_RE.match(obj)
    if g:
        return m.group("host"), VM_OBJECT, g.group("id"), g.group("name"), m.group("counter")
    return m.group("host"), obj, None, None, m.group("counter")


def esxtop_frames(frame: pd.DataFrame, *, start: datetime | None = DEFAULT_START,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn `read_esxtop_csv` output back into vmemsim's host and VM tables (column names of
    `metrics.columns`, vmemsim units, `state` as a name). `start=None` counts time from the
    first sample (for real captures, whose start is unknown)."""
    stamps = frame["timestamp"]
    origin = pd.Timestamp(start) if start is not None else stamps.iloc[0] - pd.Timedelta(1, "s")
    time_s = (stamps - origin).dt.total_seconds().to_numpy()
    by_host = {c.perfmon: c for c in _exported(HOST_COLUMNS)}
    by_vm = {c.perfmon: c for c in _exported(VM_COLUMNS)}
    host: dict[str, np.ndarray] = {"time_s": time_s}
    vms: dict[str, dict[str, np.ndarray]] = {}
    for name in frame.columns[1:]:
        parsed = parse_counter(name)
        if parsed is None:
            continue
        _, obj, _, instance, counter = parsed
        values = frame[name].to_numpy(dtype=float)
        if obj == HOST_OBJECT and counter in by_host:
            col = by_host[counter]
            host[col.name] = values / _scale(col)
        elif obj == VM_OBJECT and instance is not None and counter in by_vm:
            col = by_vm[counter]
            vms.setdefault(instance, {})[col.name] = values / _scale(col)
    host_df = pd.DataFrame(host)
    if "state" in host_df:
        host_df["state"] = [CODE_STATES.get(int(v)) if not math.isnan(v) else None
                            for v in host_df["state"]]
    parts = []
    for instance, cols in vms.items():
        part = pd.DataFrame({"time_s": time_s, "vm": instance, **cols})
        parts.append(part.dropna(how="all", subset=list(cols)))
    vm_df = (pd.concat(parts, ignore_index=True) if parts
             else pd.DataFrame(columns=["time_s", "vm"]))
    # file order (group ID order) within each second, as vmemsim writes vms.csv
    return host_df, vm_df.sort_values("time_s", kind="stable", ignore_index=True)


def result_from_esxtop(path: Path | str, *, start: datetime | None = DEFAULT_START,
                       name: str | None = None) -> Result:
    """A `Result` from an esxtop batch CSV, for comparing a real capture with a simulated run.
    Columns esxtop does not record (ground truth, throughput, faults) are NaN."""
    host, vms = esxtop_frames(read_esxtop_csv(path), start=start)
    for col in VM_NAMES:
        if col not in vms.columns:
            vms[col] = np.nan
    for col in (c.name for c in HOST_COLUMNS):
        if col not in host.columns:
            host[col] = np.nan
    summary = {"scenario": name or Path(path).stem, "description": f"esxtop capture {path}",
               "complete": True, "simulated_s": float(host["time_s"].max()) if len(host) else 0.0,
               "vms": [{"name": n} for n in pd.unique(vms["vm"])]}
    return Result(host=host, vms=vms, summary=summary)


def counters_markdown() -> str:
    """The counter tables of docs/outputs.md, generated from `metrics.columns`."""
    lines: list[str] = []
    for title, cols, obj in (("Host (`host.csv`, one row per second)", HOST_COLUMNS,
                              "Memory"),
                             ("Per VM (`vms.csv`, one row per VM per second)", VM_COLUMNS,
                              "Group Memory(ID:NAME)")):
        lines += [f"#### {title}", "",
                  "| column | unit | esxtop | esxtop.csv counter | meaning |",
                  "|---|---|---|---|---|"]
        for c in cols:
            esx = c.esxtop or ""
            perf = f"`{obj}\\{c.perfmon}`" if c.perfmon else ""
            if c.perfmon and _scale(c) != 1.0:
                perf += " (MB/s)"
            if c.perfmon and c.name == "state":
                perf += " (" + ", ".join(f"{k} {v}" for k, v in STATE_CODES.items()) + ")"
            meaning = c.meaning.replace("|", "\\|")
            lines.append(f"| `{c.name}` | {c.unit} | {esx} | {perf} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def write_counters_doc(path: Path | str) -> Path:
    """Write the counter tables alone as a Markdown file (docs/outputs.md embeds the same)."""
    path = Path(path)
    atomic_write_text(path, counters_markdown())
    return path
