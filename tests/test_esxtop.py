"""esxtop batch (perfmon CSV) export: format details and a faithful round trip."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vmemsim.metrics.columns import HOST_COLUMNS, VM_COLUMNS
from vmemsim.metrics.esxtop import (
    PDH_HEADER,
    STATE_CODES,
    counters_markdown,
    esxtop_frames,
    parse_counter,
    read_esxtop_csv,
    result_from_esxtop,
    write_counters_doc,
    write_esxtop_csv,
)

try:
    from conftest_report import make_result
except ImportError:  # tests collected as a package
    from .conftest_report import make_result

DOCS = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"


@pytest.fixture(scope="module")
def result():
    return make_result(120)


@pytest.fixture(scope="module")
def written(result, tmp_path_factory) -> Path:
    return write_esxtop_csv(result, tmp_path_factory.mktemp("esx") / "esxtop.csv",
                            host_name="esx01")


def test_header_cells_and_quoting(written: Path, result) -> None:
    raw = written.read_text(encoding="utf-8")
    first_line = raw.splitlines()[0]
    assert first_line.startswith(f'"{PDH_HEADER}",')
    assert PDH_HEADER == "(PDH-CSV 4.0) (UTC)(0)"
    # every cell quoted, in the header and in the rows
    for line in raw.splitlines()[:3]:
        cells = next(csv.reader([line]))
        assert line == ",".join(f'"{c}"' for c in cells)
    header = next(csv.reader([first_line]))
    host_cols = [c for c in HOST_COLUMNS if c.perfmon]
    vm_cols = [c for c in VM_COLUMNS if c.perfmon]
    for col in host_cols:
        assert f"\\\\esx01\\Memory\\{col.perfmon}" in header
    for i, vm in enumerate(["db", "web", "idle"], start=1):
        for col in vm_cols:
            assert f"\\\\esx01\\Group Memory({i}:{vm})\\{col.perfmon}" in header
    assert len(header) == 1 + len(host_cols) + 3 * len(vm_cols)


def test_rows_and_timestamps(written: Path, result) -> None:
    with written.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 1 + len(result.host)
    assert rows[1][0] == "01/01/2026 00:00:01"  # default start + time_s 1
    assert rows[-1][0] == "01/01/2026 00:02:00"


def test_custom_start(result, tmp_path: Path) -> None:
    path = write_esxtop_csv(result, tmp_path / "e.csv",
                            start=datetime(2025, 12, 31, 23, 59, 30, tzinfo=UTC))
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][0] == "12/31/2025 23:59:31"
    assert rows[31][0] == "01/01/2026 00:00:01"


def test_round_trip_values(written: Path, result) -> None:
    frame = read_esxtop_csv(written)
    assert len(frame) == len(result.host)
    assert str(frame["timestamp"].dt.tz) == "UTC"
    state = frame["\\\\esx01\\Memory\\Kernel State"]
    assert list(state) == [STATE_CODES[s] for s in result.host["state"]]
    assert STATE_CODES == {"high": 0, "clear": 1, "soft": 2, "hard": 3, "low": 4}

    host, vms = esxtop_frames(frame)
    np.testing.assert_allclose(host["time_s"], result.host["time_s"])
    assert list(host["state"]) == list(result.host["state"])
    for col in HOST_COLUMNS:
        if col.perfmon and col.name != "state":
            # 3 decimals in MB; page rates converted to MB/s and back
            np.testing.assert_allclose(host[col.name], result.host[col.name], atol=2e-3,
                                       err_msg=col.name)
    want = result.vms.reset_index(drop=True)
    assert len(vms) == len(want)
    assert list(vms["vm"]) == list(want["vm"])
    for col in VM_COLUMNS:
        if col.perfmon:
            np.testing.assert_allclose(vms[col.name], want[col.name], atol=1e-3,
                                       err_msg=col.name)


def test_missing_vm_seconds_are_blank(result, tmp_path: Path) -> None:
    # a VM that is absent for some seconds leaves empty cells, read back as NaN and dropped
    vms = result.vms[~((result.vms["vm"] == "web") & (result.vms["time_s"] <= 10))]
    partial = type(result)(host=result.host, vms=vms, summary=result.summary)
    path = write_esxtop_csv(partial, tmp_path / "p.csv")
    frame = read_esxtop_csv(path)
    col = "\\\\vmemsim\\Group Memory(2:web)\\Memory Size MBytes"
    assert frame[col].isna().sum() == 10
    _, back = esxtop_frames(frame)
    assert (back["vm"] == "web").sum() == len(result.host) - 10


def test_awkward_vm_names(result, tmp_path: Path) -> None:
    vms = result.vms.replace({"vm": {"db": 'sql "prod", (1)', "web": "a\\b:c"}})
    summary = dict(result.summary, vms=[])
    odd = type(result)(host=result.host, vms=vms, summary=summary)
    path = write_esxtop_csv(odd, tmp_path / "odd.csv")
    _, back = esxtop_frames(read_esxtop_csv(path))
    assert set(back["vm"]) == {'sql "prod", (1)', "a\\b:c", "idle"}


def test_parse_counter() -> None:
    assert parse_counter("\\\\h\\Memory\\Free MBytes") == ("h", "Memory", None, None,
                                                          "Free MBytes")
    assert parse_counter("\\\\h\\Group Memory(7:vm (x))\\Touched MBytes") == (
        "h", "Group Memory", "7", "vm (x)", "Touched MBytes")
    assert parse_counter("not a counter") is None


def test_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="PDH-CSV"):
        read_esxtop_csv(bad)
    with pytest.raises(ValueError, match="host name"):
        write_esxtop_csv(make_result(5), tmp_path / "y.csv", host_name="a\\b")


def test_result_from_esxtop(written: Path, result) -> None:
    back = result_from_esxtop(written, name="capture")
    assert back.name == "capture"
    assert list(back.summary["vms"][i]["name"] for i in range(3)) == ["db", "web", "idle"]
    assert back.vms["throughput"].isna().all()
    assert back.host["free_mb"].iloc[0] == pytest.approx(result.host["free_mb"].iloc[0],
                                                         abs=1e-3)


def test_deterministic(result, tmp_path: Path) -> None:
    a = write_esxtop_csv(result, tmp_path / "a.csv").read_bytes()
    b = write_esxtop_csv(result, tmp_path / "b.csv").read_bytes()
    assert a == b


def test_counters_doc_lists_every_column(tmp_path: Path) -> None:
    text = counters_markdown()
    for col in (*HOST_COLUMNS, *VM_COLUMNS):
        assert f"`{col.name}`" in text
        if col.esxtop:
            assert col.esxtop in text
        if col.perfmon:
            assert col.perfmon in text
    assert write_counters_doc(tmp_path / "c.md").read_text(encoding="utf-8") == text


def test_outputs_doc_is_current() -> None:
    # docs/outputs.md embeds the generated tables; regenerate them when columns.py changes
    assert counters_markdown() in DOCS.read_text(encoding="utf-8"), (
        "docs/outputs.md is out of date: paste vmemsim.metrics.esxtop.counters_markdown() "
        "between the COUNTERS markers")


def test_frame_has_expected_shape(result) -> None:
    from vmemsim.metrics.esxtop import esxtop_frame

    frame = esxtop_frame(result)
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "time_s"
    assert frame.shape[0] == len(result.host)
