"""The worked examples in examples/: each validates, says what to look at, uses the workload
library, and runs (a few simulated seconds, invariants checked); the sweeps beside them
validate every point."""

from __future__ import annotations

from pathlib import Path

import pytest

import vmemsim
from vmemsim.engine import Simulation
from vmemsim.workloads.presets import PRESETS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WORKED = ["consolidation", "no_tools", "reservation", "overcommit"]


@pytest.mark.parametrize("name", WORKED)
def test_a_worked_example_validates_says_what_to_look_at_and_runs(name: str) -> None:
    path = EXAMPLES / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and "What to look at" in text
    sc = vmemsim.load_scenario(str(path))
    assert all(p.workload in PRESETS for vm in sc.vm for p in vm.process)
    sim = Simulation(sc.with_overrides(duration="2s", baseline=False), check=5)
    r = sim.run()
    assert r.summary["complete"] and r.summary["simulated_s"] == 2.0
    assert r.vms.groupby("vm")["refs"].sum().reindex([v.name for v in sc.vm]).notna().all()


def test_the_examples_show_what_they_say() -> None:
    by = {n: vmemsim.load_scenario(str(EXAMPLES / f"{n}.toml")) for n in WORKED}
    tools = {v.name: v.tools for v in by["no_tools"].vm}
    assert tools == {"web-tools": True, "web-notools": False, "batch": True}
    db = next(v for v in by["reservation"].vm if v.name == "db")
    assert db.reservation > 0
    oc = by["overcommit"]
    assert sum(v.memory for v in oc.vm) / oc.host.memory == pytest.approx(1.5)
    assert len({p.workload for v in by["consolidation"].vm for p in v.process}) >= 4


@pytest.mark.parametrize("name", ["reservation_sweep", "overcommit_sweep"])
def test_the_example_sweeps_validate_every_point(name: str) -> None:
    from vmemsim.sweeps import load_plan

    plan = load_plan(EXAMPLES / f"{name}.toml")  # every point validated and admitted
    assert len(plan.points) >= 2
