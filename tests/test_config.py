"""Scenario files: units, validation, and one clear line for every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import BASE, merge
from vmemsim.cli import main
from vmemsim.config.loader import ScenarioError, load_scenario, scenario_from_dict
from vmemsim.config.units import UnitError, parse_duration, parse_rate, parse_size


@pytest.mark.parametrize("text,expected", [
    ("16GiB", 16 << 30), ("512MiB", 512 << 20), ("512MB", 512 << 20), ("4KiB", 4096),
    ("1.5GiB", 3 << 29), (4096, 4096), ("0", 0), ("2TiB", 2 << 40),
])
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("200k/s", 200e3), ("1M/s", 1e6), ("1.5M/s", 1.5e6), ("50/s", 50.0), (5000, 5000.0),
])
def test_rates(text: object, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text,expected", [
    ("10min", 600.0), ("60s", 60.0), ("100ms", 0.1), ("1h", 3600.0), ("5us", 5e-6), (2, 2.0),
])
def test_durations(text: object, expected: float) -> None:
    assert parse_duration(text) == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["abc", "12 parsecs", "GiB", "", True, None, [1]])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(UnitError):
        parse_size(bad)


def test_default_scenario_loads_and_overcommits() -> None:
    sc = load_scenario(None)
    assert sc.name == "esx-case-study"
    assert sum(v.memory for v in sc.vm) > sc.host.memory - sc.host.vmkernel


@pytest.mark.parametrize("over,where,what", [
    ({"hostt": {}}, "hostt", "unknown key"),
    ({"vm": [{"name": "x", "memory": "-1GiB", "process": [{"size": "1MiB"}]}]},
     "vm[0].memory", "size"),
    ({"host": {"memory": "lots"}}, "host.memory", "expected a size"),
    ({"duration": "-5s"}, "duration", ""),
    ({"tick": "0.3s"}, "(top level)", "tick must divide one second"),
    ({"vm": [{"name": "x", "memory": "64MiB", "reservation": "128MiB",
              "process": [{"size": "1MiB"}]}]}, "vm[0]", "reservation is larger"),
    ({"vm": [{"name": "x", "memory": "64MiB", "process": [{"size": "8MiB", "wss": "9MiB"}]}]},
     "vm[0].process[0]", "wss"),
    ({"vm": [{"name": "x", "memory": "64MiB", "process": [{"size": "8MiB",
                                                            "workload": "toucher"}]}]},
     "vm[0].process[0]", "needs a schedule"),
    ({"vm": [{"name": "x", "memory": "64MiB", "guest": {"policy": "belady"},
              "process": [{"size": "8MiB"}]}]}, "vm[0].guest.policy", ""),
    ({"vm": [{"name": "x", "memory": "64MiB", "process": [{"size": "8MiB", "rate": "0/s"}]}]},
     "vm[0].process[0].rate", "greater than 0"),
    ({"hypervisor": {"idle_tax": 1.0}}, "hypervisor.idle_tax", "less than 1"),
    ({"vm": []}, "vm", ""),
])
def test_bad_values_name_the_key(over: dict, where: str, what: str) -> None:
    data = merge(BASE, over) if "vm" not in over or over["vm"] else {**BASE, **over}
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(data, "s.toml")
    msg = str(exc.value)
    assert msg.startswith(f"s.toml: {where}"), msg
    assert what in msg
    assert "\n" not in msg


def test_duplicate_vm_names() -> None:
    data = merge(BASE, {})
    data["vm"][1]["name"] = "a"
    with pytest.raises(ScenarioError, match="VM names must be unique: a"):
        scenario_from_dict(data)


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_malformed_toml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[host\nmemory = 1\n')
    rc, out, err = _run_cli(["validate", str(bad)], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and "invalid TOML" in err and str(bad) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (["validate", "/nonexistent/x.toml"], "no such file"),
    (["run", "default", "--duration", "ten"], "expected a duration"),
    (["run", "default", "--seed", "-3"], "seed must be"),
    (["run", "default", "--frobnicate"], "unrecognized arguments"),
    (["top", "default", "--speed", "fast-ish"], "speed must be"),
    (["run", "default", "--check-every", "0"], "a number of ticks >= 1"),
    (["run", "default", "--check-every", "often"], "a number of ticks, got 'often'"),
    (["compare", "/nonexistent-dir-xyz"], "no such file"),
])
def test_cli_bad_input(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run_cli(args, capsys)
    assert rc == 2
    assert needle in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_admission_control(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 144 MiB managed, minFree 9.6 MiB: two 64 MiB reservations fit, a third 16 MiB does not.
    data = merge(BASE, {})
    data["vm"][0]["reservation"] = "64MiB"
    data["vm"][1]["reservation"] = "64MiB"
    data["vm"][2]["reservation"] = "16MiB"
    path = tmp_path / "adm.toml"
    path.write_text(_to_toml(data))
    rc, out, err = _run_cli(["validate", str(path)], capsys)
    assert rc == 2
    assert "vm 'c' cannot power on" in err and "reservation" in err


def test_impossible_guest_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = merge(BASE, {})
    data["vm"][0]["guest"]["swap"] = "1MiB"
    data["vm"][0]["process"][0]["size"] = "120MiB"
    path = tmp_path / "oom.toml"
    path.write_text(_to_toml(data))
    rc, out, err = _run_cli(["validate", str(path)], capsys)
    assert rc == 2 and "would run out of memory" in err


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run_cli(["validate", "default"], capsys)
    assert rc == 0 and "ok" in out


def test_cli_error_via_subprocess(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nseed = "abc"\n[host]\nmemory = "1GiB"\n')
    p = subprocess.run([sys.executable, "-m", "vmemsim.cli", "validate", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.splitlines()  # two problems (seed, and no [[vm]]): one line each
    assert len(lines) == 2 and all(ln.startswith("vmemsim: error: ") for ln in lines)
    assert "seed" in lines[0] and "vm: required key is missing" in lines[1]
    assert "Traceback" not in p.stderr


def test_the_command_is_cli_entry_and_exits_with_mains_status() -> None:
    """`vmemsim` is cli.entry (main, then a quick exit): its status is main's. The module's
    `python -m vmemsim.cli` goes through entry too (test_cli_error_via_subprocess: status 2)."""
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="console_scripts", name="vmemsim")
    assert ep.value == "vmemsim.cli:entry"
    p = subprocess.run([sys.executable, "-m", "vmemsim.cli", "validate", "default"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "ok" in p.stdout


def _to_toml(data: dict) -> str:
    import tomli_w

    return tomli_w.dumps(data)


def test_cli_run_without_matplotlib_fails_before_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's modules are imported only after the run: a missing plotting library must
    still be found at the start, with one clear line, and nothing written."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    out = tmp_path / "out"
    rc, _, err = _run_cli(["run", "default", "--out", str(out), "--quiet"], capsys)
    assert rc == 2
    assert "needs matplotlib" in err and "--no-report" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
