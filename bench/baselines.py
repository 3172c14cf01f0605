"""Benchmarks 4 and 5: the floor (plain Python dicts) and the ceiling (a compiled two-level
random lookup) for the same table sizes as the full simulator's hit benchmark."""

from __future__ import annotations

import time
from collections import OrderedDict

import numba as nb
import numpy as np

import vmemsim  # noqa: F401  (sets numba's cache folder before the kernels below)
from bench.common import Sample
from vmemsim.kernels.layout import G_DIRTY, G_USER, H_BITS, H_FAST
from vmemsim.kernels.rng import next_u64  # the simulator's own generator, inlined alike

# ---- 4: the floor --------------------------------------------------------------------------


class DictSim:
    """The same loop in plain Python: guest page table dict (GVPN -> GPPN), pmap dict
    (GPPN -> MPN), LRU over guest frames with an OrderedDict. Tables are filled up front, so
    the timed loop is the hit path, as in the simulator's steady state; the miss path exists
    so that the loop does the same checks a simulator must."""

    def __init__(self, n_gvpn: int, n_gppn: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        frames = rng.permutation(n_gppn)[:n_gvpn].tolist()
        mpns = rng.permutation(n_gppn).tolist()
        self.pt: dict[int, int] = dict(zip(range(n_gvpn), frames, strict=True))
        self.pmap: dict[int, int] = dict(zip(range(n_gppn), mpns, strict=True))
        self.lru: OrderedDict[int, None] = OrderedDict.fromkeys(frames)
        self.dirty: set[int] = set(frames)
        self.n_gvpn = n_gvpn
        self.n_gppn = n_gppn
        self.free: list[int] = []
        self.rng = rng

    def run(self, n: int) -> tuple[int, int]:
        pt, pmap, lru, dirty = self.pt, self.pmap, self.lru, self.dirty
        hits = misses = 0
        chunk = 1 << 16
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            # Drawing in numpy costs ~10 ns a reference, against ~300 ns for the loop below.
            gvs = self.rng.integers(0, self.n_gvpn, m).tolist()
            writes = (self.rng.random(m) < 0.3).tolist()
            for gv, w in zip(gvs, writes, strict=True):
                g = pt.get(gv)
                if g is not None and g in pmap:
                    lru.move_to_end(g)
                    if w:
                        dirty.add(g)
                    hits += 1
                    continue
                misses += 1  # not reached with full tables; kept so the hit test is real
                if g is None:
                    g = self.free.pop() if self.free else lru.popitem(last=False)[0]
                    pt[gv] = g
                pmap[g] = g
                lru[g] = None
        return hits, misses

    def rep(self, n: int) -> Sample:
        t0 = time.perf_counter()
        hits, misses = self.run(n)
        return Sample(n, time.perf_counter() - t0, {"hits": hits, "misses": misses})


# ---- 5: the ceiling ------------------------------------------------------------------------


@nb.njit(cache=True)
def two_level(pt: np.ndarray, pmap: np.ndarray, s: np.ndarray, n: int) -> int:
    """pt[gv] -> pmap[g] for n uniform gv: the least work a two-level lookup can do."""
    acc = 0
    size = np.uint64(pt.size)
    for _ in range(n):
        gv = np.int64(((next_u64(s) >> np.uint64(32)) * size) >> np.uint64(32))
        acc += pmap[pt[gv]]
    return acc


@nb.njit(cache=True)
def sim_layout(pt: np.ndarray, pstate: np.ndarray, aux: np.ndarray,
               s: np.ndarray, n: int, wfrac: float) -> int:
    """The simulator's hit path and nothing else: draw gv and a write bit, pt[gv], test the
    hypervisor bits of pstate[g], set the CLOCK bit aux[g], test the dirty bit (the same byte)
    on writes. The same arrays, so the same cache misses; what the simulator adds beyond this
    is its own overhead."""
    hits = 0
    size = np.uint64(pt.size)
    for _ in range(n):
        gv = np.int64(((next_u64(s) >> np.uint64(32)) * size) >> np.uint64(32))
        w = float(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0) < wfrac
        g = pt[gv]
        if g >= 0:
            st = pstate[g]
            if st & H_BITS == H_FAST:
                aux[g] = 1
                if w and not st & G_DIRTY:
                    pstate[g] = st | G_DIRTY
                hits += 1
    return hits


class Ceiling:
    """Tables of the simulator's sizes with the simulator's dtypes, mapped at random."""

    def __init__(self, n_gvpn: int, n_gppn: int, seed: int = 2) -> None:
        rng = np.random.default_rng(seed)
        self.pt = rng.permutation(n_gppn)[:n_gvpn].astype(np.int32)
        self.pmap = rng.permutation(n_gppn).astype(np.int32)
        self.pstate = np.full(n_gppn, H_FAST | G_USER | G_DIRTY, np.uint8)
        self.aux = np.zeros(n_gppn, np.uint8)
        self.s = rng.integers(1, 2**63, 4, dtype=np.uint64)
        two_level(self.pt, self.pmap, self.s, 10)  # compile (or load) outside the timing
        sim_layout(self.pt, self.pstate, self.aux, self.s, 10, 0.3)

    def rep_two_level(self, n: int) -> Sample:
        t0 = time.perf_counter()
        two_level(self.pt, self.pmap, self.s, n)
        return Sample(n, time.perf_counter() - t0)

    def rep_sim_layout(self, n: int) -> Sample:
        t0 = time.perf_counter()
        hits = sim_layout(self.pt, self.pstate, self.aux, self.s, n, 0.3)
        return Sample(n, time.perf_counter() - t0, {"hits": int(hits)})

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.pt, self.pmap, self.pstate, self.aux))
