"""Dense page ids: the simulator's page tables are flat arrays indexed by a small int."""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.typed import Dict

_INT32_MAX = np.iinfo(np.int32).max


@njit(cache=True)
def _densify(table, pages, out, inverse, n, limit):
    """Map pages to dense ids, assigning new ids in order of first appearance.

    Returns the new count of ids, or -1 if it would exceed ``limit``.
    """
    for i in range(pages.size):
        p = pages[i]
        v = table.get(p, np.int32(-1))
        if v < 0:
            if n >= limit:
                return -1
            v = np.int32(n)
            table[p] = v
            inverse[n] = p
            n += 1
        out[i] = v
    return n


@njit(cache=True)
def _lookup(table, pages, out):
    for i in range(pages.size):
        out[i] = table.get(pages[i], np.int32(-1))


class PageMap:
    """Maps arbitrary int64 page ids to dense int32 ids ``0..n-1`` in order of first use.

    State persists across :meth:`map` calls, so chunks of one trace share one numbering.
    The hash table is a numba typed Dict driven from compiled code (tens of M ids/s).
    """

    def __init__(self, limit: int = _INT32_MAX) -> None:
        self._table = Dict.empty(key_type=types.int64, value_type=types.int32)
        self._inverse = np.empty(1024, np.int64)
        self._n = 0
        self._limit = min(int(limit), _INT32_MAX)

    def map(self, pages: np.ndarray) -> np.ndarray:
        """Dense int32 ids of ``pages``, inserting unseen pages."""
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        need = self._n + len(pages)
        if need > len(self._inverse):  # worst case: every page is new
            grown = np.empty(max(need, 2 * len(self._inverse)), np.int64)
            grown[: self._n] = self._inverse[: self._n]
            self._inverse = grown
        out = np.empty(len(pages), np.int32)
        n = _densify(self._table, pages, out, self._inverse, self._n, self._limit)
        if n < 0:
            raise OverflowError(f"more than {self._limit} distinct pages: dense ids overflow")
        self._n = n
        return out

    __call__ = map

    def lookup(self, pages: np.ndarray) -> np.ndarray:
        """Dense ids without inserting: -1 for pages never mapped."""
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        out = np.empty(len(pages), np.int32)
        _lookup(self._table, pages, out)
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
        return isinstance(page, int | np.integer) and int(page) in self._table

    def __repr__(self) -> str:
        return f"PageMap({self._n} pages)"
