"""Large arrays for the per-page tables: backed by transparent huge pages."""

from __future__ import annotations

import mmap

import numpy as np

HUGE_MIN_BYTES = 1 << 20
HUGE_PAGE = 2 << 20


def big_array(n: int, dtype: type, fill: int | None = None) -> np.ndarray:
    """An array backed by transparent huge pages when it is large.

    The reference path reads several per-page arrays at random offsets; with 4 KiB pages a
    host's worth of them overflows the TLB and every lookup pays a page walk. 2 MiB pages make
    the same arrays cost a few TLB entries. The mapping is rounded up to whole huge pages and
    the array starts on a huge-page boundary, or the kernel would back only the aligned middle.
    """
    nbytes = int(n) * np.dtype(dtype).itemsize
    if nbytes < HUGE_MIN_BYTES:
        a = np.empty(n, dtype=dtype)
    else:
        size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
        buf = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            buf.madvise(mmap.MADV_HUGEPAGE)
        base = np.frombuffer(buf, dtype=np.uint8, count=1).ctypes.data
        offset = -base % HUGE_PAGE
        a = np.frombuffer(buf, dtype=dtype, count=n, offset=offset)  # keeps `buf` alive
    if fill is not None and not (fill == 0 and nbytes >= HUGE_MIN_BYTES):
        a.fill(fill)  # (a fresh anonymous mapping is zeroes already)
    return a
