"""One-pass trace statistics with exact LRU stack (reuse) distances.

Stack distance of a reference = 1 + number of distinct pages touched since the previous
reference to the same page (first references are cold misses). An LRU cache of C frames hits
exactly the references with distance <= C, so one histogram gives the whole LRU miss-ratio
curve (Mattson et al., 1970).

Distances come from a Fenwick tree (BIT) over access times holding a 1 at each page's most
recent access time: the distance is the number of 1s after the page's previous time, an
O(log n) query. To keep memory bounded by the number of distinct pages D rather than the
trace length, the time axis is compacted (each page's last time renumbered 0..D-1 in order)
whenever it fills; the BIT is doubled when D outgrows half of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vmemsim.kernels.jit import kernel

from .pagemap import PageMap


@kernel
def _bit_build(bit, m):
    """Fenwick tree (1-based, size len(bit)-1) with ones at slots 0..m-1, in O(size)."""
    cap = bit.size - 1
    bit[:] = 0
    bit[1 : m + 1] = 1
    for i in range(1, cap + 1):
        j = i + (i & -i)
        if j <= cap:
            bit[j] += bit[i]


@kernel
def _reuse_chunk(dense, last, bit, t, nseen, hist):
    """Process one chunk of dense ids; returns the new (time, distinct pages seen, colds)."""
    cap = bit.size - 1
    cold = 0
    for k in range(dense.size):
        p = dense[k]
        s = last[p]
        if s < 0:
            nseen += 1
            cold += 1
        else:
            i = s + 1  # prefix count of marks at slots 0..s
            c = 0
            while i > 0:
                c += bit[i]
                i -= i & -i
            hist[nseen - c + 1] += 1  # marks after s = distinct pages since, +1 = distance
            i = s + 1
            while i <= cap:
                bit[i] -= 1
                i += i & -i
        i = t + 1
        while i <= cap:
            bit[i] += 1
            i += i & -i
        last[p] = t
        t += 1
    return t, nseen, cold


class ReuseDistance:
    """Streaming exact LRU stack-distance histogram over dense page ids."""

    def __init__(self, initial_capacity: int = 1 << 16) -> None:
        self.cap = max(16, int(initial_capacity))
        self.bit = np.zeros(self.cap + 1, np.int32)
        self.last = np.full(1024, -1, np.int64)
        self.hist = np.zeros(1026, np.int64)  # hist[d] = refs with stack distance d; [0] unused
        self.t = 0
        self.nseen = 0
        self.cold = 0
        self.refs = 0

    def feed(self, dense: np.ndarray, n_ids: int) -> None:
        """Add references (dense ids < n_ids, as produced by one PageMap)."""
        dense = np.ascontiguousarray(dense, dtype=np.int32)
        n = len(dense)
        if n == 0:
            return
        if n_ids > len(self.last):
            grown = np.full(max(n_ids, 2 * len(self.last)), -1, np.int64)
            grown[: len(self.last)] = self.last
            self.last = grown
        if n_ids + 2 > len(self.hist):
            grown = np.zeros(max(n_ids + 2, 2 * len(self.hist)), np.int64)
            grown[: len(self.hist)] = self.hist
            self.hist = grown
        if self.t + n > self.cap:
            self._compact(n)
        self.t, self.nseen, cold = _reuse_chunk(
            dense, self.last, self.bit, self.t, self.nseen, self.hist
        )
        self.cold += cold
        self.refs += n

    def _compact(self, incoming: int) -> None:
        m = self.nseen
        seen = np.flatnonzero(self.last >= 0)  # m ids, not necessarily 0..m-1
        order = seen[np.argsort(self.last[seen], kind="stable")]
        self.last[order] = np.arange(m, dtype=np.int64)  # same relative order, slots 0..m-1
        if 2 * (m + incoming) > self.cap:
            self.cap = 1 << int(2 * (m + incoming) - 1).bit_length()
            self.bit = np.zeros(self.cap + 1, np.int32)
        _bit_build(self.bit, m)
        self.t = m

    def counts(self) -> np.ndarray:
        """counts[d] = references with stack distance d (d >= 1); counts[0] = 0."""
        return self.hist[: self.nseen + 1].copy()


@dataclass
class TraceStats:
    """Summary of a trace. ``reuse_histogram`` rows are (lo, hi, count) for stack distances
    in [lo, hi] with power-of-two hi; ``mrc`` rows are (frames, LRU miss ratio)."""

    references: int
    distinct_pages: int
    reads: int
    writes: int
    write_fraction: float
    cold_misses: int
    reuse_histogram: list[tuple[int, int, int]]
    mrc: list[tuple[int, float]]
    page_size: int | None = None
    sd_counts: np.ndarray | None = field(default=None, repr=False, compare=False)

    def lru_misses(self, frames: int) -> int:
        """Exact LRU misses with ``frames`` page frames (any size, not just powers of two)."""
        if self.sd_counts is None:
            raise ValueError("stack distances were not computed (reuse=False)")
        if frames < 1:
            raise ValueError("frames must be >= 1")
        return self.references - int(self.sd_counts[1 : frames + 1].sum())

    def lru_miss_ratio(self, frames: int) -> float:
        return self.lru_misses(frames) / self.references if self.references else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "references": self.references,
            "distinct_pages": self.distinct_pages,
            "reads": self.reads,
            "writes": self.writes,
            "write_fraction": self.write_fraction,
            "cold_misses": self.cold_misses,
            "page_size": self.page_size,
            "reuse_histogram": [
                {"lo": lo, "hi": hi, "count": c} for lo, hi, c in self.reuse_histogram
            ],
            "mrc": [{"frames": f, "miss_ratio": r} for f, r in self.mrc],
        }


def _pow2_buckets(counts: np.ndarray) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    maxd = len(counts) - 1
    lo, hi = 1, 1
    while lo <= maxd:
        out.append((lo, hi, int(counts[lo : hi + 1].sum())))
        lo, hi = hi + 1, hi * 2
    # trim empty tail buckets (beyond the largest distance actually seen)
    while out and out[-1][2] == 0:
        out.pop()
    return out


def _mrc(counts: np.ndarray, refs: int, distinct: int) -> list[tuple[int, float]]:
    if refs == 0:
        return []
    cum = np.cumsum(counts)
    out = []
    c = 1
    while True:
        hits = int(cum[min(c, len(cum) - 1)])
        out.append((c, (refs - hits) / refs))
        if c >= distinct:
            return out
        c *= 2


def trace_stats(
    chunks: Iterable[Any],
    *,
    reuse: bool = True,
    page_size: int | None = None,
    page_map: PageMap | None = None,
) -> TraceStats:
    """Statistics over an iterable of ``(pages, is_write, times)`` chunks (e.g. a reader).

    One pass, memory O(distinct pages). ``reuse=False`` skips stack distances (then the
    histogram and MRC are empty). ``page_size`` is recorded as given (default: the reader's).
    Pass an empty ``page_map`` to get the dense numbering used.
    """
    pm = page_map if page_map is not None else PageMap()
    if len(pm):
        raise ValueError("page_map must be empty (it receives this trace's dense numbering)")
    rd = ReuseDistance() if reuse else None
    refs = writes = 0
    for c in chunks:
        pages, is_write = c[0], c[1]
        dense = pm.map(pages)
        refs += len(dense)
        writes += int(np.count_nonzero(is_write))
        if rd is not None:
            rd.feed(dense, len(pm))
    if page_size is None:
        page_size = getattr(chunks, "page_size", None)
    distinct = len(pm)
    if rd is not None:
        counts = rd.counts()
        hist, mrc, cold = _pow2_buckets(counts), _mrc(counts, refs, distinct), rd.cold
    else:
        counts, hist, mrc, cold = None, [], [], distinct
    return TraceStats(
        references=refs,
        distinct_pages=distinct,
        reads=refs - writes,
        writes=writes,
        write_fraction=writes / refs if refs else 0.0,
        cold_misses=cold,
        reuse_histogram=hist,
        mrc=mrc,
        page_size=page_size,
        sd_counts=counts,
    )
