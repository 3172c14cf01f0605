"""Bad input that used to get through: every scenario problem listed, a VM larger than the
host noted."""

from __future__ import annotations

from pathlib import Path

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
