"""The default scenario is the seed's case study: soft, then hard, with their costs."""

from __future__ import annotations

import vmemsim


def test_case_study_moves_through_soft_and_hard() -> None:
    r = vmemsim.simulate("default", duration="130s")
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
    assert by["web"]["slowdown"] >= 1.0
