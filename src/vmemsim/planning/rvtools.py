"""`vmemsim import rvtools`: an RVTools export (an .xlsx workbook, or a folder of its CSV
tabs) to a scenario: the host's memory, one VM per powered-on, non-template VM on the host
(or cluster) chosen, each with its configuration and a workload calibrated from what was
measured (planning.calibrate).

Tabs and columns read (the spellings of the RVTools versions we know: HEADERS):
    vInfo    VM, Powerstate, Template, CPUs, Memory, Host, Cluster, OS   (required)
    vMemory  VM, Size MiB, Consumed, Active, Ballooned, Swapped, Reservation, Limit,
             Shares, Level                                              (required)
    vHost    Host, Cluster, # Memory, Memory usage %                    (optional)
    vTools   VM, Tools                                                   (optional)
Sizes are MiB whatever the header says (RVTools' "MB" columns are MiB, as vSphere's are).

Every problem is an RVToolsError, one line naming the tab, row and column.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmemsim.planning.calibrate import DEFAULT_RATE, Measured, calibrate, process_table

REQUIRED_TABS = ("vInfo", "vMemory")
OPTIONAL_TABS = ("vHost", "vTools")

# Each field: the header spellings seen across RVTools versions, first the current one.
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "vInfo": {
        "vm": ("VM",),
        "power": ("Powerstate", "Power state"),
        "template": ("Template",),
        "cpus": ("CPUs", "Num CPU", "# CPU"),
        "memory": ("Memory", "Memory MiB", "Memory MB", "Memory (MB)"),
        "host": ("Host",),
        "cluster": ("Cluster",),
        "os": ("OS according to the configuration file", "OS",
               "OS according to the VMware Tools"),
    },
    "vMemory": {
        "vm": ("VM",),
        "size": ("Size MiB", "Size MB", "Size"),
        "consumed": ("Consumed", "Consumed MiB", "Consumed MB"),
        "active": ("Active", "Active MiB", "Active MB"),
        "ballooned": ("Ballooned", "Ballooned MiB", "Ballooned MB"),
        "swapped": ("Swapped", "Swapped MiB", "Swapped MB"),
        "reservation": ("Reservation", "Reservation MiB", "Reservation MB"),
        "limit": ("Limit", "Limit MiB", "Limit MB"),
        "shares": ("Shares",),
        "level": ("Level",),
    },
    "vHost": {
        "host": ("Host",),
        "cluster": ("Cluster",),
        "memory": ("# Memory", "Memory", "# Memory MiB", "Memory MiB", "Memory MB"),
        "usage": ("Memory usage %", "Memory Usage %"),
    },
    "vTools": {
        "vm": ("VM",),
        "tools": ("Tools", "Tools Status", "Tools status"),
    },
}
REQUIRED_COLUMNS = {
    "vInfo": ("vm", "power", "template", "cpus", "memory", "host"),
    "vMemory": ("vm", "consumed", "active"),
    "vHost": ("host", "memory"),
    "vTools": ("vm", "tools"),
}
# Memory columns RVTools writes that the scenario has no place for: named in the warning.
NOT_MODELLED = {
    "vInfo": ("Active Memory", "Consumed Memory"),  # vMemory's are used (same numbers)
    "vMemory": ("Shared", "Zero", "Private", "Overhead", "Consumed Overhead", "Max",
                "Entitlement", "DRS Entitlement", "Hot Add", "Memory Reservation Locked To Max",
                "Compressed"),
    "vHost": ("Memory usage %",),
}
TOOLS_RUNNING = {"toolsok", "toolsold", "toolssupportedold", "toolssupportednew", "ok",
                 "toolstoonew", "toolsblacklisted", "toolssupported", "guesttoolsrunning",
                 "guesttoolscurrent", "guesttoolsneedupgrade", "running"}
TOOLS_NONE = {"toolsnotinstalled", "toolsnotrunning", "notinstalled", "notrunning",
              "guesttoolsnotrunning", "guesttoolsnotinstalled", ""}
LEVELS = ("normal", "high", "low", "custom")
WINDOWS = re.compile(r"windows", re.I)
LINUX = re.compile(r"linux|red ?hat|rhel|centos|ubuntu|debian|suse|sles|photon|oracle|"
                   r"rocky|alma|fedora", re.I)


# A tab as read: headers, (row number, cells), whether its numbers use a decimal comma.
Raw = dict[str, tuple[list[str], list[tuple[int, list[Any]]], bool]]


class RVToolsError(ValueError):
    """An export that cannot be imported: one line, `file: tab, row N, column 'C': what`."""


@dataclass
class Tab:
    name: str
    headers: list[str]
    rows: list[tuple[int, list[Any]]]  # (row number as the user sees it, cells)
    decimal_comma: bool = False  # a CSV from a locale that writes 1.024,5 (';'-separated)
    cols: dict[str, int] = field(default_factory=dict)  # field -> index


def _read_xlsx(path: Path) -> Raw:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - a dependency
        raise RVToolsError("reading .xlsx needs openpyxl (pip install openpyxl)") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise RVToolsError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    out = {}
    try:
        for ws in wb.worksheets:
            it = ws.iter_rows(values_only=True)
            head = next(it, None)
            if head is None:
                out[ws.title] = ([], [], False)
                continue
            rows = [(i, list(r)) for i, r in enumerate(it, start=2)
                    if any(c is not None and str(c).strip() != "" for c in r)]
            out[ws.title] = ([("" if h is None else str(h)).strip() for h in head], rows, False)
    finally:
        wb.close()
    return out


def _read_csv_folder(path: Path) -> Raw:
    """RVTools' CSV export: one file per tab, named RVTools_tabvInfo.csv (or vInfo.csv)."""
    out = {}
    for f in sorted(path.glob("*.csv")):
        stem = f.stem
        tab = next((t for t in (*REQUIRED_TABS, *OPTIONAL_TABS) if stem.lower().endswith(
            t.lower())), None)
        if tab is None:
            continue
        try:
            text = f.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            text = f.read_text(encoding="latin-1")
        except OSError as exc:
            raise RVToolsError(f"{f}: cannot read: {exc.strerror}") from None
        dialect = csv.excel
        with contextlib.suppress(csv.Error):
            dialect = csv.Sniffer().sniff(text.splitlines()[0] if text else ",", ",;\t")
        reader = list(csv.reader(text.splitlines(), dialect))
        if not reader:
            out[tab] = ([], [], False)
            continue
        rows = [(i, list(r)) for i, r in enumerate(reader[1:], start=2)
                if any(c.strip() for c in r)]
        # Excel writes ';'-separated CSV where the comma is the decimal mark: such a file's
        # numbers are read that way.
        comma = getattr(dialect, "delimiter", ",") == ";"
        out[tab] = ([h.strip() for h in reader[0]], rows, comma)
    return out


def read_tabs(path: str | Path) -> dict[str, Tab]:
    """The tabs this import reads, their columns found (required ones checked)."""
    p = Path(path)
    if not p.exists():
        raise RVToolsError(f"{p}: no such file or folder")
    raw = _read_csv_folder(p) if p.is_dir() else _read_xlsx(p)
    tabs: dict[str, Tab] = {}
    by_lower = {k.lower(): k for k in raw}
    for name in (*REQUIRED_TABS, *OPTIONAL_TABS):
        key = by_lower.get(name.lower())
        if key is None:
            if name in REQUIRED_TABS:
                have = ", ".join(raw) or "none"
                raise RVToolsError(f"{p}: no tab '{name}' (the export's tabs: {have})")
            continue
        headers, rows, comma = raw[key]
        tab = Tab(name, headers, rows, decimal_comma=comma)
        lower = {h.lower(): i for i, h in enumerate(headers) if h}
        for fld, spellings in HEADERS[name].items():
            idx = next((lower[s.lower()] for s in spellings if s.lower() in lower), None)
            if idx is not None:
                tab.cols[fld] = idx
        for fld in REQUIRED_COLUMNS[name]:
            if fld not in tab.cols:
                spell = " or ".join(f"'{s}'" for s in HEADERS[name][fld])
                raise RVToolsError(f"{p}: tab '{name}', row 1: no column {spell}")
        tabs[name] = tab
    return tabs


class _Cells:
    """Typed access to one row's cells, every error naming file, tab, row and column."""

    def __init__(self, source: str, tab: Tab, row: int, cells: list[Any]) -> None:
        self.source, self.tab, self.row, self.cells = source, tab, row, cells

    def where(self, fld: str) -> str:
        col = self.tab.headers[self.tab.cols[fld]]
        return f"{self.source}: tab '{self.tab.name}', row {self.row}, column '{col}'"

    def raw(self, fld: str) -> Any:  # noqa: ANN401
        idx = self.tab.cols.get(fld)
        if idx is None or idx >= len(self.cells):
            return None
        v = self.cells[idx]
        return v.strip() if isinstance(v, str) else v

    def text(self, fld: str, required: bool = True) -> str | None:
        v = self.raw(fld)
        if v is None or v == "":
            if required and fld in self.tab.cols:
                raise RVToolsError(f"{self.where(fld)}: empty")
            return None
        return str(v)

    def number(self, fld: str, default: float | None = None, *, minimum: float = 0.0,
               allow: tuple[float, ...] = ()) -> float:
        v = self.raw(fld)
        if v is None or v == "":
            if default is None:
                raise RVToolsError(f"{self.where(fld)}: empty, a number is needed")
            return default
        if isinstance(v, bool):
            raise RVToolsError(f"{self.where(fld)}: expected a number, got {v!r}")
        if isinstance(v, int | float):
            x = float(v)
        else:
            s = str(v).replace("\u00a0", "").replace(" ", "").removesuffix("%")
            if self.tab.decimal_comma:
                if re.fullmatch(r"-?\d{1,3}(\.\d{3})+(,\d+)?", s):
                    s = s.replace(".", "")  # thousands separators
                s = s.replace(",", ".")
            elif re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
                s = s.replace(",", "")  # thousands separators
            try:
                x = float(s)
            except ValueError:
                raise RVToolsError(f"{self.where(fld)}: expected a number, got {v!r}") from None
        if not math.isfinite(x) or (x < minimum and x not in allow):
            raise RVToolsError(f"{self.where(fld)}: expected a number >= {minimum:g}, got {v!r}")
        return x

    def flag(self, fld: str) -> bool:
        v = self.raw(fld)
        if isinstance(v, bool):
            return v
        s = "" if v is None else str(v).strip().lower()
        if s in ("true", "yes", "1"):
            return True
        if s in ("false", "no", "0", ""):
            return False
        raise RVToolsError(f"{self.where(fld)}: expected True or False, got {v!r}")


def _rows(source: str, tab: Tab) -> list[_Cells]:
    return [_Cells(source, tab, n, cells) for n, cells in tab.rows]


@dataclass
class VMRecord:
    name: str
    row: int
    memory_mb: float
    vcpus: int
    host: str
    cluster: str | None
    os: str
    os_text: str | None
    powered_on: bool
    template: bool
    measured: Measured | None = None
    reservation_mb: float = 0.0
    limit_mb: float | None = None
    shares: str | int = "normal"
    tools: bool | None = None


@dataclass
class Imported:
    """What `import_rvtools` made: the scenario's TOML text and the notes for the user."""

    toml: str
    scenario: Any  # the validated config.schema.Scenario
    vms: list[VMRecord]
    skipped: dict[str, int]  # powered off / suspended, templates, other hosts
    warnings: list[str]
    host_usage_pct: float | None


def _guest_os(text: str | None) -> tuple[str, bool]:
    """The OS preset for RVTools' OS text, and whether one matched (else linux's)."""
    if text and WINDOWS.search(text):
        return "windows", True
    if text and LINUX.search(text):
        return "linux", True
    return "linux", False


def _vinfo(source: str, tab: Tab) -> list[VMRecord]:
    out = []
    for c in _rows(source, tab):
        name = c.text("vm")
        assert name is not None
        power = (c.text("power") or "").strip()
        if power.lower() not in ("poweredon", "poweredoff", "suspended"):
            raise RVToolsError(f"{c.where('power')}: expected poweredOn, poweredOff or "
                               f"suspended, got {power!r}")
        template = c.flag("template")
        on = power.lower() == "poweredon"
        memory = c.number("memory", minimum=1.0) if on and not template else \
            c.number("memory", 0.0)
        cpus = c.number("cpus", 1.0, minimum=1.0)
        if cpus != int(cpus):
            raise RVToolsError(f"{c.where('cpus')}: expected a whole number, got {cpus:g}")
        os_text = c.text("os", required=False)
        os, _ = _guest_os(os_text)
        out.append(VMRecord(name=name, row=c.row, memory_mb=memory, vcpus=int(cpus),
                            host=c.text("host") or "", cluster=c.text("cluster", False),
                            os=os, os_text=os_text, powered_on=on, template=template))
    return out


def _vmemory(source: str, tab: Tab, wanted: dict[str, VMRecord]) -> None:
    seen: dict[str, int] = {}
    for c in _rows(source, tab):
        name = c.text("vm")
        assert name is not None
        vm = wanted.get(name)
        if vm is None:
            continue  # powered off, a template, another host: not read
        if name in seen:
            raise RVToolsError(f"{c.where('vm')}: VM {name!r} again (also row {seen[name]})")
        seen[name] = c.row
        size = c.number("size", vm.memory_mb, minimum=1.0)
        if "size" in tab.cols and abs(size - vm.memory_mb) > 1:
            raise RVToolsError(f"{c.where('size')}: {size:g} MiB, but vInfo row {vm.row} "
                               f"says {vm.memory_mb:g} MiB")
        consumed = c.number("consumed")
        active = c.number("active")
        vm.measured = Measured(memory_mb=vm.memory_mb, consumed_mb=consumed, active_mb=active,
                               ballooned_mb=c.number("ballooned", 0.0),
                               swapped_mb=c.number("swapped", 0.0))
        vm.reservation_mb = c.number("reservation", 0.0)
        if vm.reservation_mb > vm.memory_mb:
            raise RVToolsError(f"{c.where('reservation')}: {vm.reservation_mb:g} MiB is more "
                               f"than the VM's {vm.memory_mb:g} MiB")
        limit = c.number("limit", -1.0, allow=(-1.0,))
        # -1: unlimited; a limit at or above the VM's memory binds nothing either.
        vm.limit_mb = None if limit < 0 or limit >= vm.memory_mb else limit
        if vm.limit_mb is not None and vm.limit_mb < vm.reservation_mb:
            raise RVToolsError(f"{c.where('limit')}: {limit:g} MiB is below the reservation "
                               f"({vm.reservation_mb:g} MiB)")
        level = (c.text("level", required=False) or "normal").lower()
        if level not in LEVELS:
            raise RVToolsError(f"{c.where('level')}: expected normal, high, low or custom, "
                               f"got {c.raw('level')!r}")
        if level == "custom":
            if "shares" not in tab.cols:
                raise RVToolsError(f"{c.where('level')}: custom shares, but no 'Shares' column")
            n = c.number("shares", minimum=1.0)
            vm.shares = int(n)
        else:
            vm.shares = level
    missing = [v for v in wanted.values() if v.measured is None]
    if missing:
        v = missing[0]
        raise RVToolsError(f"{source}: tab 'vMemory': no row for VM {v.name!r} (vInfo row "
                           f"{v.row})")


def _vtools(source: str, tab: Tab, wanted: dict[str, VMRecord]) -> None:
    for c in _rows(source, tab):
        name = c.text("vm")
        vm = wanted.get(name or "")
        if vm is None:
            continue
        s = (c.text("tools", required=False) or "").replace(" ", "").lower()
        if s in TOOLS_RUNNING:
            vm.tools = True
        elif s in TOOLS_NONE:
            vm.tools = False
        else:
            raise RVToolsError(f"{c.where('tools')}: unknown Tools status {c.raw('tools')!r} "
                               "(toolsOk, toolsOld, toolsNotRunning, toolsNotInstalled)")


def _hosts(source: str, tab: Tab) -> dict[str, tuple[float, str | None, float | None, int]]:
    """host -> (memory MiB, cluster, usage %, row)."""
    out = {}
    for c in _rows(source, tab):
        name = c.text("host")
        assert name is not None
        usage = c.number("usage", -1.0, allow=(-1.0,)) if "usage" in tab.cols else -1.0
        out[name] = (c.number("memory", minimum=1.0), c.text("cluster", False),
                     None if usage < 0 else usage, c.row)
    return out


def _unmapped(tabs: dict[str, Tab]) -> tuple[list[str], int]:
    """Memory columns present that the scenario has no place for, and how many other columns
    the tabs read have (not memory: names, networks, disks, ...)."""
    named, others = [], 0
    for name, tab in tabs.items():
        used = set(tab.cols.values())
        nm = {s.lower() for s in NOT_MODELLED.get(name, ())}
        for i, h in enumerate(tab.headers):
            if i in used or not h:
                continue
            if h.lower() in nm:
                named.append(f"{name}.{h}")
            else:
                others += 1
    return named, others


def _size(mb: float) -> str:
    return f"{int(round(mb))}MiB"


def _toml_value(v: Any) -> str:  # noqa: ANN401
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _table(lines: list[str], header: str, data: dict[str, Any], indent: str = "") -> None:
    lines.append(f"{indent}{header}")
    for k, v in data.items():
        lines.append(f"{indent}{k} = {_toml_value(v)}")


def import_rvtools(path: str | Path, *, host: str | None = None, cluster: str | None = None,
                   host_memory: int | None = None, rate: float = DEFAULT_RATE,
                   duration: str = "3min") -> Imported:
    """Read the export and build the scenario (validated); nothing is written here."""
    from vmemsim.config.loader import ScenarioError, scenario_from_dict

    source = str(path)
    if host is not None and cluster is not None:
        raise RVToolsError("--host and --cluster: give one")
    tabs = read_tabs(path)
    vms = _vinfo(source, tabs["vInfo"])
    hosts = _hosts(source, tabs["vHost"]) if "vHost" in tabs else {}
    all_hosts = sorted({v.host for v in vms} | set(hosts))
    if cluster is not None:
        members = sorted({v.host for v in vms if v.cluster == cluster}
                         | {h for h, (_, cl, _, _) in hosts.items() if cl == cluster})
        if not members:
            have = sorted({v.cluster for v in vms if v.cluster} |
                          {cl for (_, cl, _, _) in hosts.values() if cl})
            raise RVToolsError(f"{source}: no cluster {cluster!r} (the export's: "
                               f"{', '.join(have) or 'none'})")
        label = cluster
    else:
        if host is None:
            if len(all_hosts) != 1:
                raise RVToolsError(f"{source}: {len(all_hosts)} hosts ({', '.join(all_hosts)}): "
                                   "name one with --host, or a cluster with --cluster")
            host = all_hosts[0]
        if host not in all_hosts:
            raise RVToolsError(f"{source}: no host {host!r} (the export's: "
                               f"{', '.join(all_hosts) or 'none'})")
        members, label = [host], host
    chosen = [v for v in vms if v.host in members]
    skipped = {"powered off": sum(1 for v in chosen if not v.powered_on and not v.template),
               "templates": sum(1 for v in chosen if v.template),
               "on other hosts": len(vms) - len(chosen)}
    run = [v for v in chosen if v.powered_on and not v.template]
    if not run:
        raise RVToolsError(f"{source}: no powered-on VM on {label} (skipped "
                           f"{skipped['powered off']} powered off, {skipped['templates']} "
                           "templates)")
    wanted: dict[str, VMRecord] = {}
    for v in run:
        if v.name in wanted:
            raise RVToolsError(f"{source}: tab 'vInfo', row {v.row}, column 'VM': VM "
                               f"{v.name!r} again (also row {wanted[v.name].row})")
        wanted[v.name] = v
    _vmemory(source, tabs["vMemory"], wanted)
    if "vTools" in tabs:
        _vtools(source, tabs["vTools"], wanted)
    warnings: list[str] = []
    # The host's memory: given, else vHost's (a cluster: its hosts' sum, as one host).
    usage = None
    if host_memory is not None:
        memory_mb = host_memory / (1 << 20)
    else:
        if "vHost" not in tabs:
            raise RVToolsError(f"{source}: no tab 'vHost': give the host's memory with "
                               "--host-memory")
        missing = [h for h in members if h not in hosts]
        if missing:
            raise RVToolsError(f"{source}: tab 'vHost': no row for host {missing[0]!r}: give "
                               "the host's memory with --host-memory")
        memory_mb = sum(hosts[h][0] for h in members)
        used = [hosts[h][2] for h in members]
        if all(u is not None for u in used):
            usage = sum(u * hosts[h][0] for u, h in zip(used, members, strict=True)) \
                / memory_mb  # type: ignore[operator]
    named, others = _unmapped(tabs)
    no_os = sorted(v.name for v in run if v.os_text and not _guest_os(v.os_text)[1])
    no_tools = "vTools" not in tabs or any(v.tools is None for v in run)
    parts = []
    if named:
        parts.append(f"not modelled: {', '.join(named)}")
    if others:
        parts.append(f"{others} other columns ignored")
    if no_tools:
        parts.append("VMware Tools assumed running where vTools does not say")
    if no_os:
        parts.append(f"no OS preset for {', '.join(no_os)} (linux's used)")
    if parts:
        warnings.append("; ".join(parts))

    run.sort(key=lambda v: v.name)  # the file's order is the export's; results do not depend on it
    lines = [f"# Imported by `vmemsim import rvtools` from {Path(source).name}: "
             f"{'cluster' if cluster else 'host'} {label}.",
             "# Each VM's workload is calibrated from the export's consumed and active memory",
             "# (docs/planning.md): on an ample host it reproduces them.",
             f"name = {_toml_value('rvtools-' + re.sub(r'[^A-Za-z0-9_.-]+', '-', label))}",
             f"description = {_toml_value(_description(source, label, cluster, members, usage))}",
             "seed = 1", f"duration = {_toml_value(duration)}", ""]
    _table(lines, "[host]", {"memory": _size(memory_mb)})
    lines.append("")
    # An export comes from a vSphere host: its minFree-based thresholds (esx-model.md).
    _table(lines, "[hypervisor]", {"thresholds": "vsphere"})
    for v in run:
        m = v.measured
        assert m is not None
        cal = calibrate(m, v.os, rate)
        vm: dict[str, Any] = {"name": v.name, "memory": _size(v.memory_mb), "vcpus": v.vcpus}
        if v.reservation_mb:
            vm["reservation"] = _size(v.reservation_mb)
        if v.limit_mb is not None:
            vm["limit"] = _size(v.limit_mb)
        vm["shares"] = v.shares
        vm["tools"] = True if v.tools is None else v.tools
        lines.append("")
        lines.append(f"# {v.name}: consumed {m.consumed_mb:g} MiB, active {m.active_mb:g} MiB"
                     + (f", ballooned {m.ballooned_mb:g}" if m.ballooned_mb else "")
                     + (f", swapped {m.swapped_mb:g}" if m.swapped_mb else "")
                     + (f"; OS {v.os_text}" if v.os_text else ""))
        _table(lines, "[[vm]]", vm)
        _table(lines, "[vm.guest]", {"os": v.os, "boot_touch": cal.boot_touch}, "  ")
        _table(lines, "[[vm.process]]", process_table(cal, rate), "  ")
    text = "\n".join(lines) + "\n"
    import tomllib

    try:
        sc = scenario_from_dict(tomllib.loads(text), source)
    except ScenarioError as exc:  # a value the export allows and the scenario does not
        raise RVToolsError(exc.problems[0]) from None
    return Imported(text, sc, run, skipped, warnings, usage)


def _description(source: str, label: str, cluster: str | None, members: list[str],
                 usage: float | None) -> str:
    what = f"cluster {label} ({len(members)} hosts pooled as one)" if cluster else f"host {label}"
    text = f"RVTools export {Path(source).name}: {what}."
    if usage is not None:
        text += f" The export's host memory usage: {usage:.0f}%."
    return text
