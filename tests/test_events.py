"""Events during a run (issue 22): a set changes what it names from its tick on, power-off frees
every page, migration in backs the whole memory at once, a no-op event changes nothing, the
baseline follows the events of its VMs, and bad events are refused before anything runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import vmemsim
from vmemsim.baseline import baseline_scenario, cacheable, untouched
from vmemsim.cli import main
from vmemsim.config.loader import scenario_from_dict
from vmemsim.engine import Simulation
from vmemsim.kernels.layout import H_MASK, H_UNBACKED

# A small overcommitted host: a and b fill it; c is defined but started by events.
BASE: dict[str, Any] = {
    "name": "events", "seed": 7, "duration": "6s", "tick": "100ms", "baseline": False,
    "host": {"memory": "150MiB", "vmkernel": "8MiB"},
    "hypervisor": {"sample_period": "2s", "balance_period": "1s"},
    "vm": [
        {"name": "a", "memory": "64MiB", "overhead": "1MiB", "guest": {"kernel": "4MiB"},
         "process": [{"name": "p", "size": "56MiB", "rate": "200k/s"}]},
        {"name": "b", "memory": "64MiB", "overhead": "1MiB", "guest": {"kernel": "4MiB"},
         "process": [{"name": "p", "workload": "hotcold", "size": "56MiB",
                      "rate": "200k/s"}]},
        {"name": "c", "memory": "32MiB", "overhead": "1MiB", "guest": {"kernel": "2MiB"},
         "process": [{"name": "p", "size": "16MiB", "rate": "200k/s"}]},
    ],
}


def scenario(events: list[dict[str, Any]], **top: Any) -> Any:  # noqa: ANN401
    d = copy.deepcopy(BASE)
    d.update(top)
    d["event"] = events
    return scenario_from_dict(d, "test")


def run(events: list[dict[str, Any]], check: bool | int = 5, **top: Any) -> tuple[Any, Any]:
    sim = Simulation(scenario(events, **top), check=check)
    return sim, sim.run()


def _c_waits() -> list[dict[str, Any]]:
    """c waits for an event near the end of the 6 s run (a VM an event starts has no start of
    its own)."""
    return [{"at": "5.9s", "power_on": ["c"]}]


def test_set_changes_what_it_names_from_its_tick_on() -> None:
    _, before = run(_c_waits())
    _, after = run([{"at": "3s", "set": {"vm.a.limit": "24MiB"}}, *_c_waits()])
    for r in (before, after):
        assert r.vms["time_s"].max() == 6.0
    a0, a1 = (r.vms[r.vms["vm"] == "a"].set_index("time_s") for r in (before, after))
    # Identical up to the event (the row of 3 s covers (2, 3]); the limit acts after it.
    pd.testing.assert_frame_equal(a0.loc[:3.0], a1.loc[:3.0])
    assert not a0.loc[4.0:].equals(a1.loc[4.0:])
    # reclaimed toward the new limit (the balloon and the swap device take a few seconds)
    assert a1.loc[6.0, "consumed_mb"] < a0.loc[6.0, "consumed_mb"] - 8
    assert after.summary["events"][0]["time_s"] == 3.0


def test_a_hypervisor_set_reaches_the_control_plane() -> None:
    _, r0 = run(_c_waits())
    sim, r1 = run([{"at": "2s", "set": {"hypervisor.idle_tax": 0.0, "hypervisor.soft_pct": 30.0,
                                        "hypervisor.hard_pct": 20.0,
                                        "hypervisor.low_pct": 10.0}}, *_c_waits()])
    assert sim.hv.cfg.idle_tax == 0.0
    soft = sim.hv.thresholds.enter[2]
    assert soft is not None and soft > 0.25 * sim.n_mpn  # 30% of the host, not the seed's 6%
    # The same transitions up to the event; the new thresholds change them after it.
    t0, t1 = r0.summary["transitions"], r1.summary["transitions"]
    assert [t for t in t0 if t["time_s"] < 2.0] == [t for t in t1 if t["time_s"] < 2.0]
    assert [t for t in t0 if t["time_s"] >= 2.0] != [t for t in t1 if t["time_s"] >= 2.0]


def test_a_no_op_event_gives_identical_results() -> None:
    _, r0 = run(_c_waits())
    _, r1 = run([{"at": "2s", "set": {"hypervisor.idle_tax": 0.75, "vm.a.shares": "normal"}},
                 *_c_waits()])
    pd.testing.assert_frame_equal(r0.vms, r1.vms)
    pd.testing.assert_frame_equal(r0.host, r1.host)


def test_power_off_frees_every_page_and_stops_counting_vcpu_time() -> None:
    sim, r = run([{"at": "3s", "power_off": ["b"]}, *_c_waits()], check=True)
    b = sim.vms[1]
    assert not b.powered_on and b.gone
    assert not (sim.host.rmap_vm == b.idx).any()  # no machine page left to b
    assert ((b.arrays.pstate & H_MASK) == H_UNBACKED).all()
    rows = r.vms[r.vms["vm"] == "b"].set_index("time_s")
    assert rows.loc[4.0:, "consumed_mb"].eq(0).all() and rows.loc[4.0:, "refs"].eq(0).all()
    assert rows.loc[4.0:, "vcpu_s"].eq(0).all() and rows.loc[:3.0, "vcpu_s"].gt(0).all()
    assert rows.loc[:3.0, "refs"].sum() == r.summary["vms"][1]["refs"]
    # the freed memory is free
    assert r.host.set_index("time_s").loc[4.0, "free_mb"] > 30


def test_migrate_in_backs_the_whole_memory_at_once() -> None:
    roomy = {"memory": "220MiB", "vmkernel": "8MiB"}  # room for c beside a and b
    sim, r = run([{"at": "2s", "migrate_in": ["c"]}], check=True, host=roomy)
    sim_on, r_on = run([{"at": "2s", "power_on": ["c"]}], check=True, host=roomy)
    c = r.vms[r.vms["vm"] == "c"].set_index("time_s")
    c_on = r_on.vms[r_on.vms["vm"] == "c"].set_index("time_s")
    assert c.loc[:2.0, "consumed_mb"].eq(0).all()
    # The second after it arrives: all 32 MiB backed (a booting VM touches only what it uses),
    # and no first-touch fault counted for them.
    assert c.loc[3.0, "grant_mb"] == 32.0
    assert c_on.loc[3.0, "grant_mb"] < 24.0
    assert c.loc[3.0, "hv_first_touch"] == 0 < c_on.loc[3.0, "hv_first_touch"]
    assert r.summary["events"][0]["migrated_in_mb"] == {"c": 32.0}
    # TPS: what arrived is not zeroes (only the guest's kernel holds its OS image)
    vc_in, vc_on = sim.vms[2], sim_on.vms[2]
    assert (vc_in.arrays.cid[vc_in.kernel_pages:] != 0).all()
    assert (vc_on.arrays.cid[vc_on.kernel_pages:] == 0).any()


def test_a_vm_admission_control_refuses_is_reported_not_dropped() -> None:
    d = copy.deepcopy(BASE)
    d["vm"][2]["reservation"] = "32MiB"
    d["vm"][0]["reservation"] = "64MiB"
    d["vm"][1]["reservation"] = "40MiB"
    d["event"] = [{"at": "1s", "power_on": ["c"]}]
    sim = Simulation(scenario_from_dict(d, "t"))
    r = sim.run()
    ev = r.summary["events"][0]
    assert ev["refused"][0]["vm"] == "c" and "unreserved" in ev["refused"][0]["why"]
    assert not sim.vms[2].powered_on
    assert r.vms[r.vms["vm"] == "c"]["consumed_mb"].eq(0).all()


def test_phases_are_cut_at_events() -> None:
    _, r = run([{"at": "3s", "set": {"hypervisor.idle_tax": 0.5}}, *_c_waits()])
    starts = [p["start_s"] for p in r.summary["phases"]]
    assert 3.0 in starts


def test_the_baseline_follows_the_events_of_its_vms() -> None:
    sc = scenario([{"at": "2s", "power_on": ["c"]}, {"at": "3s", "power_off": ["a"]}],
                  baseline=True)
    bs = baseline_scenario(sc, (2,))
    assert [e.power_on for e in bs.event] == [("c",)]  # a's event is not c's baseline's
    assert not {0, 2} & set(cacheable(sc))  # VMs the events touch are not cached
    r = vmemsim.simulate(sc, parallel=False, cache=False)
    c = r.vms[r.vms["vm"] == "c"].set_index("time_s")
    # c's baseline ran from 2 s on too: nothing before, work after
    assert c.loc[:2.0, "base_throughput"].eq(0).all()
    assert c.loc[3.0:, "base_throughput"].gt(0).all()
    a = r.vms[r.vms["vm"] == "a"].set_index("time_s")
    assert a.loc[4.0:, "base_throughput"].eq(0).all()
    sim = Simulation(sc)
    sim.run()
    assert not {0, 2} & set(untouched(sim))  # nor take their own runs as baselines


# ---- bad events: one line naming the event, exit 2, nothing written --------------------------
def _toml(events: str) -> str:
    return f"""
name = "bad"
duration = "10s"
[host]
memory = "1GiB"
[[vm]]
name = "a"
memory = "64MiB"
[[vm.process]]
size = "16MiB"
[[vm]]
name = "c"
memory = "64MiB"
[[vm.process]]
size = "16MiB"
{events}
"""


BAD = {
    "unknown key": ('[[event]]\nat = "2s"\nset = {"hypervisor.idle_tx" = 0.5}',
                    "event[0] (at 2s): set: unknown key 'hypervisor.idle_tx'"),
    "no such vm": ('[[event]]\nat = "2s"\npower_off = ["zz"]',
                   "event[0] (at 2s): power_off: no vm named 'zz'"),
    "no such vm in set": ('[[event]]\nat = "2s"\nset = {"vm.zz.limit" = "1GiB"}',
                          "event[0] (at 2s): set: no vm named 'zz'"),
    "after the end": ('[[event]]\nat = "10s"\npower_off = ["a"]',
                      "event[0] (at 10s): after the end of the run"),
    "out of order": ('[[event]]\nat = "5s"\npower_off = ["a"]\n'
                     '[[event]]\nat = "4s"\npower_on = ["c"]',
                     "event[1] (at 4s): out of order"),
    "bad value": ('[[event]]\nat = "2s"\nset = {"hypervisor.idle_tax" = 1.5}',
                  "event[0] (at 2s): set hypervisor.idle_tax = 1.5: hypervisor.idle_tax: "),
    "bad size": ('[[event]]\nat = "2s"\nset = {"vm.a.limit" = "lots"}',
                 "event[0] (at 2s): set vm.a.limit = \"lots\": "),
    "baked in": ('[[event]]\nat = "2s"\nset = {"vm.a.memory" = "128MiB"}',
                 "event[0] (at 2s): set: vm.a.memory cannot change during a run"),
    "host": ('[[event]]\nat = "2s"\nset = {"host.memory" = "2GiB"}',
             "event[0] (at 2s): set: host.memory cannot change during a run"),
    "not running": ('[[event]]\nat = "2s"\npower_on = ["c"]\n'
                    '[[event]]\nat = "2s"\npower_off = ["c"]',
                    "event[1] (at 2s): power_off: vm 'c' is not running at that time"),
    "off twice": ('[[event]]\nat = "1s"\npower_off = ["a"]\n'
                  '[[event]]\nat = "2s"\nmigrate_out = ["a"]',
                  "event[1] (at 2s): migrate_out: vm 'a' already left at event[0] (at 1s)"),
    "on twice": ('[[event]]\nat = "1s"\npower_on = ["c"]\n'
                 '[[event]]\nat = "2s"\nmigrate_in = ["c"]',
                 "event[1] (at 2s): migrate_in: vm 'c' already arrives at event[0] (at 1s)"),
    "own start": ('[[vm]]\nname = "d"\nmemory = "64MiB"\nstart = "1s"\n[[vm.process]]\n'
                  'size = "16MiB"\n[[event]]\nat = "2s"\npower_on = ["d"]',
                  "event[0] (at 2s): power_on: vm 'd' sets its own start"),
    "does nothing": ('[[event]]\nat = "2s"', "event[0] (at 2s): does nothing"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_event_is_one_line_and_exit_2(case: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    text, want = BAD[case]
    f = tmp_path / "s.toml"
    f.write_text(_toml(text))
    out = tmp_path / "out"
    code = main(["run", str(f), "--out", str(out), "--no-report", "--serial"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert want in err[0], err[0]
    assert "Traceback" not in err[0]
    assert not out.exists()


def test_an_event_after_a_shorter_duration_is_refused(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.toml"
    f.write_text(_toml('[[event]]\nat = "5s"\npower_off = ["a"]'))
    code = main(["run", str(f), "--duration", "4s", "--out", str(tmp_path / "o"), "--serial"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "event[0] (at 5s): after the end" in err[0]


def test_power_off_leaves_nothing_for_the_invariants_to_find(monkeypatch: Any) -> None:  # noqa: ANN401
    """The invariants do see a VM that keeps machine pages after power-off (so the tests
    above that run with check=True can fail)."""
    from vmemsim.invariants import InvariantError
    from vmemsim.kernels import hostmm

    monkeypatch.setattr(hostmm, "release_vm", lambda h, i: 0)
    with pytest.raises(InvariantError):
        run([{"at": "3s", "power_off": ["b"]}, *_c_waits()], check=True)


def test_the_ha_failover_example_is_valid() -> None:
    from vmemsim.config import events
    from vmemsim.config.loader import load_scenario

    root = Path(__file__).resolve().parent.parent
    sc = load_scenario(root / "examples" / "ha_failover.toml")
    steps = events.plan(sc)
    assert steps[0].cfg.power_on == ("ha-db", "ha-app", "ha-dc", "ha-big")
    assert events.arriving(sc) == {"ha-db", "ha-app", "ha-dc", "ha-big"}
    # a worked example as tests/test_examples.py wants them: what to look at, presets
    from vmemsim.workloads.presets import PRESETS

    text = (root / "examples" / "ha_failover.toml").read_text(encoding="utf-8")
    assert text.startswith("#") and "What to look at" in text
    assert all(p.workload in PRESETS for vm in sc.vm for p in vm.process)


def test_a_dumped_scenario_with_events_loads_again() -> None:
    """Workers and sweeps get a scenario as its dump, every field written (start = 0 too)."""
    from vmemsim.config.schema import Scenario

    sc = scenario([{"at": "2s", "power_on": ["c"]}])
    again = Scenario.model_validate(sc.model_dump(mode="json"))
    Simulation(again)  # plans its events: c's start = 0 is no start of its own


def test_the_report_and_figures_mark_the_events(tmp_path: Path) -> None:
    try:
        from conftest_report import make_result
    except ImportError:  # pragma: no cover - run as a package
        from .conftest_report import make_result
    from vmemsim.report.html import render_report
    from vmemsim.report.plots import event_times, plot_memory_state
    from vmemsim.report.terminal import describe_event

    r = make_result(60)
    r.summary["events"] = [
        {"index": 0, "at_s": 20.0, "time_s": 20.0, "power_on": ["x"],
         "refused": [{"vm": "x", "what": "power_on", "why": "no room"}]}]
    assert event_times(r) == [(20.0, "event 0: power on")]
    assert "REFUSED power_on of x: no room" in describe_event(r.summary["events"][0])
    page = render_report(r, [])
    assert "<h2>Events</h2>" in page and "power on x" in page
    fig = plot_memory_state(r)
    top = fig.axes[0]
    assert any(tuple(ln.get_xdata()) == (20.0, 20.0) for ln in top.get_lines())
    assert top.get_legend().get_texts()[0].get_text() == "free memory"


def test_each_vm_key_reaches_the_running_vm() -> None:
    d = copy.deepcopy(BASE)
    d["vm"][1]["reservation"] = "16MiB"
    d["event"] = [{"at": "1s", "set": {"vm.a.tools": False, "vm.a.shares": "high",
                                       "vm.b.limit": "40MiB", "vm.b.reservation": "40MiB",
                                       "vm.c.reservation": "32MiB"}},
                  {"at": "1.5s", "power_on": ["c"]},
                  {"at": "2s", "set": {"vm.a.reservation": "64MiB"}}]
    d["duration"] = "3s"
    sim = Simulation(scenario_from_dict(d, "t"), check=True)
    r = sim.run()
    a, b, c = sim.vms
    assert not a.driver.installed and a.shares == 20 * 64  # high: 20 shares per MB
    assert b.max_pages == b.min_pages == 40 * 256
    # c is admitted at 1.5 s with its new reservation; then a's larger one does not fit
    # beside b's and c's (142 MiB managed): refused, and a keeps its old one.
    ev = r.summary["events"]
    assert c.powered_on and c.min_pages == 32 * 256 and "refused" not in ev[1]
    assert [(x["vm"], x["what"]) for x in ev[2]["refused"]] == [("a", "reservation")]
    assert "unreserved" in ev[2]["refused"][0]["why"]
    assert a.min_pages == 0 and a.cfg.reservation == 0


def test_power_off_drops_the_vms_shared_pages() -> None:
    """With TPS, a VM's pages may be mapped to machine pages other VMs share: a power-off
    drops its references (the page goes with the last), as the invariants check."""
    from vmemsim.kernels.layout import C_SHARE_OPS, C_SHARED, HC_SHARED_REFS

    tps = {"sample_period": "2s", "balance_period": "1s", "page_sharing": True,
           "large_pages": False, "share_force_salting": 0, "share_scan_time": "1s",
           "share_rate_max": "100k/s"}
    d = copy.deepcopy(BASE)
    d["hypervisor"] = tps
    d["host"]["memory"] = "220MiB"
    for v in d["vm"][:2]:
        v["process"] = [{"name": "p", "size": "40MiB", "rate": "200k/s", "shared_frac": 0.8,
                         "write_frac": 0.0}]
    d["event"] = [{"at": "3s", "power_off": ["b"]}, *_c_waits()]
    sim = Simulation(scenario_from_dict(d, "t"), check=True)
    sim.run()
    a, b = sim.vms[0], sim.vms[1]
    assert b.arrays.vc[C_SHARE_OPS] > 0  # b shared pages before it went
    assert b.arrays.vc[C_SHARED] == 0
    assert sim.host.hc[HC_SHARED_REFS] == a.arrays.vc[C_SHARED] + sim.vms[2].arrays.vc[C_SHARED]
