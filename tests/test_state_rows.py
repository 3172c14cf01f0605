"""Per-second rows carry what happened between them (issue 21): the seconds spent in each
memory state within the second (host.csv `<state>_s`) and each VM's largest targets within it
(vms.csv `sztgt_max_mb`, `mctltgt_max_mb`, `swtgt_max_mb`)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.helpers import small

from vmemsim.engine import Simulation
from vmemsim.hypervisor import states
from vmemsim.metrics.columns import STATE_COLUMNS, STATES

PRESSED = {"memory": "140MiB", "swap_device": {"latency": "1ms", "iops": "20k/s"}}


def test_the_state_table_and_the_columns_agree() -> None:
    assert STATES == states.STATES
    assert tuple(f"{s}_s" for s in states.STATES) == STATE_COLUMNS


@pytest.mark.parametrize("preset", ["seed", "vsphere"])
def test_state_seconds_add_up_to_each_second_and_to_time_in_state(preset: str) -> None:
    """Every row's state columns sum to its second's length, and over the rows to summary's
    time_in_state_s (from the transitions) exactly; some second holds more than one state,
    which the row's `state` column alone cannot show."""
    hv = {"thresholds": preset}
    r = Simulation(small(duration="20s", host=PRESSED, hypervisor=hv)).run()
    h = r.host
    np.testing.assert_allclose(h[list(STATE_COLUMNS)].sum(axis=1), 1.0, atol=1e-9)
    tis = r.summary["host"]["time_in_state_s"]
    sums = {s: round(float(h[f"{s}_s"].sum()), 6) for s in STATES}
    assert {s: v for s, v in sums.items() if v > 0} == tis
    assert len(tis) > 2, tis  # states to tell apart
    mixed = (h[list(STATE_COLUMNS)] > 0).sum(axis=1) > 1
    assert mixed.any()  # a sub-second window between two rows
    if preset == "seed":
        assert (h["clear_s"] == 0).all()  # the seed preset has no clear state


def test_a_swap_target_set_between_rows_shows_in_the_max() -> None:
    """The issue's case: host swapping in soft windows between the rows, SWTGT 0 at the row's
    end. The max column shows the target that drove it; it is never below the row's value."""
    r = Simulation(small(duration="20s", host=PRESSED)).run()
    v = r.vms
    for cur, top in (("sztgt_mb", "sztgt_max_mb"), ("mctltgt_mb", "mctltgt_max_mb"),
                     ("swtgt_mb", "swtgt_max_mb")):
        assert (v[top] >= v[cur] - 1e-9).all(), top
    hidden = v[(v["swtgt_mb"] == 0) & (v["swtgt_max_mb"] > 0)]
    assert len(hidden), "no second whose swap target rose and fell between two rows"


def test_a_target_raised_for_one_tick_shows_in_that_seconds_max() -> None:
    """A swap target that stands for one tick inside a second (injected after the control
    plane set this tick's, so nothing acts on it) is that second's max, and no other's."""
    sim = Simulation(small(duration="3s", host={"memory": "1GiB"}))
    orig = sim.hv.host_reclaim
    vm = sim.vms[1]

    def once(now: float, acts: frozenset[str]) -> None:
        orig(now, acts)
        if sim.tick == 14:  # the 5th tick of the second second
            vm.swtgt = 2560.0  # 10 MB
    sim.hv.host_reclaim = once  # type: ignore[method-assign]
    r = sim.run()
    rows = r.vms[r.vms["vm"] == vm.cfg.name].set_index("time_s")
    assert rows.loc[2.0, "swtgt_max_mb"] == 10.0
    assert rows.loc[2.0, "swtgt_mb"] == 0.0
    assert (rows.drop(index=2.0)["swtgt_max_mb"] == 0).all()
    assert (r.vms[r.vms["vm"] != vm.cfg.name]["swtgt_max_mb"] == 0).all()


def test_a_result_written_before_these_columns_still_loads(tmp_path) -> None:  # noqa: ANN001
    """`vmemsim compare` of an older run: its files lack the new columns, which load unknown."""
    import pandas as pd

    from vmemsim.metrics.columns import TARGET_MAX_COLUMNS
    from vmemsim.metrics.result import Result

    r = Simulation(small(duration="2s")).run()
    r.save(tmp_path / "old", parquet=False)
    for name, cols in (("host.csv", STATE_COLUMNS), ("vms.csv", TARGET_MAX_COLUMNS)):
        path = tmp_path / "old" / name
        pd.read_csv(path).drop(columns=list(cols)).to_csv(path, index=False)
    back = Result.load(tmp_path / "old")
    assert back.host[list(STATE_COLUMNS)].isna().all().all()
    assert back.vms[list(TARGET_MAX_COLUMNS)].isna().all().all()
    assert (back.vms["refs"] == r.vms["refs"]).all()
