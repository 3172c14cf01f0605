"""Replicates: a scenario over several seeds, with each VM's mean and 95% interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vmemsim
from helpers import small
from vmemsim.cli import main
from vmemsim.metrics.stats import mean_ci


def test_the_interval_covers_the_true_mean_at_its_stated_rate() -> None:
    """4,000 samples of 5 from a normal law: 95% of the intervals hold its mean (the binomial
    sd of the share is 0.0034). A normal quantile instead of Student's t covers 88%, an
    interval without the 1 / sqrt(n) nearly 100%: both fail."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(4000):
        _, lo, hi = mean_ci(rng.normal(10.0, 2.0, 5).tolist())
        hits += lo <= 10.0 <= hi
    assert 0.94 <= hits / 4000 <= 0.96


def test_mean_ci_edge_cases() -> None:
    assert mean_ci([3.0]) == (3.0, 3.0, 3.0)
    m, lo, hi = mean_ci([1.0, float("nan"), 3.0])  # a missing slowdown does not count
    assert m == 2.0 and lo < 2.0 < hi
    assert all(x != x for x in mean_ci([]))


def test_seeds_give_the_first_seeds_run_and_intervals_over_all() -> None:
    sc = small(duration="6s", baseline=True)
    r = vmemsim.simulate(sc, seeds=3, cache=False)
    assert r.summary["seeds"] == [7, 8, 9]
    alone = [vmemsim.simulate(sc.with_overrides(seed=s), cache=False) for s in (7, 8, 9)]
    pd.testing.assert_frame_equal(r.vms, alone[0].vms)
    for k, vm in enumerate(r.summary["vms"]):
        for key in ("slowdown", "throughput"):
            m, lo, hi = mean_ci([a.summary["vms"][k][key] for a in alone])
            assert vm[f"{key}_mean"] == pytest.approx(m, nan_ok=True)
            assert vm[f"{key}_ci"] == pytest.approx([lo, hi], nan_ok=True)
    # the seeds differ: the intervals are not points
    assert any(v["throughput_ci"][1] > v["throughput_ci"][0] for v in r.summary["vms"])


def test_run_with_seeds_writes_the_intervals(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import tomli_w

    from helpers import BASE, merge

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(merge(BASE, {"duration": "4s", "baseline": True})))
    out = tmp_path / "out"
    assert main(["run", str(path), "--seeds", "2", "--out", str(out), "--no-report",
                 "--no-cache"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [7, 8] and "slowdown_ci" in summary["vms"][0]
    assert "Over 2 seeds" in capsys.readouterr().out
    assert main(["run", str(path), "--seeds", "0"]) == 2
    assert "--seeds" in capsys.readouterr().err
