"""vmemsim import rvtools: workbooks built here with openpyxl (and a CSV folder), header
spellings of several RVTools versions, what is skipped, bad cells (one line, exit 2, nothing
written), and the calibration reproducing consumed and active memory on an ample host."""

from __future__ import annotations

import csv
import random
import tomllib
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from vmemsim.cli import main
from vmemsim.planning.calibrate import Measured, calibrate
from vmemsim.planning.rvtools import RVToolsError, import_rvtools

INFO = ["VM", "Powerstate", "Template", "CPUs", "Memory", "OS according to the configuration file",
        "Cluster", "Host", "Annotation"]
MEM = ["VM", "Size MiB", "Consumed", "Active", "Ballooned", "Swapped", "Shared", "Level",
       "Shares", "Reservation", "Limit"]
HOST = ["Host", "Cluster", "# Memory", "Memory usage %"]
TOOLS = ["VM", "Tools"]


def rows() -> dict[str, list[list[Any]]]:
    """A host h1 with three running VMs, one powered off, one template; a VM on h2."""
    return {
        "vInfo": [
            ["web", "poweredOn", False, 2, 64, "Ubuntu Linux (64-bit)", "c1", "h1", "x"],
            ["db", "poweredOn", False, 1, 96, "Microsoft Windows Server 2019", "c1", "h1", ""],
            ["old", "poweredOff", False, 1, 512, "Ubuntu Linux (64-bit)", "c1", "h1", ""],
            ["tmpl", "poweredOn", True,  # a template counts as one whatever its state
             1, 512, "Ubuntu Linux (64-bit)", "c1", "h1", ""],
            ["cache", "poweredOn", False, 1, 64, "FreeBSD 13", "c1", "h1", ""],
            ["other", "poweredOn", False, 1, 64, "Ubuntu Linux (64-bit)", "c1", "h2", ""],
        ],
        "vMemory": [
            ["web", 64, 48, 20, 0, 0, 4, "normal", 640, 0, -1],
            ["db", 96, 96, 40, 0, 0, 0, "high", 1920, 32, -1],
            ["old", 512, 0, 0, 0, 0, 0, "normal", 5120, 0, -1],
            ["tmpl", 512, 0, 0, 0, 0, 0, "normal", 5120, 0, -1],
            ["cache", 64, 30, 10, 4, 2, 0, "custom", 777, 0, 48],
            ["other", 64, 40, 10, 0, 0, 0, "normal", 640, 0, -1],
        ],
        "vHost": [["h1", "c1", 512, 40], ["h2", "c1", 256, 20]],
        "vTools": [["web", "toolsOk"], ["db", "toolsOld"], ["cache", "toolsNotInstalled"],
                   ["other", "toolsOk"]],
    }


def workbook(path: Path, data: dict[str, list[list[Any]]] | None = None,
             headers: dict[str, list[str]] | None = None) -> Path:
    data = rows() if data is None else data
    heads = {"vInfo": INFO, "vMemory": MEM, "vHost": HOST, "vTools": TOOLS, **(headers or {})}
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for tab, body in data.items():
        ws = wb.create_sheet(tab)
        ws.append(heads[tab])
        for r in body:
            ws.append(r)
    wb.save(path)
    return path


def vms(sc: Any) -> dict[str, Any]:  # noqa: ANN401
    return {v.name: v for v in sc.vm}


def test_import_takes_running_vms_of_the_host(tmp_path: Path) -> None:
    imp = import_rvtools(workbook(tmp_path / "rv.xlsx"), host="h1")
    by = vms(imp.scenario)
    assert sorted(by) == ["cache", "db", "web"]  # powered off, template, other host: skipped
    assert imp.skipped == {"powered off": 1, "templates": 1, "on other hosts": 1}
    assert imp.scenario.host.memory == 512 << 20
    assert by["web"].memory == 64 << 20 and by["web"].vcpus == 2
    assert by["web"].shares == "normal" and by["web"].limit is None and by["web"].tools
    assert by["db"].shares == "high" and by["db"].reservation == 32 << 20
    assert by["db"].guest.os == "windows" and by["web"].guest.os == "linux"
    assert by["cache"].shares == 777 and by["cache"].limit == 48 << 20
    assert not by["cache"].tools
    assert imp.scenario.hypervisor.thresholds == "vsphere"
    # One warning: what is not modelled, the other columns, the OS without a preset.
    (w,) = imp.warnings
    assert "vMemory.Shared" in w and "other columns ignored" in w and "cache" in w


def test_cluster_pools_its_hosts(tmp_path: Path) -> None:
    imp = import_rvtools(workbook(tmp_path / "rv.xlsx"), cluster="c1")
    assert sorted(vms(imp.scenario)) == ["cache", "db", "other", "web"]
    assert imp.scenario.host.memory == (512 + 256) << 20


def test_vm_order_does_not_matter(tmp_path: Path) -> None:
    data = rows()
    a = import_rvtools(workbook(tmp_path / "a.xlsx", data), host="h1").toml
    for tab in data.values():
        random.Random(1).shuffle(tab)
    b = import_rvtools(workbook(tmp_path / "b.xlsx", data), host="h1").toml
    assert a.replace("a.xlsx", "") == b.replace("b.xlsx", "")


@pytest.mark.parametrize("variant", [
    {"vMemory": [h.replace("Size MiB", "Size MB") for h in MEM]},  # RVTools before 4.x
    {"vInfo": [h.replace("OS according to the configuration file", "OS") for h in INFO]},
    {"vInfo": [h.replace("Powerstate", "Power state").replace("Memory", "Memory MB")
               for h in INFO]},
    {"vHost": ["Host", "Cluster", "Memory", "Memory usage %"]},
    {"vTools": ["VM", "Tools Status"]},
])
def test_header_spellings(tmp_path: Path, variant: dict[str, list[str]]) -> None:
    base = import_rvtools(workbook(tmp_path / "a.xlsx"), host="h1")
    other = import_rvtools(workbook(tmp_path / "b.xlsx", headers=variant), host="h1")
    assert other.scenario.vm == base.scenario.vm
    assert other.scenario.host == base.scenario.host


def test_csv_folder(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    heads = {"vInfo": INFO, "vMemory": MEM, "vHost": HOST, "vTools": TOOLS}
    for tab, body in rows().items():
        with open(folder / f"RVTools_tab{tab}.csv", "w", newline="", encoding="utf-8-sig") as f:
            w = csv.writer(f)
            w.writerow(heads[tab])
            w.writerows([["True" if c is True else "False" if c is False else c for c in r]
                         for r in body])
    a = import_rvtools(workbook(tmp_path / "a.xlsx"), host="h1")
    b = import_rvtools(folder, host="h1")
    assert a.scenario.vm == b.scenario.vm


def test_optional_tabs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = rows()
    del data["vHost"], data["vTools"]
    wb = workbook(tmp_path / "rv.xlsx", data)
    out = tmp_path / "s.toml"
    assert main(["import", "rvtools", str(wb), "--host", "h1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--host-memory" in err[0] and not out.exists()
    assert main(["import", "rvtools", str(wb), "--host", "h1", "--host-memory", "1GiB",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "Tools assumed running" in err
    sc = tomllib.loads(out.read_text())
    assert sc["host"]["memory"] == "1024MiB"
    assert all(v["tools"] for v in sc["vm"])  # vTools absent: assumed installed


def _set(data: dict[str, list[list[Any]]], tab: str, row: int, col: str, value: Any) -> None:  # noqa: ANN401
    heads = {"vInfo": INFO, "vMemory": MEM, "vHost": HOST, "vTools": TOOLS}[tab]
    data[tab][row][heads.index(col)] = value


@pytest.mark.parametrize(("tab", "row", "col", "value", "say"), [
    ("vMemory", 0, "Consumed", "lots", "tab 'vMemory', row 2, column 'Consumed'"),
    ("vMemory", 1, "Active", -5, "tab 'vMemory', row 3, column 'Active'"),
    ("vMemory", 0, "Level", "urgent", "tab 'vMemory', row 2, column 'Level'"),
    ("vMemory", 1, "Limit", 16, "tab 'vMemory', row 3, column 'Limit'"),  # below reservation
    ("vInfo", 1, "Powerstate", "on", "tab 'vInfo', row 3, column 'Powerstate'"),
    ("vInfo", 0, "CPUs", 1.5, "tab 'vInfo', row 2, column 'CPUs'"),
    ("vInfo", 0, "Template", "maybe", "tab 'vInfo', row 2, column 'Template'"),
    ("vInfo", 0, "Memory", None, "tab 'vInfo', row 2, column 'Memory'"),
    ("vTools", 0, "Tools", "sort of", "tab 'vTools', row 2, column 'Tools'"),
    ("vHost", 0, "# Memory", "big", "tab 'vHost', row 2, column '# Memory'"),
])
def test_malformed_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str], tab: str, row: int,
                        col: str, value: Any, say: str) -> None:  # noqa: ANN401
    data = rows()
    _set(data, tab, row, col, value)
    out = tmp_path / "s.toml"
    assert main(["import", "rvtools", str(workbook(tmp_path / "rv.xlsx", data)), "--host", "h1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and say in err[0], err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "rv.xlsx"]  # no temporary file left either


@pytest.mark.parametrize(("change", "say"), [
    (lambda d, h: d.pop("vMemory"), "no tab 'vMemory'"),
    (lambda d, h: h.update(vMemory=[c if c != "Active" else "Activity" for c in MEM]),
     "tab 'vMemory', row 1: no column 'Active'"),
    (lambda d, h: None, "2 hosts"),  # no --host with two hosts
])
def test_missing_tab_or_column(tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any,
                               say: str) -> None:  # noqa: ANN401
    data, heads = rows(), {}
    change(data, heads)
    out = tmp_path / "s.toml"
    wb = workbook(tmp_path / "rv.xlsx", data, heads)
    args = ["import", "rvtools", str(wb), "--out", str(out)]
    if say != "2 hosts":
        args += ["--host", "h1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and say in err[0], err
    assert not out.exists()


def test_not_a_workbook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "rv.xlsx"
    bad.write_text("hello")
    assert main(["import", "rvtools", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable .xlsx" in err[0]


def test_calibration_sizes() -> None:
    c = calibrate(Measured(memory_mb=1024, consumed_mb=600, active_mb=200))
    kernel = 1024 * 0.03  # linux: 3% of memory
    assert c.size_mb == round(600 - kernel) and c.wss_mb == round(200 - kernel / 2)
    assert not c.boot_touch and c.warm_s > 0
    # Ballooned and swapped memory was touched too; a full guest is zeroed at boot.
    assert calibrate(Measured(1024, 900, 100, ballooned_mb=124)).boot_touch
    assert calibrate(Measured(1024, 500, 100, swapped_mb=100)).touched_mb == 600


def test_ample_host_reproduces_consumed_and_active(tmp_path: Path) -> None:
    """The stated error (docs/planning.md): consumed within 2% and the true active memory
    within 5% of the export's, on an ample host after the warm phase."""
    import vmemsim

    data = rows()
    data["vMemory"][0][2:4] = [56, 16]  # web: consumed 56, active 16 of 64 MiB
    data["vMemory"][1][2:4] = [70, 30]  # db (windows): 70 of 96
    data["vMemory"][4][2:4] = [40, 30]  # cache: 30 consumed + 4 ballooned + 2 swapped
    imp = import_rvtools(workbook(tmp_path / "rv.xlsx", data), host="h1",
                         host_memory=2 << 30)  # ample: nothing is reclaimed
    data = imp.scenario.model_dump()
    # active_true is the last completed sampling period's: three periods in the minute.
    data["hypervisor"]["sample_period"] = 20.0
    sc = imp.scenario.model_validate(data).with_overrides(duration=60.0, baseline=False)
    r = vmemsim.simulate(sc, parallel=False, cache=False)
    last = r.vms[r.vms["time_s"] == r.vms["time_s"].max()].set_index("vm")
    want = {"web": (56, 16), "db": (70, 30), "cache": (46, 30)}
    for name, (consumed, active) in want.items():
        got_c, got_a = last.loc[name, "consumed_mb"], last.loc[name, "active_true_mb"]
        assert abs(got_c - consumed) <= 0.02 * consumed + 0.5, (name, got_c, consumed)
        assert abs(got_a - active) <= 0.05 * active + 0.5, (name, got_a, active)


def test_rvtools_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RVToolsError) as e:
        import_rvtools(tmp_path / "nope.xlsx")
    assert "\n" not in str(e.value)


def test_example_workbook(tmp_path: Path) -> None:
    """The committed example is what its script makes, and imports as the README says."""
    import importlib.util

    root = Path(__file__).resolve().parents[1] / "examples"
    spec = importlib.util.spec_from_file_location("make_rv", root / "make_rvtools_example.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.build(tmp_path / "fresh.xlsx")
    committed = import_rvtools(root / "rvtools_example.xlsx", host="esx01")
    fresh = import_rvtools(tmp_path / "fresh.xlsx", host="esx01")
    assert committed.scenario.vm == fresh.scenario.vm
    assert committed.scenario.host == fresh.scenario.host
    assert sorted(vms(committed.scenario)) == ["app01", "db01", "legacy01", "web01"]
    assert import_rvtools(root / "rvtools_example.xlsx", host="esx02").scenario.vm


def test_csv_with_decimal_commas(tmp_path: Path) -> None:
    """A ';'-separated CSV (a decimal-comma locale's) reads 1.536,5 as 1536.5."""
    folder = tmp_path / "export"
    folder.mkdir()
    heads = {"vInfo": INFO, "vMemory": MEM, "vHost": HOST, "vTools": TOOLS}
    data = rows()
    data["vHost"][0][2] = "1.536,0"
    data["vMemory"][0][2] = "47,6"  # web's consumed
    for tab, body in data.items():
        with open(folder / f"{tab}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=";")
            w.writerow(heads[tab])
            w.writerows(body)
    imp = import_rvtools(folder, host="h1")
    assert imp.scenario.host.memory == 1536 << 20
    assert "consumed 47.6 MiB" in imp.toml


def test_import_without_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vmemsim import rvtools FILE" in err[0]
