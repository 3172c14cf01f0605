"""The reference path: the compiled loop that runs one thread of a process.

Each thread generates page references from its process's workload, from its clock up to a
limit the timeline sets (kernels.timeline). Every reference goes through both translations:

    GVPN --guest page table (pt)--> GPPN --pmap--> MPN

A reference that finds a mapped GPPN whose machine page is mapped and already touched this
period (pstate & H_BITS == H_FAST) is a hit: it costs the workload's per-reference CPU time and one
policy update. Anything else takes the fault of the level that missed.

Time is absolute simulated time. A thread runs at its share of a vCPU (PP_SPEED): its CPU
costs (PP_COST and the CPU entries of its cost row) are already divided by it, so they are wall
time; device waits are wall time as they are. Hits touch nothing another agent reads, so a
thread runs hits past the others' clocks (up to `skew`); a miss, which may reach a device or
the host's free memory, waits until no other agent is behind it (the `horizon`): every device
then sees requests in the order of their simulated times.
"""


import numpy as np

from vmemsim.guest.policies.dispatch import on_hit, on_insert, warm
from vmemsim.kernels.guestmm import (
    gfree_pop,
    gfree_push,
    gswap_release,
    guest_reclaim,
    set_guest,
)
from vmemsim.kernels.hostmm import dev_read, hv_access
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import (
    AHEAD,
    AHEAD_FAR_WSS,
    AHEAD_MIN_WSS,
    AHEAD_NEAR,
    C_FILE_IN,
    C_GFAULT,
    C_GFREE_N,
    C_GSWAP_FREE_N,
    C_GSWAP_SLOTS,
    C_GSWAPPED,
    C_GSWIN,
    C_MMU_TRAPS,
    C_OOM,
    C_PT_EVENTS,
    C_REFS,
    C_TLB_MISS,
    C_USER_FRAMES,
    FSLOT_FILE,
    FSLOT_NONE,
    G_DIRTY,
    G_USER,
    H_BACKED,
    H_BALLOON,
    H_BITS,
    H_FAST,
    H_MASK,
    H_SAMPLED,
    H_SHARED,
    H_SWAPPED,
    HC_MFREE_N,
    HC_SCARCE,
    K_GDEV_LAT,
    K_GDEV_SVC,
    K_GUEST_FAULT,
    K_HIDDEN,
    K_WALK,
    PP_AHEAD,
    PP_APP,
    PP_BASE,
    PP_CARRY_CPU,
    PP_CARRY_IO,
    PP_CARRY_RUN,
    PP_CLOCK,
    PP_COST,
    PP_DIST,
    PP_FILE,
    PP_HOT_FRAC,
    PP_HOT_PROB,
    PP_HV_LARGE,
    PP_KPAGES,
    PP_KREF,
    PP_LARGE,
    PP_MMU,
    PP_OFFSET,
    PP_ROW0,
    PP_ROW1,
    PP_SHARE,
    PP_SPEED,
    PP_STRIDE,
    PP_TOFF,
    PP_WRITE,
    PP_WSS,
    PS_CRING,
    PS_CURSOR,
    PS_PENDING,
    PS_PENDING_W,
    PS_REFS,
    PS_RING,
    PS_SHARED,
    PS_TLEN,
    PS_TPOS,
    PTE_SWAP0,
    ST_BLOCKED,
    ST_DONE,
    ST_YIELD,
    T_BLOCKED,
    T_FAULT,
    T_GDEV_BUSY,
    T_IOW_WALL,
    T_IOWAIT,
    T_MMU,
    T_RUN,
    T_WALK,
    W_SNAP,
    W_STATE,
    WM_HIGH,
    WM_LOW,
)
from vmemsim.kernels.mmu import break_large, has_large, slice_events
from vmemsim.kernels.mmu import lookup as tlb_lookup
from vmemsim.kernels.mmu import miss as tlb_miss
from vmemsim.kernels.mmu import refill as tlb_refill
from vmemsim.kernels.rng import load, mix64, step, store, to_below, to_float
from vmemsim.kernels.sharing import (
    CID_UNIQUE,
    access,
    app_content,
    app_shared,
    set_content,
    written,
)

ZIPF_BITS = 12
ZIPF_KNOTS = 1 << ZIPF_BITS  # the inverse power law is tabulated at this many points per process
_FRAC_BITS = 53 - ZIPF_BITS
_FRAC_MASK = np.uint64((1 << _FRAC_BITS) - 1)
_FRAC_SCALE = 1.0 / (1 << _FRAC_BITS)


@kernel(inline="always")
def draw(st: tuple, dist: int, wss: int, zt: np.ndarray, stride: int,
         inv_wss: float, hot: int, hot_prob: float, cursor: int) -> tuple:
    """One page index in [0, wss) from the process's distribution, from the generator state
    `st` (rng.step); returns (index, cursor, state).

    zipf inverts the continuous power law, rank = x(u) - 1 with x(u) = (c u + 1) ** e (rank 0
    hottest), read from a table of x at ZIPF_KNOTS + 1 points (zipf_table) with linear
    interpolation: a pow per reference would cost more than the rest of the reference. u has
    53 random bits; u * ZIPF_KNOTS splits exactly into the knot (the top ZIPF_BITS) and the
    fraction (the rest), with shifts instead of float conversions. Ranks are spread over the
    working set by a stride coprime to wss (a permutation), reduced without a division.
    """
    if dist == 0:  # uniform
        x, st = step(st)
        return to_below(x, wss), cursor, st
    if dist == 1:
        x, st = step(st)
        u = x >> np.uint64(11)
        i = np.int64(u >> np.uint64(_FRAC_BITS))
        f = float(np.int64(u & _FRAC_MASK)) * _FRAC_SCALE
        z0 = zt[i]
        y = z0 + f * (zt[i + 1] - z0)
        r = max(min(np.int64(y) - 1, wss - 1), 0)
        prod = r * stride
        m = prod - np.int64(prod * inv_wss) * wss
        if m < 0:
            m += wss
        elif m >= wss:
            m -= wss
        return m, cursor, st
    if dist == 2:  # hot/cold: hot pages with probability hot_prob
        if hot < wss:
            x, st = step(st)
            if to_float(x) >= hot_prob:
                x, st = step(st)
                return hot + to_below(x, wss - hot), cursor, st
        x, st = step(st)
        return to_below(x, hot), cursor, st
    r = cursor % wss  # sequential scan over the working set
    return r, r + 1, st


def lookahead(wss: int, host_wss: int = 0) -> int:
    """How many references ahead of use a process with a working set of `wss` pages loads
    (PP_AHEAD; 0: none), on a host whose processes' working sets add up to `host_wss` pages.
    Worth it when its page table outgrows the caches closest to the core, or when all of them
    together do, since the other VMs' runs then evict its tables between two of its own (unless
    it is tiny); farther ahead when the tables are mostly in DRAM. The distances were measured
    (docs/performance.md): too short a look-ahead does not cover the wait on L3 or DRAM, too
    long a one costs more than it saves on tables mostly in L2. The references are the same
    whatever the distance."""
    if not (wss > AHEAD_MIN_WSS or (host_wss > AHEAD_MIN_WSS and wss > AHEAD_MIN_WSS // 64)):
        return 0
    return AHEAD if max(wss, host_wss) > AHEAD_FAR_WSS else AHEAD_NEAR


def zipf_table(wss: int, alpha: float) -> np.ndarray:
    """x(u) at u = k / ZIPF_KNOTS: the inverse CDF of a continuous power law over [1, wss+1]."""
    u = np.arange(ZIPF_KNOTS + 1) / ZIPF_KNOTS
    if abs(alpha - 1.0) < 1e-9:
        return np.exp(u * np.log(wss + 1.0))
    e = 1.0 - alpha
    return ((np.power(wss + 1.0, e) - 1.0) * u + 1.0) ** (1.0 / e)


FILE_SALT = np.uint64(0x9E3779B97F4A7C15)  # file-backedness independent of compressibility


@kernel(inline="always")
def file_backed(v, gv: int, ffrac: float) -> bool:  # noqa: ANN001
    """Whether GVPN gv of a process with ffrac of its pages file-backed is one of them: a
    fixed hash, so the same pages on any host."""
    return to_float(mix64((v.content[0] ^ FILE_SALT) + np.uint64(gv))) < ffrac


@kernel
def _dirty(v, g: int) -> None:  # noqa: ANN001
    v.pstate[g] |= G_DIRTY
    written(v, g)  # TPS: its content is the VM's own now
    s = v.fslot[g]
    if s >= 0:  # the swap copy is stale now (a file page stays file-backed, dirty)
        gswap_release(v, s)
        v.fslot[g] = -1


@kernel(inline="always")
def _kernel_ref(u: float, kfrac: float, kscale: float, kpages: int) -> int:
    """The kernel frame a reference goes to if its draw u is under kfrac (the kernel's share
    of references), else -1: u / kfrac is uniform in [0, 1), spread over the active frames."""
    if u < kfrac:
        return min(np.int64(u * kscale), kpages - 1)
    return -1


@kernel(inline="always")
def _draw_ahead(pt: np.ndarray, pstate: np.ndarray, ring: np.ndarray, cring: np.ndarray,
                snap: np.ndarray, k: int, gst: tuple, cursor: int, first: int, dist: int,
                wss: int, zt: np.ndarray, stride: int, inv_wss: float, hot: int,
                hot_prob: float, wthr: float, kfrac: float, kscale: float,
                kpages: int) -> tuple:
    """The look-ahead's next reference into ring slot k, as (GVPN << 1) | write, or ~GPPN for
    a kernel reference, with the generator's state and scan cursor before it (to rewind to);
    starts loading its page-table entry. Returns the generator's state and cursor after it."""
    store(snap, gst, 4 * k)
    cring[k] = cursor
    r, c2, gst = draw(gst, dist, wss, zt, stride, inv_wss, hot, hot_prob, cursor)
    x, gst = step(gst)
    u = to_float(x)
    kg = _kernel_ref(u, kfrac, kscale, kpages)
    if kg >= 0:  # the draw is spent, but a scan does not move on
        prefetch(pstate, kg)
        ring[k] = ~kg
        return gst, cursor
    prefetch(pt, first + r)
    ring[k] = ((first + r) << 1) | (1 if u < wthr else 0)
    return gst, c2


@kernel(inline="always")
def _ordered(v, h, pte: int, shared_gdev: bool) -> bool:  # noqa: ANN001
    """Whether a miss must wait until no agent is behind its thread: it reads a device others
    use (the host's swap device; the guest's, when another thread of the VM runs), or it may
    take a machine page while they are scarce (who gets the last ones must follow time).
    Other misses touch only the VM's own pages, which `skew` keeps in step."""
    scarce = h.hc[HC_MFREE_N] < h.hc[HC_SCARCE]
    if pte < 0:
        return shared_gdev or scarce
    hs = v.pstate[pte] & H_MASK
    return hs == H_SWAPPED or (scarce and hs != H_BACKED)


@kernel(inline="always")
def _no_page_needed(v, g: int, w: bool) -> bool:  # noqa: ANN001
    """Whether a reference to mapped GPPN g takes no machine page: it is backed, or it reads
    a shared one (TPS: a write would copy it)."""
    hs = v.pstate[g] & H_MASK
    return hs == H_BACKED or (hs == H_SHARED and not w)


@kernel(inline="ir")
def _run_thread(v, h, th, a: int, horizon: float, near: float, end: float,  # noqa: ANN001
                skew: float, pid: int) -> int:
    """Run thread `a` (a row of `th`, kernels.state.Threads) of VM `v` from its clock until
    the tick's `end`, or until it is more than `skew` past `near` (the earliest clock of the
    other agents of its VM: its other threads and its swapper, which touch its pages), or
    until a miss that must be ordered (see below) finds it past `horizon` (the earliest
    other agent's clock): then that reference waits, unconsumed, for the thread's next turn.
    Returns ST_DONE (end reached, or nothing left to do in this tick), ST_YIELD, or
    ST_BLOCKED (no machine page: it waits out the tick).

    `pid` is the guest policy's id (guest.policies.dispatch). This body is inlined into one
    wrapper per policy below with `pid` a constant, so the compiler drops the other policies'
    branches: a runtime dispatch on the hit path costs over half the speed.
    """
    pp = th.pp
    ps = th.ps
    cost = th.cost[a]
    pol = v.pol
    wm_low = v.wm[WM_LOW]
    wm_high = v.wm[WM_HIGH]
    t0 = pp[a, PP_CLOCK]
    t = t0
    limit = min(end, near + skew)
    if t >= limit or pp[a, PP_WSS] < 1:
        return ST_DONE if t >= end or pp[a, PP_WSS] < 1 else ST_YIELD
    cref = pp[a, PP_COST]
    # Hoisted: the loop below reads only locals on the hit path.
    rng = th.wrng[a, W_STATE:W_SNAP]
    dist = np.int64(pp[a, PP_DIST])
    wss = np.int64(pp[a, PP_WSS])
    first = np.int64(pp[a, PP_BASE]) + np.int64(pp[a, PP_OFFSET])
    zt = th.ztab[a]
    inv_wss = 1.0 / wss
    stride = np.int64(pp[a, PP_STRIDE])
    hot = max(np.int64(1), np.int64(wss * pp[a, PP_HOT_FRAC]))
    hot_prob = pp[a, PP_HOT_PROB]
    # A reference's second draw u says both whether it goes to the kernel (u < kfrac) and
    # whether it writes (kfrac <= u < wthr): with no kernel references, the streams are those
    # of a workload alone.
    kfrac = pp[a, PP_KREF]
    kpages = np.int64(pp[a, PP_KPAGES])
    kscale = kpages / kfrac if kfrac > 0 else 0.0
    wthr = kfrac + pp[a, PP_WRITE] * (1.0 - kfrac)
    ffrac = pp[a, PP_FILE]
    sfrac = pp[a, PP_SHARE]  # TPS: share of its pages its application has in other VMs
    app = np.int64(pp[a, PP_APP])
    cursor = ps[a, PS_CURSOR]
    toff = np.int64(pp[a, PP_TOFF])
    tpos = ps[a, PS_TPOS]
    tlen = ps[a, PS_TLEN]
    tbase = np.int64(pp[a, PP_BASE])
    tbuf = th.tbuf
    shared_gdev = ps[a, PS_SHARED] != 0
    # The MMU model (kernels.mmu): the thread's TLB, and what its walks cost.
    mmu = np.int64(pp[a, PP_MMU])
    tlb_on = mmu != 0
    shadow = mmu == 2
    lshare = pp[a, PP_LARGE]
    hv_large = pp[a, PP_HV_LARGE] != 0
    large2 = has_large(lshare, hv_large)  # its TLB can hold 2 MB entries
    tlb = th.tlb
    broken = v.lpage  # the VM's broken 2 MB regions: TPS's record and the TLB's
    misses = 0
    traps = 0
    walk_w = 0.0
    last_walk = 0.0  # the last walk's time: it is part of its reference, like cref
    hidden_w = 0.0
    # Look-ahead: references are drawn `far` in front of their use into a ring, and their
    # page-table entries are loaded as they are drawn; halfway through the ring those
    # entries have arrived and the frames' state bytes are loaded too. Far from the caches
    # a reference waits on memory, and this overlaps the waits of the next ones. The ring
    # keeps the generator's state before each reference, so the stream is left exactly
    # after the last reference used: the references do not depend on the look-ahead.
    # Tables that fit in the caches gain nothing from it; how far ahead: see lookahead.
    far = min(np.int64(pp[a, PP_AHEAD]), AHEAD)  # references in flight
    if dist == 4:  # a replayed reference costs less than a drawn one: fewer cover the wait
        far //= 2
    half = far // 2
    big = far > 0
    use_ahead = big and dist != 4
    snap = th.wrng[a, W_SNAP:]
    ring = ps[a, PS_RING:PS_CRING]
    cring = ps[a, PS_CRING:]
    j = 0  # references used from the ring
    st = load(rng)  # the stream, in registers while the loop runs (rng.step)
    gst = st  # the look-ahead's generator
    cursor_g = cursor
    if use_ahead:
        for k in range(far):
            gst, cursor_g = _draw_ahead(v.pt, v.pstate, ring, cring, snap, k, gst, cursor_g,
                                        first, dist, wss, zt, stride, inv_wss, hot,
                                        hot_prob, wthr, kfrac, kscale, kpages)
    refs = 0
    blocked_w = 0.0
    iow0 = v.vt[T_IOW_WALL]
    last_stall = 0.0  # the last miss's fault work and device wait ...
    last_io = 0.0  # ... and of it the wait: to split a reference that runs past the tick
    status = ST_DONE
    pending = ps[a, PS_PENDING]  # a GVPN, or -1; kept in a register while the loop runs
    while t < limit:
        kg = -1  # a kernel reference's GPPN
        gv = 0
        w = False
        if pending != -1:  # the reference that stopped the thread last time goes first
            if pending >= 0:
                gv = pending
                w = ps[a, PS_PENDING_W] != 0
            else:  # -2 - GPPN: a kernel reference
                kg = -2 - pending
            pending = -1
        elif dist == 4:  # trace replay: entries are (page << 1) | write
            if tpos >= tlen:
                break  # nothing more to replay in this tick: the thread idles
            e = tbuf[toff + tpos]
            if big and tpos + far < tlen:
                prefetch(v.pt, tbase + (tbuf[toff + tpos + far] >> 1))
                pm = v.pt[tbase + (tbuf[toff + tpos + half] >> 1)]
                if pm >= 0:
                    prefetch(v.pstate, pm)
                    warm(pid, pol, pm)
            tpos += 1
            gv = tbase + (e >> 1)
            w = (e & 1) != 0
        elif use_ahead:
            e = ring[j & (AHEAD - 1)]
            if e < 0:
                kg = ~e
            else:
                gv = e >> 1
                w = (e & 1) != 0
            # Draw the reference `far` further on, into its slot.
            gst, cursor_g = _draw_ahead(v.pt, v.pstate, ring, cring, snap,
                                        (j + far) & (AHEAD - 1), gst, cursor_g, first, dist,
                                        wss, zt, stride, inv_wss, hot, hot_prob, wthr, kfrac,
                                        kscale, kpages)
            eh = ring[(j + half) & (AHEAD - 1)]
            if eh >= 0:
                pm = v.pt[eh >> 1]
                if pm >= 0:
                    prefetch(v.pstate, pm)
                    warm(pid, pol, pm)
            j += 1
        else:
            r, c2, st = draw(st, dist, wss, zt, stride, inv_wss, hot, hot_prob, cursor)
            x, st = step(st)
            u = to_float(x)
            kg = _kernel_ref(u, kfrac, kscale, kpages)
            if kg < 0:
                cursor = c2
                gv = first + r
                w = u < wthr
        if kg >= 0:
            # The guest kernel's active frames: never evicted by the guest (no policy list),
            # but the host may have sampled, swapped or compressed them.
            pst = v.pstate[kg]
            if pst & H_BITS == H_FAST:
                t += cref
                refs += 1
                continue
            if t > horizon and _ordered(v, h, kg, shared_gdev):
                pending = -2 - kg
                status = ST_YIELD
                break
            if h.hc[HC_MFREE_N] == 0 and pst & H_MASK != H_BACKED and (
                    pst & H_MASK != H_SHARED):  # (a read of a shared page needs none)
                pending = -2 - kg
                status = ST_BLOCKED
                break
            io_at = v.vt[T_IOW_WALL]
            stall, hst = hv_access(v, h, kg, t, cost)
            if hst == ST_BLOCKED:
                pending = -2 - kg
                status = ST_BLOCKED
                break
            t += cref + stall
            refs += 1
            last_stall = stall
            last_io = v.vt[T_IOW_WALL] - io_at
            continue
        pte = v.pt[gv]
        if pte >= 0:
            pst = v.pstate[pte]
            if pst & H_BITS == H_FAST:  # hit at both levels
                on_hit(pid, pol, pte)
                if w and not pst & G_DIRTY:
                    _dirty(v, pte)
                if tlb_on and not tlb_lookup(tlb, a, gv, large2):
                    last_walk = cost[K_WALK + tlb_miss(tlb, a, gv, pte, lshare, hv_large,
                                                       broken)]
                    walk_w += last_walk
                    misses += 1
                    t += last_walk
                t += cref
                refs += 1
                continue
        if t > horizon and _ordered(v, h, pte, shared_gdev):
            pending = gv
            ps[a, PS_PENDING_W] = 1 if w else 0
            status = ST_YIELD
            break
        if h.hc[HC_MFREE_N] == 0 and not (pte >= 0 and _no_page_needed(v, pte, w)):
            # No machine page for the fault: the thread waits for the host to free memory.
            pending = gv
            ps[a, PS_PENDING_W] = 1 if w else 0
            status = ST_BLOCKED
            break
        stall = 0.0
        io_at = v.vt[T_IOW_WALL]
        if pte >= 0:
            g = pte
            on_hit(pid, pol, g)
        else:
            v.vc[C_GFAULT] += 1
            stall += cost[K_GUEST_FAULT]
            if v.vc[C_GFREE_N] <= wm_low:
                stall += guest_reclaim(v, h, pol, pid, max(wm_high, 1), t + stall, cost)
            g = gfree_pop(v)
            if g < 0:  # out of memory and swap: the guest would kill something
                v.vc[C_OOM] += 1
                t += cref + stall
                continue
            # The guest fills the frame (zeroes it, or DMA from its swap): a write through
            # the pmap, which may itself fault at the hypervisor.
            if v.pstate[g] & H_BITS != H_FAST:  # filling a frame writes it (TPS: a COW)
                s, hst = access(v, h, g, t + stall, cost, True)
                stall += s
                if hst == ST_BLOCKED:
                    # The eviction just used the last machine page: give the frame back.
                    gfree_push(v, g)
                    pending = gv
                    ps[a, PS_PENDING_W] = 1 if w else 0
                    t += stall
                    status = ST_BLOCKED
                    break
            if pte <= PTE_SWAP0:
                stall += dev_read(v, v.vt, T_GDEV_BUSY, t + stall, cost[K_GDEV_LAT],
                                  cost[K_GDEV_SVC])
                v.vc[C_GSWIN] += 1
                v.vc[C_GSWAPPED] -= 1
                if 2 * v.vc[C_GSWAP_FREE_N] < v.vc[C_GSWAP_SLOTS]:
                    # Swap more than half full: Linux frees the slot of a page read back
                    # (vm_swap_full), so that swap does not fill with copies of pages in RAM.
                    gswap_release(v, PTE_SWAP0 - pte)
                    v.fslot[g] = -1
                    set_guest(v, g, G_USER | G_DIRTY)
                else:
                    v.fslot[g] = PTE_SWAP0 - pte  # clean copy stays in swap (swap cache)
                    set_guest(v, g, G_USER)
            elif (sfrac > 0 and app_shared(app, gv - tbase, sfrac)) or (
                    ffrac > 0 and file_backed(v, gv, ffrac)):
                # Page cache: read from the guest's disk (its swap device), clean.
                stall += dev_read(v, v.vt, T_GDEV_BUSY, t + stall, cost[K_GDEV_LAT],
                                  cost[K_GDEV_SVC])
                v.vc[C_FILE_IN] += 1
                v.fslot[g] = FSLOT_FILE
                set_guest(v, g, G_USER)
            else:
                v.fslot[g] = FSLOT_NONE
                set_guest(v, g, G_USER | G_DIRTY)  # anonymous memory: only copy in RAM
            if sfrac > 0 and app_shared(app, gv - tbase, sfrac):
                set_content(v, g, app_content(app, gv - tbase))  # (TPS) its app's page
            else:
                set_content(v, g, CID_UNIQUE)
            v.pt[gv] = g
            v.frame_vpn[g] = gv
            v.vc[C_USER_FRAMES] += 1
            on_insert(pid, pol, g)
        # Whether the translation was invalid (not made yet, or taken away by the host): then
        # no TLB holds it, and shadow paging fills its entry in a hidden fault. (A page only
        # untouched this sampling period is mapped: H_TOUCHED is the simulator's bookkeeping.)
        inval = pte < 0
        if tlb_on:
            hs = v.pstate[g] & H_MASK
            inval = inval or hs != H_BACKED or (v.pstate[g] & H_SAMPLED) != 0
            if hv_large and H_SWAPPED <= hs <= H_BALLOON:  # swapped, compressed, ballooned:
                break_large(tlb, np.int64(pp[a, PP_ROW0]), np.int64(pp[a, PP_ROW1]), gv, g,
                            broken)  # the 2 MB region is broken: shot down in every vCPU
        if v.pstate[g] & H_BITS != H_FAST:
            s, hst = access(v, h, g, t + stall, cost, w)  # TPS: a write to a shared page: COW
            stall += s
            if hst == ST_BLOCKED:
                pending = gv
                ps[a, PS_PENDING_W] = 1 if w else 0
                t += stall
                status = ST_BLOCKED
                break
        if w and not v.pstate[g] & G_DIRTY:
            _dirty(v, g)
        if tlb_on and (inval or not tlb_lookup(tlb, a, gv, large2)):
            last_walk = cost[K_WALK + tlb_refill(tlb, a, gv, g, lshare, hv_large, broken)]
            walk_w += last_walk
            misses += 1
            t += last_walk
            if shadow and inval:  # the hypervisor fills the shadow entry
                stall += cost[K_HIDDEN]
                hidden_w += cost[K_HIDDEN]
                traps += 1
        t += cref + stall
        refs += 1
        last_stall = stall
        last_io = v.vt[T_IOW_WALL] - io_at
    else:
        if t < end:
            status = ST_YIELD  # past the horizon by `skew`: the others catch up first
    trap_w = 0.0  # shadow paging's traps for the slice's page-table events: its last work
    if tlb_on:
        n_ev, n_tr, trap_w = slice_events(pp, a, refs, cost, shadow)
        t += trap_w
        v.vc[C_PT_EVENTS] += n_ev
        v.vc[C_MMU_TRAPS] += n_tr + traps
        v.vc[C_TLB_MISS] += misses
    if use_ahead:  # the stream as it was before the first reference not used
        k = j & (AHEAD - 1)
        st = load(snap, 4 * k)
        cursor = cring[k]
    store(rng, st)
    ps[a, PS_PENDING] = pending
    ps[a, PS_REFS] += refs
    ps[a, PS_CURSOR] = cursor
    ps[a, PS_TPOS] = tpos
    v.vc[C_REFS] += refs
    if status == ST_BLOCKED and t < end:
        blocked_w = end - t  # it waits for machine memory until the tick's end
        t = end
    pp[a, PP_CLOCK] = t
    # Where the slice's wall time went, in vCPU-seconds at the thread's speed. The part of
    # the last reference that runs past the tick's end belongs to the next tick's accounts: a
    # reference's fault work and device wait come before its own cost (cref), so that is
    # what lies past the end first.
    io_w = v.vt[T_IOW_WALL] - iow0
    # A walk is part of its reference's run; traps are fault work, the slice's last.
    run_w = refs * cref + walk_w
    cpu_w = max(0.0, (t - t0) - run_w - io_w - blocked_w)
    over_all = max(0.0, t - end)
    over_trap = min(over_all, trap_w)
    over = over_all - over_trap
    over_run = min(over, cref + last_walk, run_w)
    over_io = min(over - over_run, last_io, io_w)
    # (A hit that runs past the end is all reference: nothing is left for the other two.)
    over_cpu = max(0.0, min(over - over_run - over_io, last_stall - last_io,
                            cpu_w - over_trap)) + over_trap
    pp[a, PP_CARRY_RUN] += over_run
    pp[a, PP_CARRY_IO] += over_io
    pp[a, PP_CARRY_CPU] += over_cpu
    d = pp[a, PP_SPEED]
    v.vt[T_RUN] += d * (run_w - over_run)
    v.vt[T_FAULT] += d * (cpu_w - over_cpu)
    if tlb_on:
        v.vt[T_WALK] += d * walk_w
        v.vt[T_MMU] += d * (hidden_w + trap_w)
    v.vt[T_IOWAIT] += d * (io_w - over_io)
    v.vt[T_BLOCKED] += d * blocked_w
    return status
