"""Hypervisor-side page operations: machine-page allocation, hypervisor faults, host swapping,
memory compression, and the devices. Every function keeps the pmap, pstate, reverse map and
counters in step.

Devices are FIFO queues in absolute simulated time: one server that completes a request every
`service` seconds (1 / iops), each request also taking `latency`. The timeline
(kernels.timeline) submits requests in the order of their simulated times, whichever VM or
thread issues them, so a single "busy until" time per device is the whole queue.
"""

import numpy as np

from vmemsim.kernels.freelists import bm_put, bm_take, fpop, lpush
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import (
    C_BACKED,
    C_BOOT_CURSOR,
    C_HSWAP_CURSOR,
    C_HSWAP_FREE_N,
    C_HV_FIRST,
    C_HV_SAMPLE,
    C_SAMPLE_TOUCHED,
    C_SWAPPED,
    C_SWIN,
    C_SWOUT,
    C_TOUCHED,
    C_UNZIP,
    C_ZIP,
    C_ZIP_MPNS,
    C_ZIPPED,
    C_ZQ_HEAD,
    C_ZQ_TAIL,
    C_ZSLOT_BUMP,
    C_ZSLOT_FREE_N,
    C_ZSLOT_HEAD,
    G_BITS,
    H_BACKED,
    H_BITS,
    H_FAST,
    H_MASK,
    H_SAMPLED,
    H_SHARED,
    H_SWAPPED,
    H_TOUCHED,
    H_UNBACKED,
    H_ZIPPED,
    HC_MFREE_BUMP,
    HC_MFREE_HEAD,
    HC_MFREE_N,
    HT_DEV_BUSY,
    K_DECOMPRESS,
    K_HDEV_LAT,
    K_HDEV_SVC,
    K_HV_FIRST,
    K_HV_SAMPLE,
    R_OVERHEAD,
    R_ZIPCACHE,
    ST_BLOCKED,
    ST_OK,
    T_IOW_WALL,
)
from vmemsim.kernels.rng import load, mix64, next_below, step, store, to_below

RECLAIM_AHEAD = 16  # probes host_reclaim loads ahead of use


@kernel(inline="always")
def dev_io(busy: np.ndarray, idx: int, now: float, latency: float, service: float) -> float:
    """One I/O submitted at `now` to a FIFO device that serves one request per `service`
    seconds (`busy[idx]`: when it is free); returns the time until it completes. Work
    conserving: a request starts as soon as the device is free after it arrives."""
    start = max(now, busy[idx])
    busy[idx] = start + service
    return start - now + latency


@kernel(inline="always")
def dev_read(v, busy: np.ndarray, idx: int, now: float, latency: float,  # noqa: ANN001
             service: float) -> float:
    """A read the VM's thread waits for: dev_io, its wait counted as the VM's I/O wait."""
    w = dev_io(busy, idx, now, latency, service)
    v.vt[T_IOW_WALL] += w
    return w


@kernel
def mpn_alloc(h) -> int:  # noqa: ANN001 - HostArrays
    if h.hc[HC_MFREE_N] == 0:
        return -1
    h.hc[HC_MFREE_N] -= 1
    m = fpop(h.rmap_gppn, h.hc, HC_MFREE_HEAD, HC_MFREE_BUMP, h.rmap_gppn.size)
    # The next pop reads the new head's link, and the mapping writes its reverse map: freed
    # pages are scattered over the host, so start loading them now (results do not change).
    nxt = h.hc[HC_MFREE_HEAD]
    if nxt >= 0:
        prefetch(h.rmap_gppn, nxt)
        prefetch(h.rmap_vm, nxt)
    return m


@kernel
def mpn_free(h, m: int) -> None:  # noqa: ANN001
    h.rmap_vm[m] = -1
    lpush(h.rmap_gppn, h.hc, HC_MFREE_HEAD, m)
    h.hc[HC_MFREE_N] += 1


@kernel
def overhead_alloc(h, vm_id: int, n: int) -> int:  # noqa: ANN001
    """Power-on: take n machine pages for the VM's overhead (page tables, frame buffer, ...)."""
    for i in range(n):
        m = mpn_alloc(h)
        if m < 0:
            return i
        h.rmap_vm[m] = vm_id
        h.rmap_gppn[m] = R_OVERHEAD
    return n


@kernel
def _map(v, h, g: int, m: int) -> None:  # noqa: ANN001
    v.pmap[g] = m
    h.rmap_vm[m] = v.vm_id
    h.rmap_gppn[m] = g
    v.vc[C_BACKED] += 1


@kernel(inline="always")
def _zq_unlink(v, slot: int) -> None:  # noqa: ANN001
    """Take a slot out of the compression cache's FIFO (zlinks: older at 2s, newer at 2s+1)."""
    older = v.zlinks[2 * slot]
    newer = v.zlinks[2 * slot + 1]
    if older >= 0:
        v.zlinks[2 * older + 1] = newer
    else:
        v.vc[C_ZQ_HEAD] = newer
    if newer >= 0:
        v.zlinks[2 * newer] = older
    else:
        v.vc[C_ZQ_TAIL] = older
    v.zlinks[2 * slot] = -1
    v.zlinks[2 * slot + 1] = -1


@kernel(inline="always")
def _zq_append(v, slot: int) -> None:  # noqa: ANN001
    """A newly compressed page's slot joins the FIFO as its newest."""
    tail = v.vc[C_ZQ_TAIL]
    v.zlinks[2 * slot] = tail
    v.zlinks[2 * slot + 1] = -1
    if tail >= 0:
        v.zlinks[2 * tail + 1] = slot
    else:
        v.vc[C_ZQ_HEAD] = slot
    v.vc[C_ZQ_TAIL] = slot


@kernel
def zip_slot_release(v, h, slot: int) -> int:  # noqa: ANN001
    """Free a compression-cache slot; return a machine page the cache no longer needs, or -1."""
    _zq_unlink(v, slot)
    lpush(v.zowner, v.vc, C_ZSLOT_HEAD, slot)
    n = v.vc[C_ZSLOT_FREE_N]
    v.vc[C_ZSLOT_FREE_N] = n + 1
    used = v.zowner.size - (n + 1)
    # `per` slots share a machine page: keep ceil(used / per) pages.
    per = np.int64(v.content[2])
    if v.vc[C_ZIP_MPNS] * per - used >= per:
        k = v.vc[C_ZIP_MPNS] - 1
        v.vc[C_ZIP_MPNS] = k
        return v.zmpns[k]
    return -1


@kernel
def _swap_slot_release(v, slot: int) -> None:  # noqa: ANN001
    bm_put(v.hswap_bits, slot)
    v.vc[C_HSWAP_FREE_N] += 1


@kernel
def release_content(v, h, g: int) -> None:  # noqa: ANN001
    """Drop whatever holds GPPN g's content at host level (the balloon took the page)."""
    st = v.pstate[g] & H_MASK
    if st == H_BACKED:
        mpn_free(h, v.pmap[g])
        v.vc[C_BACKED] -= 1
    elif st == H_SWAPPED:
        _swap_slot_release(v, v.pmap[g])
        v.vc[C_SWAPPED] -= 1
    elif st == H_ZIPPED:
        m = zip_slot_release(v, h, v.pmap[g])
        if m >= 0:
            mpn_free(h, m)
        v.vc[C_ZIPPED] -= 1
    v.pmap[g] = -1


@kernel
def hv_access(v, h, g: int, now: float, cost: np.ndarray) -> tuple:  # noqa: ANN001
    """A guest access to GPPN g that missed the fast path: take the hypervisor fault it needs.

    Returns (stall seconds, status). On ST_BLOCKED (no machine page free) nothing changed.
    """
    hs = v.pstate[g]
    st = hs & H_MASK
    if st == H_SHARED:
        # A read of a shared page (a write took kernels.sharing.cow first): it stays shared,
        # so every reference to it comes here, where sampling and touching are seen.
        stall = 0.0
        if hs & H_SAMPLED:
            v.vc[C_SAMPLE_TOUCHED] += 1
            v.vc[C_HV_SAMPLE] += 1
            stall = cost[K_HV_SAMPLE]
        if not hs & H_TOUCHED:
            v.vc[C_TOUCHED] += 1
        v.pstate[g] = (hs & G_BITS) | H_SHARED | H_TOUCHED
        return stall, ST_OK
    m = -1
    if st != H_BACKED:
        if st == H_ZIPPED:
            # Peek whether freeing the slot would leave a cache page spare, to reuse it.
            used_after = v.zowner.size - v.vc[C_ZSLOT_FREE_N] - 1
            per = np.int64(v.content[2])
            if v.vc[C_ZIP_MPNS] * per - used_after < per and h.hc[HC_MFREE_N] == 0:
                return 0.0, ST_BLOCKED
        elif h.hc[HC_MFREE_N] == 0:
            return 0.0, ST_BLOCKED
    stall = 0.0
    if hs & H_SAMPLED:
        v.vc[C_SAMPLE_TOUCHED] += 1
        v.vc[C_HV_SAMPLE] += 1
        stall += cost[K_HV_SAMPLE]
    if st != H_BACKED:
        if st == H_SWAPPED:
            _swap_slot_release(v, v.pmap[g])
            v.vc[C_SWAPPED] -= 1
            v.vc[C_SWIN] += 1
            stall += dev_read(v, h.ht, HT_DEV_BUSY, now + stall, cost[K_HDEV_LAT],
                              cost[K_HDEV_SVC])
            m = mpn_alloc(h)
        elif st == H_ZIPPED:
            m = zip_slot_release(v, h, v.pmap[g])
            if m < 0:
                m = mpn_alloc(h)
            v.vc[C_ZIPPED] -= 1
            v.vc[C_UNZIP] += 1
            stall += cost[K_DECOMPRESS]
        else:  # unbacked or a deflated balloon page: demand allocation of a zeroed page
            m = mpn_alloc(h)
            v.vc[C_HV_FIRST] += 1
            stall += cost[K_HV_FIRST]
        _map(v, h, g, m)
    if not hs & H_TOUCHED:
        v.vc[C_TOUCHED] += 1
    v.pstate[g] = (hs & G_BITS) | H_FAST  # sampled bit cleared: the mapping is valid again
    return stall, ST_OK


# Content model. GPPN g's compressed size, as a fraction of a page, is F^-1(u(g)), u(g) a
# fixed hash of g in [0, 1) and F the CDF below: piecewise linear through (0, 0),
# (1/2, compressible) and (1, 1), so that `compressible` of the pages fit in 2 KiB (the VM's
# parameter) and the rest spread up to a whole page. A page fits a slot of zip_threshold of a
# page exactly when u(g) < F(zip_threshold): the kernel compares the hash with that share.
HALF_PAGE = 0.5  # 2 KiB: the size `compressible` is the share of pages at or under


def fit_share(compressible: float, zip_threshold: float) -> float:
    """F(zip_threshold): the share of a VM's pages that compress to zip_threshold of a page or
    less, for a VM with `compressible` of its pages compressing to 2 KiB or less."""
    z = min(max(zip_threshold, 0.0), 1.0)
    if z <= HALF_PAGE:
        return compressible * z / HALF_PAGE
    return compressible + (1.0 - compressible) * (z - HALF_PAGE) / (1.0 - HALF_PAGE)


def compressed_size(compressible: float, u: float) -> float:
    """F^-1(u): the compressed size (fraction of a page) of a page whose hash is u (tests and
    documentation; the kernels compare hashes with fit_share instead)."""
    if compressible > 0 and u < compressible:
        return HALF_PAGE * u / compressible
    if compressible >= 1.0:
        return HALF_PAGE
    return HALF_PAGE + (1.0 - HALF_PAGE) * (u - compressible) / (1.0 - compressible)


def slots_per_page(zip_threshold: float) -> int:
    """Compression-cache slots of zip_threshold of a page in one machine page."""
    return max(1, int(1.0 / zip_threshold + 1e-9))


@kernel
def compressible(v, g: int) -> bool:  # noqa: ANN001
    """Content model: whether GPPN g compresses into one cache slot (see fit_share)."""
    return mix64(v.content[0] ^ np.uint64(g)) < v.content[1]


@kernel
def _zip_evict_oldest(v, h) -> int:  # noqa: ANN001
    """Move the cache's oldest compressed page to host swap, to make room; return 1, or 0 if
    it cannot (no swap slot, or an empty cache)."""
    slot = v.vc[C_ZQ_HEAD]
    if v.vc[C_HSWAP_FREE_N] == 0 or slot < 0:
        return 0
    g = v.zowner[slot]
    m = zip_slot_release(v, h, slot)
    if m >= 0:
        mpn_free(h, m)
    v.vc[C_HSWAP_FREE_N] -= 1
    v.pmap[g] = bm_take(v.hswap_bits, v.vc, C_HSWAP_CURSOR)
    v.pstate[g] = (v.pstate[g] & ~H_MASK) | H_SWAPPED
    v.vc[C_ZIPPED] -= 1
    v.vc[C_SWAPPED] += 1
    v.vc[C_SWOUT] += 1
    return 1


@kernel
def host_reclaim(v, h, want: int, use_zip: bool, use_swap: bool,  # noqa: ANN001
                 max_writes: int) -> int:
    """Reclaim up to `want` machine pages from one VM behind the guest's back.

    Victims are GPPNs chosen uniformly at random (ESX keeps no LRU at this level). A victim that
    compresses into one of the cache's slots (zip_threshold of a page) is compressed (when the
    cache is full, its oldest page goes to swap to make room); otherwise it is swapped out.
    The call is one batch: it ends once `max_writes` pages went to swap (the caller, the
    swapper in kernels.timeline, writes them as one cluster) or as many were compressed.
    Returns machine pages actually freed; the pages written are C_SWOUT's increase.
    """
    if want <= 0:
        return 0
    n_gppn = v.pstate.size
    freed = 0
    writes = 0
    zips = 0
    probes = 0
    # Probes for one batch: a victim needs 1 / (share of pages backed) of them; past this
    # many the VM has nothing left to take (the batch would only probe in vain).
    max_probes = 8 * min(want, 2 * max_writes) + 256
    n_zslots = v.zowner.size
    # Random victims are scattered over the VM's tables, so two more copies of the stream run
    # ahead of the probes: one RECLAIM_AHEAD probes on starts loading the candidate's state and
    # pmap entry, one half as far reads that entry and starts loading its machine page's
    # reverse map. The probes themselves take the same draws as without them.
    st = load(v.rng)
    far_st = st
    mid_st = st
    for _ in range(RECLAIM_AHEAD):
        x, far_st = step(far_st)
        ga = to_below(x, n_gppn)
        prefetch(v.pstate, ga)
        prefetch(v.pmap, ga)
    for _ in range(RECLAIM_AHEAD // 2):
        x, mid_st = step(mid_st)
    while freed < want and probes < max_probes and zips < max_writes and writes < max_writes:
        probes += 1
        x, far_st = step(far_st)
        ga = to_below(x, n_gppn)
        prefetch(v.pstate, ga)
        prefetch(v.pmap, ga)
        x, mid_st = step(mid_st)
        gm = to_below(x, n_gppn)
        if v.pstate[gm] & H_MASK == H_BACKED:
            prefetch(h.rmap_gppn, v.pmap[gm])
            prefetch(h.rmap_vm, v.pmap[gm])
        x, st = step(st)
        g = to_below(x, n_gppn)
        hs = v.pstate[g]
        if hs & H_MASK != H_BACKED:
            continue
        m = v.pmap[g]
        if use_zip and n_zslots > 0 and compressible(v, g):
            if v.vc[C_ZSLOT_FREE_N] == 0:
                if not use_swap or writes >= max_writes or _zip_evict_oldest(v, h) == 0:
                    continue
                writes += 1
            k = v.vc[C_ZSLOT_FREE_N] - 1
            v.vc[C_ZSLOT_FREE_N] = k
            slot = fpop(v.zowner, v.vc, C_ZSLOT_HEAD, C_ZSLOT_BUMP, n_zslots)
            v.zowner[slot] = g
            _zq_append(v, slot)
            used = n_zslots - k
            if used > np.int64(v.content[2]) * v.vc[C_ZIP_MPNS]:
                # The cache grows by one page: keep the victim's own page for it.
                v.zmpns[v.vc[C_ZIP_MPNS]] = m
                v.vc[C_ZIP_MPNS] += 1
                h.rmap_gppn[m] = R_ZIPCACHE
            else:
                mpn_free(h, m)
                freed += 1
            v.pmap[g] = slot
            v.pstate[g] = (hs & ~H_MASK) | H_ZIPPED
            v.vc[C_BACKED] -= 1
            v.vc[C_ZIPPED] += 1
            v.vc[C_ZIP] += 1
            zips += 1
            continue
        if not use_swap or v.vc[C_HSWAP_FREE_N] == 0 or writes >= max_writes:
            if not use_zip:
                break
            continue
        v.vc[C_HSWAP_FREE_N] -= 1
        v.pmap[g] = bm_take(v.hswap_bits, v.vc, C_HSWAP_CURSOR)
        v.pstate[g] = (hs & ~H_MASK) | H_SWAPPED
        mpn_free(h, m)
        v.vc[C_BACKED] -= 1
        v.vc[C_SWAPPED] += 1
        v.vc[C_SWOUT] += 1
        freed += 1
        writes += 1
        if writes >= max_writes and not use_zip:
            break
    store(v.rng, st)
    return freed


@kernel
def boot_touch(v, h, end: int, budget: float, now: float, cost: np.ndarray) -> float:  # noqa: ANN001
    """The guest zeroes its memory at boot: touch GPPNs from the boot cursor up to `end`.

    Returns the time used; stops early when the budget is spent or no machine page is free.
    """
    t = 0.0
    g = v.vc[C_BOOT_CURSOR]
    while g < end and t < budget:
        if v.pstate[g] & H_BITS != H_FAST:
            stall, status = hv_access(v, h, g, now + t, cost)
            if status == ST_BLOCKED:
                break
            t += stall
        t += cost[K_HV_FIRST] * 0.1  # the guest's own zeroing work
        g += 1
    v.vc[C_BOOT_CURSOR] = g
    return t


@kernel
def release_vm(h, vm_id: int) -> int:  # noqa: ANN001 - HostArrays
    """A VM powers off: free every machine page it owns (backing its pages, its compression
    cache, its overhead), in MPN order. Returns the pages freed. Its own arrays are reset
    apart (build.reset_vm)."""
    n = 0
    for m in range(h.rmap_vm.size):
        if h.rmap_vm[m] == vm_id:
            mpn_free(h, m)
            n += 1
    return n


@kernel
def back_all(v, h) -> int:  # noqa: ANN001
    """A VM arrives by vMotion with its memory touched: back every GPPN that holds no
    content, in GPPN order, while machine pages are free. Returns the pages backed."""
    n = 0
    for g in range(v.pstate.size):
        hs = v.pstate[g]
        if hs & H_MASK != H_UNBACKED:
            continue
        m = mpn_alloc(h)
        if m < 0:
            break
        _map(v, h, g, m)
        v.pstate[g] = (hs & (0xFF ^ H_MASK)) | H_BACKED  # not touched in this period
        n += 1
    return n


@kernel
def start_sampling(v, n: int) -> None:  # noqa: ANN001
    """Pick n distinct GPPNs at random and invalidate their mappings (ESX active sampling)."""
    n_gppn = v.pstate.size
    n = min(n, n_gppn)
    for i in range(n):
        while True:
            g = next_below(v.rng, n_gppn)
            if not v.pstate[g] & H_SAMPLED:
                break
        v.pstate[g] |= H_SAMPLED
        v.sample[i] = g
    for i in range(n, v.sample.size):
        v.sample[i] = -1


@kernel
def end_sampling(v) -> None:  # noqa: ANN001
    for i in range(v.sample.size):
        g = v.sample[i]
        if g >= 0:
            v.pstate[g] &= ~H_SAMPLED
            v.sample[i] = -1


@kernel
def clear_touched(v) -> None:  # noqa: ANN001
    """Start a new ground-truth period: forget which pages were touched (once per period)."""
    hs = v.pstate
    for g in range(hs.size):
        hs[g] &= ~H_TOUCHED
    v.vc[C_TOUCHED] = 0
