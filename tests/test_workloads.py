"""Workload generators: the compiled draws follow their distributions."""

from __future__ import annotations

import numpy as np
import pytest

from vmemsim.config.schema import ProcessConfig
from vmemsim.kernels.refpath import ZIPF_KNOTS, draw, zipf_table
from vmemsim.kernels.rng import new_state, step
from vmemsim.workloads.generators import Workload

N = 200_000


def _draws(dist: int, wss: int, *, alpha: float = 1.0, stride: int = 1, hot: int = 1,
           hot_prob: float = 0.0) -> np.ndarray:
    st = tuple(new_state(np.random.SeedSequence(11)))
    zt = zipf_table(wss, alpha)
    out = np.empty(N, dtype=np.int64)
    cursor = 0
    for i in range(N):
        out[i], cursor, st = draw(st, dist, wss, zt, stride, 1.0 / wss, hot, hot_prob, cursor)
        st = _u64(st)
    return out


def _u64(st: tuple) -> tuple:
    # numba returns the state's words as Python ints; typed back as uint64 for the next call
    return tuple(np.uint64(w) for w in st)


def test_uniform_covers_evenly() -> None:
    counts = np.bincount(_draws(0, 100), minlength=100)
    chi2 = float(((counts - N / 100) ** 2 / (N / 100)).sum())
    assert chi2 < 150  # 99 dof, p ~ 0.001


@pytest.mark.parametrize("alpha", [0.8, 1.0, 1.2])
def test_zipf_follows_the_power_law(alpha: float) -> None:
    wss = 5000
    counts = np.bincount(_draws(1, wss, alpha=alpha), minlength=wss)
    # Continuous power law over [1, wss + 1]: P(rank r) = F(r + 2) - F(r + 1).
    x = np.arange(1, wss + 2, dtype=float)
    cdf = np.log(x) / np.log(wss + 1) if alpha == 1.0 else (
        (x ** (1 - alpha) - 1) / ((wss + 1) ** (1 - alpha) - 1))
    p = np.diff(cdf)
    for r in (0, 1, 2, 5, 20, 100):
        assert counts[r] / N == pytest.approx(p[r], rel=0.08), r
    assert counts[:50].sum() / N == pytest.approx(p[:50].sum(), rel=0.03)


def test_zipf_stride_is_a_permutation() -> None:
    wss = 1000
    plain = np.bincount(_draws(1, wss, alpha=1.1), minlength=wss)
    spread = np.bincount(_draws(1, wss, alpha=1.1, stride=617), minlength=wss)
    assert sorted(plain.tolist()) == sorted(spread.tolist())  # same multiset of frequencies
    assert spread[617] == plain[1]


def test_hotcold_and_scan() -> None:
    d = _draws(2, 1000, hot=100, hot_prob=0.9)
    # Cold draws are over the other 900 pages only: hot with probability 0.9 exactly (0.91
    # if cold draws also fell on hot pages). Binomial sd over N draws: 0.00067.
    assert (d < 100).mean() == pytest.approx(0.9, abs=0.003)
    s = _draws(3, 7)
    assert s[:15].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]


def test_zipf_knot_split_matches_float_interpolation() -> None:
    """draw() splits u * ZIPF_KNOTS into knot and fraction with shifts; that must equal the
    plain float arithmetic it replaced, for the same 53 random bits."""
    wss, alpha = 307_200, 0.9
    zt = zipf_table(wss, alpha)
    st = tuple(new_state(np.random.SeedSequence(3)))
    for _ in range(2000):
        x, nxt = step(st)
        nxt = _u64(nxt)
        y = float(x >> np.uint64(11)) * 2.0 ** -53 * ZIPF_KNOTS
        i = int(y)
        r = max(min(int(zt[i] + (y - i) * (zt[i + 1] - zt[i])) - 1, wss - 1), 0)
        got, _, after = draw(st, 1, wss, zt, 1, 1.0 / wss, 1, 0.0, 0)
        assert got == r and _u64(after) == nxt
        st = nxt


def test_schedules() -> None:
    tou = Workload(ProcessConfig(workload="toucher", size=256 << 20, schedule=[
        {"at": "0s", "wss": "50MiB"}, {"at": "60s", "wss": "250MiB"}]))
    assert tou.shape(10).wss == 50 * 256 and tou.shape(61).wss == 250 * 256
    hog = Workload(ProcessConfig(workload="hog", size=400 << 20, wss=100 << 20, ramp=100,
                                 start=10))
    assert hog.shape(10).wss == 100 * 256
    assert hog.shape(60).wss == 250 * 256
    assert hog.shape(500).wss == 400 * 256
    ph = Workload(ProcessConfig(workload="phases", size=100 << 20, schedule=[
        {"at": "0s", "wss": "10MiB", "offset": "0"}, {"at": "5s", "wss": "10MiB",
                                                     "offset": "50MiB"}]))
    assert ph.shape(6).offset == 50 * 256
    assert Workload(ProcessConfig(workload="idle", size=1 << 20)).cpu == pytest.approx(0.02)
