"""vmemsim plan: the search finds a threshold known in advance, its candidates are monotonic,
N+1 and the most copies, the outputs, and bad options (one line, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmemsim.build import overhead_bytes
from vmemsim.cli import main
from vmemsim.config.loader import scenario_from_dict
from vmemsim.planning.plan import Candidate, Search, VMOutcome, _check_order, plan

MIB = 1 << 20


def one_vm(name: str = "one", vm: str = "a", size: int = 160) -> dict[str, Any]:
    """One VM without Tools touching `size` MiB uniformly: it is slowed as soon as the host
    leaves the high state, and not at all before. The threshold is where free memory, once
    the VM has touched everything, is the soft threshold (6% of the host): host = (vmkernel +
    overhead + guest kernel + size) / 0.94."""
    return {"name": name, "seed": 1, "duration": "20s",
            "host": {"memory": "512MiB", "vmkernel": "32MiB"},
            "vm": [{"name": vm, "memory": "256MiB", "tools": False,
                    "process": [{"workload": "uniform", "size": f"{size}MiB",
                                 "rate": "500k/s"}]}]}


def threshold_mb(data: dict[str, Any]) -> float:
    sc = scenario_from_dict(data)
    used = sc.host.vmkernel
    for v in sc.vm:
        kernel = 8 * MIB  # linux's smallest guest kernel (3% of 256 MiB is less)
        used += overhead_bytes(v) + kernel + v.process[0].size
    return used / MIB / (1 - 0.06)


def test_plan_finds_the_known_threshold(tmp_path: Path) -> None:
    data = one_vm()
    res = plan(scenario_from_dict(data), limit=1.1, seeds=1, duration=20.0, step_mb=8,
               out=tmp_path / "p")
    (s,) = res.searches
    t = threshold_mb(data)
    assert s.answer is not None and t - 1 <= s.answer <= t + 8 + 1, (s.answer, t)
    cands = s.sorted()
    assert any(not c.fits(1.1) and s.answer - 8 <= c.x < s.answer for c in cands)
    # Monotonic across the bisection: every fitting candidate above every failing one, and
    # the slowdown never rises with memory (one VM, one seed: no noise to hide behind).
    assert s.monotonic
    worst = [c.worst.slowdown for c in cands]
    assert worst == sorted(worst, reverse=True)
    assert worst[0] > 2 and worst[-1] == pytest.approx(1.0)
    assert "need a host of" in res.sentences[0]


def test_check_order_flags_a_non_monotonic_search() -> None:
    def cand(x: float, slow: float) -> Candidate:
        return Candidate(x, [VMOutcome("a", slow, slow, slow)], "high", {})

    s = Search("memory", "x", 1.1)
    s.candidates = [cand(100, 3.0), cand(200, 1.0), cand(300, 1.5), cand(400, 1.0)]
    _check_order(s)
    assert not s.monotonic and s.answer == 400  # not 200: a larger host failed
    s.candidates = [cand(100, 3.0), cand(200, 1.05), cand(300, 1.0)]
    _check_order(s)
    assert s.monotonic and s.answer == 200
    s.candidates = [cand(100, 3.0)]
    _check_order(s)
    assert s.answer is None


def test_upper_end_of_the_interval_decides() -> None:
    c = Candidate(1, [VMOutcome("a", 1.05, 0.95, 1.15)], "high", {})
    assert not c.fits(1.1) and c.fits(1.2)
    assert not Candidate(1, [], "low", {}, admitted=False).fits(10)


def test_add_and_fit(tmp_path: Path) -> None:
    """N+1: another host's VM added needs more memory; the most copies of a VM that fit."""
    base = one_vm(size=60)
    other = one_vm("two", "a", size=60)  # same VM name: renamed a@two
    res = plan(scenario_from_dict(base), limit=1.1, seeds=1, duration=20.0, step_mb=16,
               add=scenario_from_dict(other), fit="a", out=tmp_path / "p")
    alone, both, copies = res.searches
    assert both.question == "memory+add"
    assert {v.name for c in both.candidates for v in c.vms} == {"a", "a@two"}
    assert alone.answer is not None and both.answer is not None
    assert both.answer > alone.answer + 60  # a second VM's touched memory at least
    # The 512 MiB host holds a few copies of a ~100 MiB VM, not one more than the memory.
    assert copies.answer is not None and 1 <= copies.answer <= 4
    n = int(copies.answer)
    fits = {int(c.x): c.fits(1.1) for c in copies.candidates}
    assert fits[n] and not fits.get(n + 1, False)
    assert f"At most {n} more" in res.sentences[2]


def test_plan_cli_writes_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "one.toml"
    f.write_text('name = "one"\n[host]\nmemory = "512MiB"\nvmkernel = "32MiB"\n[[vm]]\n'
                 'name = "a"\nmemory = "256MiB"\ntools = false\n[[vm.process]]\n'
                 'workload = "uniform"\nsize = "160MiB"\nrate = "500k/s"\n')
    out = tmp_path / "p"
    args = ["plan", str(f), "--seeds", "1", "--duration", "20s", "--axis",
            "host.memory=200MiB,256MiB,300MiB", "--out", str(out), "-q"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "need a host of 256 MiB" in said
    for name in ("plan.csv", "plan.json", "plan.html", "plan-memory.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "plan.json").read_text())
    assert doc["answers"][0]["answer"] == 256
    html = (out / "plan.html").read_text()
    assert "data:image/png;base64," in html and "256 MiB" in html
    # Asked again: every point is read back, nothing runs.
    points = sorted(p.name for p in (out / "points").iterdir())
    assert main(args) == 0
    assert sorted(p.name for p in (out / "points").iterdir()) == points


@pytest.mark.parametrize(("extra", "say"), [
    (["--slowdown", "0.9"], "--slowdown"),
    (["--fit", "nope"], "--fit: no VM 'nope'"),
    (["--axis", "host.vmkernel=1GiB"], "--axis"),
    (["--axis", "host.memory=2GiB..1GiB"], "--axis"),
    (["--add", "missing.toml"], "missing.toml"),
])
def test_plan_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                          say: str) -> None:
    f = tmp_path / "one.toml"
    f.write_text('name = "one"\n[host]\nmemory = "512MiB"\nvmkernel = "32MiB"\n[[vm]]\n'
                 'name = "a"\nmemory = "256MiB"\n[[vm.process]]\nsize = "16MiB"\n')
    out = tmp_path / "p"
    assert main(["plan", str(f), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and say in err[0], err
    assert not out.exists()
