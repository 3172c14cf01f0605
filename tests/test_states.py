"""Memory states: thresholds of both presets, minFree, hysteresis, and the actions they allow."""

from __future__ import annotations

import pytest

from vmemsim.config.schema import HypervisorConfig
from vmemsim.config.units import MIB, PAGE_SIZE
from vmemsim.hypervisor.states import HARD, HIGH, LOW, SOFT, Thresholds, minfree_mb


# 6% of the first 4 GB, 4% of the next 8, 2% of the next 16, 1% of the rest, in MB. Sources
# round: they give 899 MB for 28 GB and 1597 MB for 96 GB; the formula gives 901.12 and 1597.44.
@pytest.mark.parametrize("host_gb,expected_mb", [
    (2, 0.06 * 2048),
    (4, 0.06 * 4096),  # 245.76
    (12, 0.06 * 4096 + 0.04 * 8192),
    (28, 0.06 * 4096 + 0.04 * 8192 + 0.02 * 16384),  # 901.12
    (96, 0.06 * 4096 + 0.04 * 8192 + 0.02 * 16384 + 0.01 * 68 * 1024),  # 1597.44
])
def test_minfree(host_gb: int, expected_mb: float) -> None:
    assert minfree_mb(host_gb * 1024) == pytest.approx(expected_mb, rel=1e-12)


def _pages(pct: float, host: int) -> float:
    return pct / 100 * host / PAGE_SIZE


def test_seed_preset_thresholds_and_hysteresis() -> None:
    host = 8192 * MIB
    th = Thresholds.build(HypervisorConfig(), host)
    p = lambda pct: _pages(pct, host)  # noqa: E731
    assert th.next_state(HIGH, p(6.1)) == HIGH
    assert th.next_state(HIGH, p(5.9)) == SOFT
    assert th.next_state(HIGH, p(3.9)) == HARD
    assert th.next_state(HIGH, p(1.9)) == LOW
    # Climbing needs 25% above the threshold: 7.5% to leave soft, 5% to leave hard.
    assert th.next_state(SOFT, p(6.5)) == SOFT
    assert th.next_state(SOFT, p(7.6)) == HIGH
    assert th.next_state(HARD, p(4.5)) == HARD
    assert th.next_state(HARD, p(5.1)) == SOFT
    assert th.next_state(LOW, p(9.0)) == HIGH
    assert th.actions(SOFT) >= {"balloon"} and "swap" not in th.actions(SOFT)
    assert {"swap", "compress"} <= th.actions(HARD)
    assert "block" in th.actions(LOW)


def test_paper_percentages_are_parameters() -> None:
    host = 1024 * MIB
    th = Thresholds.build(HypervisorConfig(soft_pct=4, hard_pct=2, low_pct=1, hysteresis=0),
                          host)
    assert th.next_state(HIGH, _pages(4.5, host)) == HIGH
    assert th.next_state(HIGH, _pages(3.5, host)) == SOFT
    assert th.next_state(SOFT, _pages(4.0, host)) == HIGH  # no hysteresis


def test_vsphere_preset_scales_minfree() -> None:
    host = 96 * 1024 * MIB
    th = Thresholds.build(HypervisorConfig(thresholds="vsphere"), host)
    mf = minfree_mb(96 * 1024) * MIB / PAGE_SIZE
    assert th.enter[1] == pytest.approx(mf)  # clear: 100%
    assert th.enter[SOFT] == pytest.approx(0.64 * mf)
    assert th.enter[HARD] == pytest.approx(0.32 * mf)
    assert th.enter[LOW] == pytest.approx(0.16 * mf)
    assert th.next_state(HIGH, 0.5 * mf) == SOFT
    assert "balloon" not in th.actions(HARD)  # vSphere 6: ballooning stops in hard


def test_bad_threshold_order() -> None:
    with pytest.raises(ValueError):
        HypervisorConfig(soft_pct=2, hard_pct=4)
