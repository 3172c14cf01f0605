"""Dense page ids: the simulator's page tables are flat arrays indexed by a small int.

The map is an open-addressing hash table over one flat int64 array, driven by compiled
kernels (`vmemsim.kernels.jit.kernel`: no NRT, so they never allocate). Slot ``j`` holds the
key at ``table[2j]`` and ``dense id + 1`` at ``table[2j + 1]`` (0 = empty slot), so any int64
is a valid key and a probe touches one cache line for both key and value. Capacity is a power
of two, probing is linear, and the table is rebuilt at twice the size from ``_inverse`` (the
keys in id order) whenever it would pass half full; Python does the allocation, the kernels
just report where they stopped.
"""

from __future__ import annotations

import numpy as np

from vmemsim.kernels.jit import kernel, prefetch

_INT32_MAX = np.iinfo(np.int32).max
_MIN_SLOTS = 1 << 10
# Slots are hashed and prefetched this many keys ahead (a power of two). A table past the
# caches costs a memory latency per key; a branch mispredicted on probe length otherwise
# throws away the loads already started for the next keys. Measured on 1M random keys in a
# 32 MB table: 31 -> 58 M lookups/s; on a table in L1 no slower than without prefetching.
_AHEAD = 16

# _densify status codes
_DONE = 0
_GROW = 1  # one more key would pass the load factor: grow, then resume at the index returned
_LIMIT = 2  # one more key would pass `limit`

# murmur3's 64-bit finaliser: every key bit reaches every slot bit, so structured ids
# (addresses with zero low bits, ids that differ only in their top bits) spread evenly.
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)


@kernel(inline="always")
def _slot(key, mask):
    h = np.uint64(key)  # same-width cast: reinterprets the bits
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    h ^= h >> _S33
    return np.int64(h & np.uint64(mask))


@kernel(inline="always")
def _ahead(table, mask, pages, i, ring):
    """Hash ``pages[i]`` into ``ring`` and start loading its slot."""
    j = _slot(pages[i], mask)
    ring[i & (ring.size - 1)] = j
    prefetch(table, 2 * j)


@kernel(inline="always")
def _prime(table, mask, pages, start, ring):
    for i in range(start, min(start + ring.size, pages.size)):
        _ahead(table, mask, pages, i, ring)


@kernel
def _densify(table, mask, pages, out, inverse, start, n, limit, grow_at, ring):
    """Map ``pages[start:]`` into ``out``, inserting unseen pages as ids ``n, n+1, ...``.

    Returns ``(i, n, status)``: ``status`` is _DONE, or _GROW / _LIMIT with ``pages[i]`` the
    new page that did not fit (nothing at or after ``i`` has been mapped).
    """
    _prime(table, mask, pages, start, ring)
    ahead = ring.size
    last_page = np.int64(0)
    last_id = np.int64(-1)
    for i in range(start, pages.size):
        j = ring[i & (ahead - 1)]
        if i + ahead < pages.size:
            _ahead(table, mask, pages, i + ahead, ring)
        p = pages[i]
        if p == last_page and last_id >= 0:  # runs of one page are common in address traces
            out[i] = last_id
            continue
        while True:
            v = table[2 * j + 1]
            if v == 0:  # unseen page
                if n >= limit:
                    return i, n, _LIMIT
                if n >= grow_at:
                    return i, n, _GROW
                table[2 * j] = p
                table[2 * j + 1] = n + 1
                inverse[n] = p
                v = n + 1
                n += 1
                break
            if table[2 * j] == p:
                break
            j = (j + 1) & mask
        last_page = p
        last_id = v - 1
        out[i] = last_id
    return pages.size, n, _DONE


@kernel
def _rehash(table, mask, keys, ring):
    """Insert ``keys`` (distinct) as ids ``0..n-1`` into an empty table."""
    _prime(table, mask, keys, 0, ring)
    ahead = ring.size
    for k in range(keys.size):
        j = ring[k & (ahead - 1)]
        if k + ahead < keys.size:
            _ahead(table, mask, keys, k + ahead, ring)
        while table[2 * j + 1] != 0:
            j = (j + 1) & mask
        table[2 * j] = keys[k]
        table[2 * j + 1] = k + 1


@kernel
def _lookup(table, mask, pages, out, ring):
    _prime(table, mask, pages, 0, ring)
    ahead = ring.size
    for i in range(pages.size):
        j = ring[i & (ahead - 1)]
        if i + ahead < pages.size:
            _ahead(table, mask, pages, i + ahead, ring)
        p = pages[i]
        while True:
            v = table[2 * j + 1]
            if v == 0 or table[2 * j] == p:
                out[i] = v - 1  # -1 for an empty slot: never mapped
                break
            j = (j + 1) & mask


class PageMap:
    """Maps arbitrary int64 page ids to dense int32 ids ``0..n-1`` in order of first use.

    State persists across :meth:`map` calls, so chunks of one trace share one numbering.
    If a call raises OverflowError (more than ``limit`` distinct pages), the pages before the
    first one that did not fit stay mapped.
    """

    def __init__(self, limit: int = _INT32_MAX) -> None:
        self._limit = max(0, min(int(limit), _INT32_MAX))
        self._n = 0
        self._inverse = np.empty(1024, np.int64)
        self._ring = np.empty(_AHEAD, np.int64)  # kernels' scratch: they cannot allocate
        self._alloc(_MIN_SLOTS)

    def _alloc(self, slots: int) -> None:
        """Fresh table of ``slots`` (a power of two) holding the ``_n`` keys mapped so far."""
        self._table = np.zeros(2 * slots, np.int64)  # calloc'd: untouched pages cost nothing
        self._mask = slots - 1
        self._grow_at = slots // 2  # load factor 1/2 keeps linear probes short
        _rehash(self._table, self._mask, self._inverse[: self._n], self._ring)

    def map(self, pages: np.ndarray) -> np.ndarray:
        """Dense int32 ids of ``pages``, inserting unseen pages."""
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        shape = pages.shape
        pages = pages.reshape(-1)
        need = min(self._n + len(pages), self._limit)  # worst case: every page is new
        if need > len(self._inverse):
            grown = np.empty(max(need, 2 * len(self._inverse)), np.int64)
            grown[: self._n] = self._inverse[: self._n]
            self._inverse = grown
        out = np.empty(len(pages), np.int32)
        i = 0
        while True:
            i, self._n, status = _densify(
                self._table, self._mask, pages, out, self._inverse, i, self._n, self._limit,
                self._grow_at, self._ring,
            )
            if status == _DONE:
                return out.reshape(shape)
            if status == _LIMIT:
                raise OverflowError(f"more than {self._limit} distinct pages: dense ids overflow")
            self._alloc(2 * (self._mask + 1))

    __call__ = map

    def lookup(self, pages: np.ndarray) -> np.ndarray:
        """Dense ids without inserting: -1 for pages never mapped."""
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        out = np.empty(pages.shape, np.int32)
        _lookup(self._table, self._mask, pages.reshape(-1), out.reshape(-1), self._ring)
        return out

    @property
    def pages(self) -> np.ndarray:
        """Original page id of each dense id (read-only view, length ``len(self)``)."""
        v = self._inverse[: self._n].view()
        v.flags.writeable = False
        return v

    def __len__(self) -> int:
        return self._n

    def __contains__(self, page: object) -> bool:
        if not isinstance(page, int | np.integer):
            return False
        p = int(page)
        if not -(1 << 63) <= p < 1 << 64:
            return False  # no int64 page id (or uint64 object id) can be this value
        # object ids >= 2**63 are stored by their bits, as the readers' int64 cast keeps them
        key = np.array([p], np.uint64 if p >= 1 << 63 else np.int64).view(np.int64)
        return bool(self.lookup(key)[0] >= 0)

    def __repr__(self) -> str:
        return f"PageMap({self._n} pages)"
