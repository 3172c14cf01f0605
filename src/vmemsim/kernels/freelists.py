"""Free lists that cost no memory of their own, and free-slot bitmaps.

Free guest frames, balloon frames, free machine pages and free compression-cache slots are
linked through a per-page array that means nothing while the page is on the list: the frame's
GVPN (`frame_vpn`), the machine page's reverse map (`rmap_gppn`, free when `rmap_vm` is -1), the
slot's owner (`zowner`). A link is stored as `-2 - next`, always negative, so it cannot be taken
for a GVPN or GPPN; the end of a list reads -1, the same "none" as an unused entry. Pages never
used yet are not on the list: a bump cursor hands them out in order, so a new host needs no
pass over its pages. Pops come from the list first (LIFO), then from the cursor: the same order
as the explicit stacks these replaced (4 B a page each), so results did not change.

Swap slots have no per-slot array to borrow: their free set is a bitmap, one bit a slot, and a
free slot is found next-fit from a cursor.

List heads and cursors live in the owner's int64 counter array (`vc` or `hc`), at the indices
the caller passes.
"""

import numpy as np

from vmemsim.kernels.jit import kernel

END = -1

# Index of the lowest set bit of a 64-bit word: isolate it, multiply by a de Bruijn sequence,
# look the top six bits up (numba has no count-trailing-zeros).
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_CTZ = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _CTZ[(((1 << _i) * int(_DEBRUIJN)) & 0xFFFFFFFFFFFFFFFF) >> 58] = _i


@kernel(inline="always")
def lpush(links: np.ndarray, meta: np.ndarray, ihead: int, x: int) -> None:
    links[x] = -2 - meta[ihead]
    meta[ihead] = x


@kernel(inline="always")
def lpop(links: np.ndarray, meta: np.ndarray, ihead: int) -> int:
    """Take the head of a list, or -1 if it is empty."""
    x = meta[ihead]
    if x >= 0:
        meta[ihead] = -2 - links[x]
        links[x] = END
    return x


@kernel(inline="always")
def fpop(links: np.ndarray, meta: np.ndarray, ihead: int, ibump: int, n: int) -> int:
    """Take a free entry: the list's head, else the next never-used one, else -1."""
    x = lpop(links, meta, ihead)
    if x >= 0:
        return x
    b = meta[ibump]
    if b < n:
        meta[ibump] = b + 1
        return b
    return -1


@kernel
def _walk(links: np.ndarray, head: int, out: np.ndarray) -> int:
    """Copy a list's members into out; returns how many, or -1 if it has more than out holds."""
    n = 0
    x = head
    while x >= 0:
        if n == out.size or x >= links.size:  # too long, a cycle, or a link off the end
            return -1
        out[n] = x
        n += 1
        x = -2 - links[x]
    return n


def members(links: np.ndarray, head: int, bump: int, n: int, count: int) -> np.ndarray:
    """Every free entry (listed, then never used). Raises ValueError if the list is longer
    than `count` says or loops: what the invariant checks need."""
    listed = np.empty(max(count, 0), dtype=np.int64)
    k = _walk(links, int(head), listed)
    if k < 0:
        raise ValueError("free list longer than its counter, or a cycle, or a bad link")
    return np.concatenate([listed[:k], np.arange(int(bump), int(n), dtype=np.int64)])


def new_bitmap(n: int, free: bool = True) -> np.ndarray:
    """n slots, all free (bit set) or all taken."""
    words = np.zeros(max((n + 63) // 64, 1), dtype=np.uint64)
    if free:
        bitmap_set_range(words, 0, n)
    return words


def bitmap_set_range(words: np.ndarray, lo: int, hi: int) -> None:
    """Mark slots [lo, hi) free (Python side: building and growing)."""
    s = lo
    while s < hi and s & 63:  # the partial word at the start
        words[s >> 6] |= np.uint64(1) << np.uint64(s & 63)
        s += 1
    whole = hi & ~63
    if whole > s:
        words[s >> 6: whole >> 6] = np.uint64(0xFFFFFFFFFFFFFFFF)
        s = whole
    while s < hi:  # the partial word at the end
        words[s >> 6] |= np.uint64(1) << np.uint64(s & 63)
        s += 1


def bitmap_members(words: np.ndarray) -> np.ndarray:
    """Free slots, ascending (a set bit past the last slot shows up too: a check can see it)."""
    return np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))


@kernel(inline="always")
def bm_take(words: np.ndarray, meta: np.ndarray, icursor: int) -> int:
    """Take a free slot (the caller knows one exists): next-fit from the cursor word."""
    w = meta[icursor]
    nw = words.size
    while words[w] == 0:
        w += 1
        if w == nw:
            w = 0
    x = words[w]
    low = x & (~x + np.uint64(1))
    b = _CTZ[(low * _DEBRUIJN) >> np.uint64(58)]
    words[w] = x ^ low
    meta[icursor] = w
    return w * 64 + b


@kernel(inline="always")
def bm_put(words: np.ndarray, slot: int) -> None:
    words[slot >> 6] |= np.uint64(1) << np.uint64(slot & 63)
