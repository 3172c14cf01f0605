"""The default scenario is the seed's case study: soft, then hard, with their costs."""

from __future__ import annotations

import numpy as np

import vmemsim
from vmemsim.engine import baseline_run


def test_case_study_moves_through_soft_and_hard() -> None:
    sc = vmemsim.load_scenario("default").with_overrides(duration="130s")
    # Without TPS: in soft ESX breaks every VM's large pages (hypervisor.sharing), web's too,
    # and then no VM would be left untouched for the check of baseline_from_run below.
    sc = sc.model_copy(update={"hypervisor": sc.hypervisor.model_copy(
        update={"page_sharing": False})})
    r = vmemsim.simulate(sc)
    s = r.summary
    pairs = {(t["from"], t["to"]) for t in s["transitions"]}
    assert ("high", "soft") in pairs and ("soft", "hard") in pairs
    assert {"high", "soft", "hard"} <= set(s["host"]["states_seen"])
    by = {v["name"]: v for v in s["vms"]}
    assert by["batch"]["max_balloon_mb"] > 100  # the balloon acted...
    assert sum(v["swout_pages"] for v in s["vms"]) > 0  # ...and so did host swapping
    assert by["legacy"]["max_balloon_mb"] == 0  # no VMware Tools: never ballooned
    assert sum(v["zip_pages"] for v in s["vms"]) > 0
    # Every phase reports each VM's throughput against the baseline; contention costs batch.
    hard = [p for p in s["phases"] if p["state"] == "hard"]
    assert hard and all(p["vms"]["batch"]["vs_baseline"] < 1.0 for p in hard)
    assert by["batch"]["slowdown"] > 1.2
    # web fits: the hypervisor never acts on it, so the run takes web's own references as its
    # baseline (baseline_from_run) and its slowdown, 1.0, says nothing by itself. Its baseline
    # computed on an ample host must make the same references, second by second.
    assert "web" in s["baseline_from_run"] and "batch" not in s["baseline_from_run"]
    web = [v.name for v in sc.vm].index("web")
    base = baseline_run(sc, sc.duration, (web,)).vms
    mine = r.vms[r.vms["vm"] == "web"]
    np.testing.assert_array_equal(base["time_s"].to_numpy(), mine["time_s"].to_numpy())
    np.testing.assert_array_equal(base["refs"].to_numpy(), mine["refs"].to_numpy())
    assert base["refs"].sum() / mine["refs"].sum() == by["web"]["slowdown"] == 1.0
