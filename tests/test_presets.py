"""The workload library (workloads.presets): each preset builds, runs, and has its documented
shape; its fields can be overridden; docs/scenarios.md describes every one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import small
from vmemsim.config.loader import ScenarioError
from vmemsim.config.units import parse_size
from vmemsim.engine import Simulation
from vmemsim.kernels.layout import C_FILE_IN, C_FILE_OUT, C_GSWOUT
from vmemsim.workloads.presets import PRESETS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "scenarios.md"
MB = 1 << 20


def _vm(workload: str, memory: str = "64MiB", **proc: Any) -> dict[str, Any]:
    return {"name": "x", "memory": memory, "overhead": "1MiB",
            "guest": {"kernel": "4MiB", "swap": "1GiB",
                      "swap_device": {"latency": "100us", "iops": "50k/s"}},
            "process": [{"name": "p", "workload": workload, **proc}]}


def _run(workload: str, memory: str = "64MiB", **proc: Any) -> Simulation:
    sc = small(duration="12s", host={"memory": "512MiB"}, hypervisor={"sample_period": "2s"},
               vm=[_vm(workload, memory, **proc)])
    sim = Simulation(sc, check=True)  # the invariants, every tick
    sim.run()
    return sim


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_builds_with_its_fields_and_runs(name: str) -> None:
    p = PRESETS[name]
    sc = small(vm=[_vm(name)])
    proc = sc.vm[0].process[0]
    assert proc.size == parse_size(p.size)
    for k, v in p.fields.items():
        assert getattr(proc, k) == v, k
    assert 0 < proc.wss <= proc.size
    sim = _run(name, size="32MiB", rate="100k/s")
    refs = sim.result().vms["refs"]
    assert refs.sum() > 0


def test_a_preset_field_set_in_the_scenario_wins_and_the_working_set_follows_the_size() -> None:
    proc = small(vm=[_vm("database", size="100MiB", rate="50k/s", alpha=1.2)]).vm[0].process[0]
    assert (proc.size, proc.rate, proc.alpha, proc.dist) == (100 * MB, 50e3, 1.2, "zipf")
    assert proc.wss == pytest.approx(0.8 * 100 * MB, abs=4096)  # the preset's share of it
    proc = small(vm=[_vm("database", size="100MiB", wss="10MiB")]).vm[0].process[0]
    assert proc.wss == 10 * MB
    with pytest.raises(ScenarioError, match="wss"):
        small(vm=[_vm("database", size="100MiB", wss="200MiB")])


def test_idle_touches_a_few_mb_whatever_its_size() -> None:
    """The issue's case: an idle service of 1 GiB showed an active estimate larger than the
    process. Through a run: the VM's sampled active memory is a few MB (its 4 MiB and the guest
    kernel's active frames), while a uniform trickle over the same size shows far more."""
    sim = _run("idle", memory="256MiB")  # the preset's size: 1 GiB of virtual memory
    assert sim.scenario.vm[0].process[0].size == 1 << 30
    late = sim.result().vms.tail(4)
    assert late["active_est_mb"].max() < 12.0
    assert late["active_true_mb"].max() < 8.0  # 4 MiB + 2 MiB of kernel in use, about
    trickle = _run("uniform", memory="256MiB", size="1GiB", cpu=0.02)
    assert trickle.result().vms.tail(4)["active_est_mb"].min() > 20.0  # in 2 s periods


def test_fileserver_is_page_cache_and_its_evictions_are_mostly_clean() -> None:
    """A file server under guest memory pressure drops clean file pages (read again later)
    far more often than it writes: writes on eviction well under the pages re-read, where a
    database of the same size writes every eviction to guest swap."""
    fs = _run("fileserver", size="96MiB", rate="200k/s")
    assert fs.scenario.vm[0].process[0].file_frac > 0
    vc = fs.vms[0].arrays.vc
    written = int(vc[C_FILE_OUT] + vc[C_GSWOUT])
    assert vc[C_FILE_IN] > 2 * 96 * 256 * 0.9  # read back after drops, not first touches only
    assert written < 0.4 * vc[C_FILE_IN]
    db = _run("database", size="96MiB", rate="200k/s").vms[0].arrays.vc
    assert db[C_FILE_IN] == 0 and db[C_GSWOUT] > 0


def test_the_shapes_of_the_others() -> None:
    """vdi keeps a third of a vCPU busy; batch scans all of its size; web and database skew
    their references (a Zipf working set is touched unevenly: fewer distinct pages than a
    uniform one of the same size in the same references)."""
    vdi = _run("vdi", size="32MiB", rate="100k/s").result().vms
    assert vdi["run_s"].tail(4).mean() == pytest.approx(0.3, abs=0.03)
    batch = _run("batch", memory="128MiB", size="32MiB", rate="100k/s").result().vms
    assert batch["active_true_mb"].iloc[-1] > 30.0  # the whole 32 MiB, and some kernel
    for name in ("web", "database"):
        skewed = _run(name, memory="128MiB", size="64MiB", wss="64MiB",
                      rate="20k/s").result().vms
        flat = _run("uniform", memory="128MiB", size="64MiB", rate="20k/s",
                    cpu=PRESETS[name].fields["cpu"]).result().vms
        assert skewed["active_true_mb"].iloc[-1] < 0.8 * flat["active_true_mb"].iloc[-1]


def test_every_preset_is_documented_with_its_source() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in PRESETS:
        assert f"`{name}`" in text, name
    assert "assumed" in text


def test_vmemsim_scenarios_lists_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    from vmemsim.cli import main

    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    listed = {line.split()[0] for line in out.split("Workload presets", 1)[1].splitlines()[1:]
              if line.strip()}
    assert listed == set(PRESETS)
