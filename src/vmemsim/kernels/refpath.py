"""The reference path: one compiled loop per VM and tick.

Each process generates page references from its workload and spends its CPU budget on them.
Every reference goes through both translations:

    GVPN --guest page table (pt)--> GPPN --pmap--> MPN

A reference that finds a mapped GPPN whose machine page is mapped and already touched this
period (pstate & H_BITS == H_FAST) is a hit: it costs the workload's per-reference CPU time and one
policy update. Anything else takes the fault of the level that missed.
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
from vmemsim.kernels.hostmm import dev_io, hv_access
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import (
    AHEAD,
    AHEAD_FAR_WSS,
    AHEAD_MIN_WSS,
    AHEAD_NEAR,
    C_GFAULT,
    C_GFREE_N,
    C_GSWAPPED,
    C_GSWIN,
    C_OOM,
    C_REFS,
    C_USER_FRAMES,
    G_DIRTY,
    G_USER,
    H_BACKED,
    H_BITS,
    H_FAST,
    H_MASK,
    HC_MFREE_N,
    K_GDEV_LAT,
    K_GDEV_SVC,
    K_GUEST_FAULT,
    PP_AHEAD,
    PP_BASE,
    PP_BUDGET,
    PP_COST,
    PP_DIST,
    PP_HOT_FRAC,
    PP_HOT_PROB,
    PP_OFFSET,
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
    PS_TLEN,
    PS_TPOS,
    PTE_SWAP0,
    ST_BLOCKED,
    T_BLOCKED,
    T_CPU,
    T_GDEV_BUSY,
    T_STALL,
    W_SNAP,
    W_STATE,
)
from vmemsim.kernels.rng import load, step, store, to_below, to_float

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


@kernel
def _dirty(v, g: int) -> None:  # noqa: ANN001
    v.pstate[g] |= G_DIRTY
    s = v.fslot[g]
    if s >= 0:  # the swap copy is stale now
        gswap_release(v, s)
        v.fslot[g] = -1


@kernel(inline="always")
def _draw_ahead(pt: np.ndarray, ring: np.ndarray, cring: np.ndarray, snap: np.ndarray, k: int,
                gst: tuple, cursor: int, first: int, dist: int, wss: int, zt: np.ndarray,
                stride: int, inv_wss: float, hot: int, hot_prob: float,
                wfrac: float) -> tuple:
    """The look-ahead's next reference into ring slot k, as (GVPN << 1) | write, with the
    generator's state and scan cursor before it (to rewind to); starts loading its page-table
    entry. Returns the generator's state and cursor after it."""
    store(snap, gst, 4 * k)
    cring[k] = cursor
    r, cursor, gst = draw(gst, dist, wss, zt, stride, inv_wss, hot, hot_prob, cursor)
    x, gst = step(gst)
    prefetch(pt, first + r)
    ring[k] = ((first + r) << 1) | (1 if to_float(x) < wfrac else 0)
    return gst, cursor


@kernel(inline="ir")
def _run_tick(v, h, pp: np.ndarray, ps: np.ndarray, wrng: np.ndarray, tbuf: np.ndarray,  # noqa: ANN001
              ztab: np.ndarray, cost: np.ndarray, now: float, pid: int) -> int:
    """Run every process of one VM for its budget this tick. Returns processes blocked.

    `pid` is the guest policy's id (guest.policies.dispatch). This body is inlined into one
    wrapper per policy below with `pid` a constant, so the compiler drops the other policies'
    branches: a runtime dispatch on the hit path costs over half the speed.
    """
    blocked = 0
    pol = v.pol
    wm_low = v.wm[1]
    wm_high = v.wm[2]
    for p in range(pp.shape[0]):
        budget = pp[p, PP_BUDGET]
        if budget <= 0.0 or pp[p, PP_WSS] < 1:
            continue
        cref = pp[p, PP_COST]
        # Hoisted: the loop below reads only locals on the hit path.
        rng = wrng[p, W_STATE:W_SNAP]
        dist = np.int64(pp[p, PP_DIST])
        wss = np.int64(pp[p, PP_WSS])
        first = np.int64(pp[p, PP_BASE]) + np.int64(pp[p, PP_OFFSET])
        zt = ztab[p]
        inv_wss = 1.0 / wss
        stride = np.int64(pp[p, PP_STRIDE])
        hot = max(np.int64(1), np.int64(wss * pp[p, PP_HOT_FRAC]))
        hot_prob = pp[p, PP_HOT_PROB]
        wfrac = pp[p, PP_WRITE]
        cursor = ps[p, PS_CURSOR]
        toff = np.int64(pp[p, PP_TOFF])
        tpos = ps[p, PS_TPOS]
        tlen = ps[p, PS_TLEN]
        tbase = np.int64(pp[p, PP_BASE])
        # Look-ahead: references are drawn `far` in front of their use into a ring, and their
        # page-table entries are loaded as they are drawn; halfway through the ring those
        # entries have arrived and the frames' state bytes are loaded too. Far from the caches
        # a reference waits on memory, and this overlaps the waits of the next ones. The ring
        # keeps the generator's state before each reference, so the stream is left exactly
        # after the last reference used: the references do not depend on the look-ahead.
        # Tables that fit in the caches gain nothing from it; how far ahead: see lookahead.
        far = min(np.int64(pp[p, PP_AHEAD]), AHEAD)  # references in flight
        if dist == 4:  # a replayed reference costs less than a drawn one: fewer cover the wait
            far //= 2
        half = far // 2
        big = far > 0
        use_ahead = big and dist != 4
        snap = wrng[p, W_SNAP:]
        ring = ps[p, PS_RING:PS_CRING]
        cring = ps[p, PS_CRING:]
        j = 0  # references used from the ring
        st = load(rng)  # the stream, in registers while the loop runs (rng.step)
        gst = st  # the look-ahead's generator
        cursor_g = cursor
        if use_ahead:
            for k in range(far):
                gst, cursor_g = _draw_ahead(v.pt, ring, cring, snap, k, gst, cursor_g, first,
                                            dist, wss, zt, stride, inv_wss, hot, hot_prob,
                                            wfrac)
        t = 0.0
        stall_total = 0.0
        refs = 0
        pending = ps[p, PS_PENDING]  # a GVPN, or -1; kept in a register while the loop runs
        while t < budget:
            if pending >= 0:  # the reference that blocked last time goes first
                gv = pending
                w = ps[p, PS_PENDING_W] != 0
                pending = -1
            elif dist == 4:  # trace replay: entries are (page << 1) | write
                if tpos >= tlen:
                    break
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
                gv = e >> 1
                w = (e & 1) != 0
                # Draw the reference `far` further on, into its slot.
                gst, cursor_g = _draw_ahead(v.pt, ring, cring, snap, (j + far) & (AHEAD - 1),
                                            gst, cursor_g, first, dist, wss, zt, stride,
                                            inv_wss, hot, hot_prob, wfrac)
                pm = v.pt[ring[(j + half) & (AHEAD - 1)] >> 1]
                if pm >= 0:
                    prefetch(v.pstate, pm)
                    warm(pid, pol, pm)
                j += 1
            else:
                r, cursor, st = draw(st, dist, wss, zt, stride, inv_wss, hot, hot_prob, cursor)
                gv = first + r
                x, st = step(st)
                w = to_float(x) < wfrac
            pte = v.pt[gv]
            if pte >= 0:
                pst = v.pstate[pte]
                if pst & H_BITS == H_FAST:  # hit at both levels
                    on_hit(pid, pol, pte)
                    if w and not pst & G_DIRTY:
                        _dirty(v, pte)
                    t += cref
                    refs += 1
                    continue
            if h.hc[HC_MFREE_N] == 0 and not (pte >= 0 and v.pstate[pte] & H_MASK == H_BACKED):
                # No machine page for the fault: the vCPU waits for the host to free memory.
                pending = gv
                ps[p, PS_PENDING_W] = 1 if w else 0
                v.vt[T_BLOCKED] += budget - t
                blocked += 1
                break
            stall = 0.0
            if pte >= 0:
                g = pte
                on_hit(pid, pol, g)
            else:
                v.vc[C_GFAULT] += 1
                stall += cost[K_GUEST_FAULT]
                if v.vc[C_GFREE_N] <= wm_low:
                    stall += guest_reclaim(v, h, pol, pid, max(wm_high, 1), now + t + stall,
                                           cost)
                g = gfree_pop(v)
                if g < 0:  # out of memory and swap: the guest would kill something
                    v.vc[C_OOM] += 1
                    t += cref + stall
                    continue
                # The guest fills the frame (zeroes it, or DMA from its swap): a write through
                # the pmap, which may itself fault at the hypervisor.
                if v.pstate[g] & H_BITS != H_FAST:
                    s, status = hv_access(v, h, g, now + t + stall, cost)
                    stall += s
                    if status == ST_BLOCKED:
                        # The eviction just used the last machine page: give the frame back.
                        gfree_push(v, g)
                        pending = gv
                        ps[p, PS_PENDING_W] = 1 if w else 0
                        v.vt[T_BLOCKED] += max(0.0, budget - t - stall)
                        t += stall
                        blocked += 1
                        break
                if pte <= PTE_SWAP0:
                    stall += dev_io(v.vt, T_GDEV_BUSY, now + t + stall, cost[K_GDEV_LAT],
                                    cost[K_GDEV_SVC])
                    v.vc[C_GSWIN] += 1
                    v.vc[C_GSWAPPED] -= 1
                    v.fslot[g] = PTE_SWAP0 - pte  # clean copy stays in swap (swap cache)
                    set_guest(v, g, G_USER)
                else:
                    v.fslot[g] = -1
                    set_guest(v, g, G_USER | G_DIRTY)  # anonymous memory: only copy in RAM
                v.pt[gv] = g
                v.frame_vpn[g] = gv
                v.vc[C_USER_FRAMES] += 1
                on_insert(pid, pol, g)
            if v.pstate[g] & H_BITS != H_FAST:
                s, status = hv_access(v, h, g, now + t + stall, cost)
                stall += s
                if status == ST_BLOCKED:
                    pending = gv
                    ps[p, PS_PENDING_W] = 1 if w else 0
                    v.vt[T_BLOCKED] += max(0.0, budget - t - stall)
                    t += stall
                    blocked += 1
                    break
            if w and not v.pstate[g] & G_DIRTY:
                _dirty(v, g)
            t += cref + stall
            stall_total += stall
            refs += 1
        if use_ahead:  # the stream as it was before the first reference not used
            k = j & (AHEAD - 1)
            st = load(snap, 4 * k)
            cursor = cring[k]
        store(rng, st)
        ps[p, PS_PENDING] = pending
        ps[p, PS_REFS] += refs
        ps[p, PS_CURSOR] = cursor
        ps[p, PS_TPOS] = tpos
        v.vc[C_REFS] += refs
        v.vt[T_STALL] += stall_total
        v.vt[T_CPU] += refs * cref
        # Time beyond the budget (a disk read that ran past the tick) is owed by the next tick.
        pp[p, PP_BUDGET] = budget - t
    return blocked



# One compiled reference loop per guest policy (ids: guest.policies.dispatch.REGISTRY).
@kernel
def run_tick_clock(v, h, pp, ps, wrng, tbuf, ztab, cost, now):  # noqa: ANN001, ANN201
    return _run_tick(v, h, pp, ps, wrng, tbuf, ztab, cost, now, 0)


@kernel
def run_tick_lru(v, h, pp, ps, wrng, tbuf, ztab, cost, now):  # noqa: ANN001, ANN201
    return _run_tick(v, h, pp, ps, wrng, tbuf, ztab, cost, now, 1)


@kernel
def run_tick_fifo(v, h, pp, ps, wrng, tbuf, ztab, cost, now):  # noqa: ANN001, ANN201
    return _run_tick(v, h, pp, ps, wrng, tbuf, ztab, cost, now, 2)


@kernel
def run_tick_random(v, h, pp, ps, wrng, tbuf, ztab, cost, now):  # noqa: ANN001, ANN201
    return _run_tick(v, h, pp, ps, wrng, tbuf, ztab, cost, now, 3)


RUN_TICK = (run_tick_clock, run_tick_lru, run_tick_fifo, run_tick_random)


def run_tick(v, h, pp, ps, wrng, tbuf, ztab, cost, now, pid: int) -> int:  # noqa: ANN001
    """The reference loop of policy `pid`."""
    return RUN_TICK[pid](v, h, pp, ps, wrng, tbuf, ztab, cost, now)
