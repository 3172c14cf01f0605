"""Transparent page sharing (TPS) [W02 s.4]: page contents, the hash scan, sharing and
copy-on-write, reference counts, and the 2 MB large pages that are never shared.

Content model. Every GPPN has a content id (`cid`, int64), set when the page's content is
made, never recomputed:
- CID_ZERO (0): zeroes. Every page until the guest puts something in it: boot zeroing (a
  Windows guest zeroes all its memory) and the hypervisor's zeroed pages leave zeroes, and so
  does a balloon page given back.
- the guest OS image: the guest kernel's frames, id hash(guest.os, GPPN): the same in VMs with
  the same guest.os (and kernel size).
- an application's shared pages: `shared_frac` of a process's pages (its code and read-only
  data, file-backed), id hash(application, page in the process): the same in every VM that runs
  a process of that name.
- CID_UNIQUE (-1): anything else, and any page once written: its content is the VM's own.

The scanner's "hash" is the content id with the VM's salt mixed in (`content_key`), and its
"full comparison" after a hash match is the equality of the two pages' content ids. This is an
honest model of hash-and-compare: ids are equal exactly when contents are (unique pages match
nothing), so a hash collision that the comparison would reject cannot occur.

A shared machine page has rmap_vm RV_SHARED and its reference count in rmap_gppn; every GPPN
mapped to it is in state H_SHARED. A read of a shared page is served by the hypervisor's
fault path (hostmm.hv_access, no copy); a write takes a copy-on-write fault (`cow`): a new
machine page with a copy, or, for the last reference, the page itself made private again.

Hints. A scanned page whose key is not in the table is entered as a hint (its VM and GPPN); a
later page with the same key verifies the hint (still backed, same content and salt) and both
then share the hint's machine page. A hashed page not shared is counted in C_HINTS (esxtop
COWH) until its content changes; a unique page is marked but not entered, as its hash matches
nothing.
"""

import numpy as np

from vmemsim.kernels.hostmm import hv_access, mpn_alloc, mpn_free, release_content
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import (
    C_BACKED,
    C_COW,
    C_HINTS,
    C_LP_BROKEN,
    C_SALT,
    C_SCAN_CURSOR,
    C_SCAN_STRIDE,
    C_SCANNED,
    C_SHARE_OPS,
    C_SHARED,
    C_ZERO,
    H_BACKED,
    H_MASK,
    H_SHARED,
    HC_MFREE_N,
    HC_SHARED_MPNS,
    HC_SHARED_REFS,
    HC_TABLE_N,
    K_COW,
    RV_SHARED,
    ST_BLOCKED,
)
from vmemsim.kernels.rng import mix64, to_float
from vmemsim.kernels.state import LPAGE_SHIFT, vm_view

CID_ZERO = 0
CID_UNIQUE = -1
CID_UNIQUE_HINT = -2  # a unique page the scanner hashed (a hint that can match nothing)
HINT = np.int64(1 << 62)  # flag on a shareable content id: the page is a hint
CMASK = np.int64((1 << 62) - 1)
GOLD = np.uint64(0x9E3779B97F4A7C15)
APP_SALT = np.uint64(0x5851F42D4C957F2D)
OS_SALT = np.uint64(0x2545F4914F6CDD1D)
EMPTY = -1  # an empty slot of the table


@kernel(inline="always")
def app_shared(app: int, off: int, sfrac: float) -> bool:
    """Whether page `off` of a process of application `app` is one of its shared pages (a
    hash of the application and the page: the same pages in every VM)."""
    return to_float(mix64(np.uint64(app) * GOLD + np.uint64(off))) < sfrac


@kernel(inline="always")
def app_content(app: int, off: int) -> int:
    return np.int64(mix64((np.uint64(app) ^ APP_SALT) + np.uint64(off)) >> np.uint64(2)) | 1


@kernel(inline="always")
def os_content(os_seed: int, g: int) -> int:
    return np.int64(mix64((np.uint64(os_seed) ^ OS_SALT) + np.uint64(g)) >> np.uint64(2)) | 1


@kernel(inline="always")
def content_key(c: int, salt: int) -> int:
    """The scanner's hash of content c under a salt: non-negative, never EMPTY."""
    return np.int64(mix64(np.uint64(c) + np.uint64(salt) * GOLD) >> np.uint64(2))


@kernel(inline="always")
def set_content(v, g: int, c: int) -> None:  # noqa: ANN001
    """GPPN g's content becomes c (never while it is shared: `cow` first); a hint is lost."""
    old = v.cid[g]
    if old == CID_UNIQUE_HINT or (old >= 0 and old & HINT):
        v.vc[C_HINTS] -= 1
    v.cid[g] = c


@kernel(inline="always")
def written(v, g: int) -> None:  # noqa: ANN001
    """A write to private GPPN g: its content is the VM's own from now on."""
    if v.cid[g] != CID_UNIQUE:
        set_content(v, g, CID_UNIQUE)


# ---- the hash table: linear probing, deletion by backward shift (no tombstones) -----------
@kernel
def t_find(h, key: int) -> int:  # noqa: ANN001
    """The slot holding `key`, or -1 - (the empty slot where it would go)."""
    mask = h.skey.size - 1
    i = key & mask
    while True:
        k = h.skey[i]
        if k == key:
            return i
        if k == EMPTY:
            return -1 - i
        i = (i + 1) & mask


@kernel
def t_remove(h, i: int) -> None:  # noqa: ANN001
    """Empty slot i, moving back the entries of its probe run that would be lost behind it."""
    mask = h.skey.size - 1
    j = i
    while True:
        j = (j + 1) & mask
        k = h.skey[j]
        if k == EMPTY:
            break
        home = k & mask
        # The entry at j may move to i only if its home is not cyclically in (i, j].
        if (j > i and (home <= i or home > j)) or (j < i and home <= i and home > j):
            h.skey[i] = k
            h.sval[i] = h.sval[j]
            i = j
    h.skey[i] = EMPTY
    h.hc[HC_TABLE_N] -= 1


@kernel
def t_rehash(skey: np.ndarray, sval: np.ndarray, nkey: np.ndarray, nval: np.ndarray) -> None:
    """Move every entry of one table into another (empty, larger) one."""
    mask = nkey.size - 1
    for i in range(skey.size):
        k = skey[i]
        if k == EMPTY:
            continue
        j = k & mask
        while nkey[j] != EMPTY:
            j = (j + 1) & mask
        nkey[j] = k
        nval[j] = sval[i]


@kernel
def _forget(v, h, g: int) -> None:  # noqa: ANN001
    """Take the shared page of GPPN g's content out of the table (its last reference left)."""
    i = t_find(h, content_key(v.cid[g], v.vc[C_SALT]))
    if i >= 0:
        t_remove(h, i)


@kernel(inline="always")
def _unref(v, g: int) -> None:  # noqa: ANN001
    v.vc[C_SHARED] -= 1
    if v.cid[g] == CID_ZERO:
        v.vc[C_ZERO] -= 1


@kernel
def cow(v, h, g: int) -> bool:  # noqa: ANN001
    """A write to shared GPPN g breaks sharing: g gets a private copy (a new machine page), or
    the page itself when g was its last reference. False (nothing changed) when no machine
    page is free for the copy."""
    m = v.pmap[g]
    r = h.rmap_gppn[m]
    if r > 1:
        if h.hc[HC_MFREE_N] == 0:
            return False
        h.rmap_gppn[m] = r - 1
        m = mpn_alloc(h)
        v.pmap[g] = m
    else:
        _forget(v, h, g)
        h.hc[HC_SHARED_MPNS] -= 1
    h.rmap_vm[m] = v.vm_id
    h.rmap_gppn[m] = g
    h.hc[HC_SHARED_REFS] -= 1
    _unref(v, g)
    v.vc[C_BACKED] += 1
    v.vc[C_COW] += 1
    v.pstate[g] = (v.pstate[g] & ~H_MASK) | H_BACKED
    return True


@kernel(inline="always")
def access(v, h, g: int, now: float, cost: np.ndarray, write: bool) -> tuple:  # noqa: ANN001
    """hostmm.hv_access for a reference that may write: a write to a shared page takes the
    copy-on-write fault first (K_COW). Returns (stall, status). Inlined into the reference
    loop: a call passing the VM's arrays copies ~1.5 KB of arguments (docs/design.md)."""
    if write and v.pstate[g] & H_MASK == H_SHARED:
        if not cow(v, h, g):
            return 0.0, ST_BLOCKED
        s, st = hv_access(v, h, g, now + cost[K_COW], cost)
        return s + cost[K_COW], st
    return hv_access(v, h, g, now, cost)


@kernel
def release(v, h, g: int) -> None:  # noqa: ANN001
    """Drop what holds GPPN g's content (the balloon took the page): for a shared page, one
    reference, and the machine page with the last one. A page given back is zeroes."""
    if v.pstate[g] & H_MASK == H_SHARED:
        m = v.pmap[g]
        r = h.rmap_gppn[m]
        if r > 1:
            h.rmap_gppn[m] = r - 1
        else:
            _forget(v, h, g)
            h.hc[HC_SHARED_MPNS] -= 1
            mpn_free(h, m)
        h.hc[HC_SHARED_REFS] -= 1
        _unref(v, g)
        v.pmap[g] = -1
    else:
        release_content(v, h, g)
    set_content(v, g, CID_ZERO)


@kernel
def release_shared(v, h) -> int:  # noqa: ANN001
    """A VM powers off: drop each of its references to a shared machine page (the page goes
    with its last reference). Returns the references dropped. Its private pages are the
    host's to free (hostmm.release_vm)."""
    n = 0
    for g in range(v.pstate.size):
        if v.pstate[g] & H_MASK == H_SHARED:
            release(v, h, g)
            v.pstate[g] = v.pstate[g] & ~H_MASK  # nothing holds its content now
            n += 1
    return n


@kernel
def _join(v, h, g: int, m: int, c: int) -> None:  # noqa: ANN001
    """Private GPPN g, holding content c, is mapped to shared machine page m; its own page
    is freed."""
    mpn_free(h, v.pmap[g])
    v.pmap[g] = m
    h.rmap_gppn[m] += 1
    h.hc[HC_SHARED_REFS] += 1
    set_content(v, g, c)
    _now_shared(v, g, c)


@kernel(inline="always")
def _now_shared(v, g: int, c: int) -> None:  # noqa: ANN001
    """GPPN g (content c) is now one of the references to a shared machine page: its state
    and the VM's counters (a private page less, a shared one more)."""
    v.pstate[g] = (v.pstate[g] & ~H_MASK) | H_SHARED
    v.vc[C_BACKED] -= 1
    v.vc[C_SHARED] += 1
    v.vc[C_SHARE_OPS] += 1
    if c == CID_ZERO:
        v.vc[C_ZERO] += 1


@kernel(inline="always")
def _hint_value(i: int, g: int) -> int:
    return -2 - ((np.int64(i) << 32) | g)


@kernel
def scan(P, h, i: int, n: int, may_break: bool) -> int:  # noqa: ANN001 - VMPool
    """The sharing scanner visits n pages of VM i, in the order of a fixed permutation of its
    GPPNs (a pass covers every page once). A page in a 2 MB large page is not shared: with
    `may_break` the scanner breaks that large page first (the caller charges its cost), else
    it passes by. Returns the large pages broken."""
    v = vm_view(P, i)
    n_gppn = v.pstate.size
    cur = v.vc[C_SCAN_CURSOR]
    stride = v.vc[C_SCAN_STRIDE]
    salt = v.vc[C_SALT]
    broke = 0
    for _ in range(n):
        g = (cur * stride) % n_gppn
        cur += 1
        if cur >= n_gppn:
            cur = 0
        r = g >> LPAGE_SHIFT
        if v.lpage[r] == 0:
            if not may_break:
                continue
            v.lpage[r] = 1
            v.vc[C_LP_BROKEN] += 1
            broke += 1
        if v.pstate[g] & H_MASK != H_BACKED:
            continue
        v.vc[C_SCANNED] += 1
        c = v.cid[g]
        if c < 0:
            if c == CID_UNIQUE:
                v.cid[g] = CID_UNIQUE_HINT
                v.vc[C_HINTS] += 1
            continue
        content = c & CMASK
        key = content_key(content, salt)
        slot = t_find(h, key)
        if slot < 0:  # first of its content: a hint
            s = -1 - slot
            h.skey[s] = key
            h.sval[s] = _hint_value(i, g)
            h.hc[HC_TABLE_N] += 1
            if not c & HINT:
                v.cid[g] = c | HINT
                v.vc[C_HINTS] += 1
            continue
        val = h.sval[slot]
        if val >= 0:  # a shared page of this content: share it
            _join(v, h, g, val, content)
            continue
        hv = -2 - val
        j = hv >> 32
        gj = hv & 0xFFFFFFFF
        if j == i and gj == g:
            continue  # its own hint
        w = vm_view(P, j)
        cj = w.cid[gj]
        if (w.pstate[gj] & H_MASK != H_BACKED or cj < 0 or not cj & HINT
                or cj & CMASK != content or w.vc[C_SALT] != salt):
            # A stale hint (the page changed, or left): this page is the hint now.
            h.sval[slot] = _hint_value(i, g)
            if not c & HINT:
                v.cid[g] = c | HINT
                v.vc[C_HINTS] += 1
            continue
        # Verified (equal content ids): the hint's machine page becomes the shared one.
        m = w.pmap[gj]
        w.cid[gj] = content
        w.vc[C_HINTS] -= 1
        h.rmap_vm[m] = RV_SHARED
        h.rmap_gppn[m] = 1
        _now_shared(w, gj, content)
        h.hc[HC_SHARED_MPNS] += 1
        h.hc[HC_SHARED_REFS] += 1
        h.sval[slot] = m
        _join(v, h, g, m, content)
    v.vc[C_SCAN_CURSOR] = cur
    return broke


@kernel
def os_image(v, n: int, os_seed: int) -> None:  # noqa: ANN001
    """The guest kernel's frames [0, n) hold its OS image."""
    for g in range(n):
        v.cid[g] = os_content(os_seed, g)
