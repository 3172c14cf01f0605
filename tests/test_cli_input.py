"""Bad input that used to get through: every scenario problem listed, a VM larger than the
host noted, --out never mixing two runs' files, and bytes that are not a trace refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from helpers import BASE, merge
from vmemsim.cli import main
from vmemsim.config.loader import ScenarioError, load_scenario, scenario_from_dict, scenario_notes


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def _write(path: Path, data: dict) -> Path:
    path.write_text(tomli_w.dumps(data))
    return path


def _errors(err: str) -> list[str]:
    """stderr's lines, each checked to be one `vmemsim: error: ` line; without the prefix."""
    lines = err.splitlines()
    assert lines and "Traceback" not in err
    assert all(ln.startswith("vmemsim: error: ") for ln in lines), err
    return [ln[len("vmemsim: error: "):] for ln in lines]


# --- 1. every validation problem, one line each, unknown keys first -----------------------


def _many_problems() -> dict:
    data = merge(BASE, {"host": {"memroy": "160MiB"}})
    del data["host"]["memory"]  # misspelt: unknown key 'memroy', and 'memory' missing
    data["vm"][0]["sahres"] = "high"
    data["vm"][1]["process"][0]["rate"] = "fast"
    data["vm"][2]["shares"] = "medium"
    data["frobnicate"] = 1
    return data


def test_every_problem_is_listed_unknown_keys_first() -> None:
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(_many_problems(), "s.toml")
    assert exc.value.problems == [
        "s.toml: host.memroy: unknown key 'memroy' (did you mean 'memory'?)",
        "s.toml: vm[0].sahres: unknown key 'sahres' (did you mean 'shares'?)",
        "s.toml: frobnicate: unknown key 'frobnicate' (check its spelling against "
        "docs/scenarios.md)",
        "s.toml: host.memory: required key is missing",
        "s.toml: vm[1].process[0].rate: expected a rate like '200k/s', got 'fast'",
        "s.toml: vm[2].shares: Input should be 'high', 'normal' or 'low', or a valid integer, "
        "unable to parse string as an integer (got 'medium')",
    ]
    # The first line alone is a whole message (API users often show only that).
    assert str(exc.value).splitlines()[0] == exc.value.problems[0]
    assert "more problem" not in str(exc.value)


def test_a_failed_list_item_is_not_also_reported_as_a_short_list() -> None:
    # pydantic drops the failing process, then finds vm[0].process (and vm) too short.
    data = merge(BASE, {})
    data["vm"] = [data["vm"][0]]
    data["vm"][0]["process"][0]["size"] = "lots"
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(data, "s.toml")
    assert exc.value.problems == [
        "s.toml: vm[0].process[0].size: expected a size like '512MiB', got 'lots'"]


def test_validate_prints_each_problem_as_its_own_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "bad.toml", _many_problems())
    rc, out, err = _cli(["validate", str(path)], capsys)
    assert rc == 2 and out == ""
    lines = _errors(err)
    assert len(lines) == 6
    # unknown keys first, in the file's order (TOML puts a table's plain keys before tables)
    assert [ln.split(": ")[1] for ln in lines[:3]] == ["frobnicate", "host.memroy",
                                                        "vm[0].sahres"]
    assert lines[1] == f"{path}: host.memroy: unknown key 'memroy' (did you mean 'memory'?)"
    assert all(ln.startswith(f"{path}: ") for ln in lines)
    # run refuses the same way, before anything is written
    rc, out, err = _cli(["run", str(path), "--out", str(tmp_path / "o"), "-q"], capsys)
    assert rc == 2 and len(_errors(err)) == 6
    assert not (tmp_path / "o").exists()


# --- 2. a VM larger than the host: allowed, and noted ---------------------------------------


def _big_vm() -> dict:
    data = merge(BASE, {"duration": "2s"})
    data["vm"][0]["memory"] = "320MiB"  # the host has 160 MiB
    return data


def test_a_vm_larger_than_the_host_validates_with_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "big.toml", _big_vm())
    rc, out, err = _cli(["validate", str(path)], capsys)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: ok: ")
    assert lines[1:] == [
        f"{path}: note: vm 'a' (320 MiB) is larger than the host's 160 MiB",
        f"{path}: note: 448 MiB configured in all on a host of 160 MiB: overcommit ratio 2.80",
    ]


def test_no_note_when_every_vm_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert scenario_notes(load_scenario("default")) == []  # overcommitted, but no VM too big
    rc, out, _ = _cli(["validate", "default"], capsys)
    assert rc == 0 and "note" not in out


def test_run_prints_the_note_on_stderr_before_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "big.toml", _big_vm())
    out = tmp_path / "out"
    rc, _, err = _cli(["run", str(path), "--out", str(out), "-q", "--no-report"], capsys)
    assert rc == 0
    assert err.splitlines()[:2] == [
        "vmemsim: note: vm 'a' (320 MiB) is larger than the host's 160 MiB",
        "vmemsim: note: 448 MiB configured in all on a host of 160 MiB: overcommit ratio 2.80",
    ]
    assert (out / "summary.json").exists()


# --- 3. --out: a folder with files is refused, or (--force) replaced whole ----------------


def _small(tmp_path: Path, **over: object) -> Path:
    return _write(tmp_path / "small.toml", merge(BASE, {"duration": "2s", **over}))


def _old_results(folder: Path) -> dict[str, tuple[bytes, int]]:
    """A folder of an earlier run's files; returns each file's content and mtime."""
    (folder / "figures").mkdir(parents=True)
    (folder / "summary.json").write_text('{"scenario": "old"}\n')
    (folder / "old-only.csv").write_text("a,b\n1,2\n")
    (folder / "figures" / "x.png").write_bytes(b"\x89PNG old")
    (folder / ".hidden").write_text("old\n")
    past = 1_000_000_000
    for p in folder.rglob("*"):
        os.utime(p, ns=(past * 10**9, past * 10**9))
    return _snapshot(folder)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"",
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_out_with_files_is_refused_without_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    before = _old_results(out)
    folder_mtime = out.stat().st_mtime_ns
    rc, stdout, err = _cli(["run", str(_small(tmp_path)), "--out", str(out), "-q"], capsys)
    assert rc == 2 and stdout == ""
    (line,) = _errors(err)
    assert str(out) in line and "--force" in line and "not empty" in line
    assert _snapshot(out) == before  # contents and mtimes
    assert out.stat().st_mtime_ns == folder_mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "small.toml"]


def test_out_that_is_empty_or_new_needs_no_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, tmp_path / "new" / "deeper"):
        rc, _, err = _cli(["run", str(_small(tmp_path)), "--out", str(out), "-q",
                           "--no-report"], capsys)
        assert rc == 0, err
        assert (out / "summary.json").exists()


def test_force_replaces_the_folder_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    old = _old_results(out)
    rc, _, err = _cli(["run", str(_small(tmp_path)), "--out", str(out), "-q", "--force"],
                      capsys)
    assert rc == 0, err
    new = _snapshot(out)
    assert not (set(old) - {"summary.json"}) & set(new)  # no old file survives
    assert new["summary.json"][0] != old["summary.json"][0]
    assert {"summary.json", "host.csv", "vms.csv", "esxtop.csv", "report.html",
            "scenario.json"} <= set(new)
    assert any(name.endswith(".png") for name in new)  # the figures' process wrote here too
    # nothing left beside it: no new or old folder from the swap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "small.toml"]


def test_force_through_a_link_replaces_the_folder_it_points_to(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "real"
    _old_results(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    rc, _, err = _cli(["run", str(_small(tmp_path)), "--out", str(link), "-q", "--force",
                       "--no-report"], capsys)
    assert rc == 0, err
    assert link.is_symlink() and (real / "summary.json").exists()
    assert not (real / "old-only.csv").exists()


def test_a_failed_force_run_leaves_the_old_folder_as_it_was(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Interrupted after it wrote some of its files: the old folder is untouched, and the
    new files are gone with the folder they were written to."""
    import vmemsim.metrics.esxtop as esxtop

    out = tmp_path / "res"
    before = _old_results(out)

    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(esxtop, "write_esxtop_csv", interrupted)  # after summary.json
    rc, _, err = _cli(["run", str(_small(tmp_path)), "--out", str(out), "-q", "--force",
                       "--no-report"], capsys)
    assert rc == 130 and "interrupted" in err
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res", "small.toml"]


def test_force_does_not_remove_the_scenario_or_the_current_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    scenario = _small(folder)
    before = _snapshot(folder)
    rc, _, err = _cli(["run", str(scenario), "--out", str(folder), "-q", "--force"], capsys)
    assert rc == 2 and f"--force would remove {scenario}" in _errors(err)[0]
    monkeypatch.chdir(folder / "..")
    rc, _, err = _cli(["run", str(scenario), "--out", ".", "-q", "--force"], capsys)
    assert rc == 2 and "--force would remove the current folder" in _errors(err)[0]
    assert _snapshot(folder) == before


def test_force_does_not_remove_a_file(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    out.write_text("not a folder\n")
    rc, _, err = _cli(["run", str(_small(tmp_path)), "--out", str(out), "-q", "--force"],
                      capsys)
    assert rc == 2 and "exists and is not a folder" in _errors(err)[0]
    assert out.read_text() == "not a folder\n"


# --- 4. a trace workload whose file is not a trace ----------------------------------------


@pytest.mark.parametrize("name", ["random.bin", "random", "random.oracleGeneral.bin"])
def test_a_scenario_with_random_bytes_as_a_trace_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    trace = tmp_path / name
    trace.write_bytes(np.random.default_rng(3).bytes(24_000))
    data = merge(BASE, {"duration": "2s"})
    data["vm"][0]["process"] = [{"workload": "trace", "trace": str(trace), "size": "16MiB"}]
    path = _write(tmp_path / "t.toml", data)
    for args in (["validate", str(path)],
                 ["run", str(path), "--out", str(tmp_path / "o"), "-q", "--no-report"]):
        rc, _, err = _cli(args, capsys)
        assert rc == 2
        (line,) = _errors(err)
        assert line.startswith(f"{trace}: ") and "not a plausible oracleGeneral trace" in line
