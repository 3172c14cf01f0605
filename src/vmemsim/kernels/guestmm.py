"""Guest-OS page operations: frame allocation, eviction to guest swap, balloon inflate/deflate.

The guest knows nothing of the hypervisor: when it reads a frame to write it to its swap device,
that read goes through the pmap like any access. If the host had swapped that frame out, the
host must read it back only for the guest to write it out again: double paging, counted here.
"""

import numpy as np

from vmemsim.guest.policies.dispatch import on_remove, upcoming, victim
from vmemsim.kernels.freelists import bm_put, bm_take, fpop, lpop, lpush
from vmemsim.kernels.hostmm import dev_io, dev_read, hv_access
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import (
    C_BALLOON_EVICT,
    C_BALLOON_FAIL,
    C_BALLOON_HEAD,
    C_BALLOON_N,
    C_DOUBLE,
    C_FILE_OUT,
    C_GEVICT,
    C_GFREE_BUMP,
    C_GFREE_HEAD,
    C_GFREE_N,
    C_GSWAP_CURSOR,
    C_GSWAP_FREE_N,
    C_GSWAPPED,
    C_GSWOUT,
    C_GSWOUT_IOS,
    C_SWIN,
    C_UNZIP,
    C_USER_FRAMES,
    FSLOT_FILE,
    FSLOT_NONE,
    G_BALLOON,
    G_DIRTY,
    G_FREE,
    G_KERNEL,
    H_BALLOON,
    H_BITS,
    H_MASK,
    H_SWAPPED,
    H_TOUCHED,
    H_ZIPPED,
    HC_MFREE_N,
    HT_DEV_BUSY,
    K_BALLOON_PAGE,
    K_DECOMPRESS,
    K_GDEV_LAT,
    K_GDEV_SVC,
    K_HDEV_LAT,
    K_HDEV_SVC,
    P_POLICY,
    PTE_NONE,
    PTE_SWAP0,
    T_GDEV_BUSY,
    WM_CLUSTER,
    WM_HIGH,
    WM_LOW,
    WM_MIN,
)
from vmemsim.kernels.sharing import release

# Machine pages kept back from double-paging reads, so that a fault that needs a page for the
# guest's own data is not starved by the eviction it triggered (the host reads through instead).
DOUBLE_PAGING_RESERVE = 8


@kernel(inline="always")
def set_guest(v, g: int, bits: int) -> None:  # noqa: ANN001
    """Set frame g's guest kind and dirty bit (G_*), keeping the hypervisor's bits."""
    v.pstate[g] = (v.pstate[g] & H_BITS) | bits


@kernel
def gfree_push(v, g: int) -> None:  # noqa: ANN001
    lpush(v.frame_vpn, v.vc, C_GFREE_HEAD, g)
    v.vc[C_GFREE_N] += 1


@kernel
def gfree_pop(v) -> int:  # noqa: ANN001
    if v.vc[C_GFREE_N] == 0:
        return -1
    v.vc[C_GFREE_N] -= 1
    return fpop(v.frame_vpn, v.vc, C_GFREE_HEAD, C_GFREE_BUMP, v.frame_vpn.size)


@kernel
def gswap_release(v, slot: int) -> None:  # noqa: ANN001
    bm_put(v.gswap_bits, slot)
    v.vc[C_GSWAP_FREE_N] += 1


@kernel(inline="always")
def warm_victims(v, pid: int, pol, g: int) -> None:  # noqa: ANN001
    """Start loading what evicting the two frames the policy expects to evict after g will
    read: a victim is the frame referenced longest ago, so its entries are far from the caches,
    and without this each eviction waits on them in turn. The first's entries were warmed one
    eviction earlier, as the second's; a hint only, the policy's choice is made afresh."""
    g1 = upcoming(pid, pol, g)
    if g1 < 0:
        return
    gv = v.frame_vpn[g1]
    if gv >= 0:
        prefetch(v.pt, gv)
    g2 = upcoming(pid, pol, g1)
    if g2 >= 0:
        prefetch(v.frame_vpn, g2)
        prefetch(v.fslot, g2)
        prefetch(v.pstate, g2)
        prefetch(pol.links, 2 * g2)


@kernel
def double_page(v, h, g: int, now: float, cost: np.ndarray) -> float:  # noqa: ANN001
    """The guest reads frame g to write it to its swap, but the host had swapped or compressed
    it: the host must bring it back first. Returns the stall. Rare: a kernel of its own, left
    to LLVM's judgement (which inlines it into the reference loop all the same)."""
    st = v.pstate[g] & H_MASK
    v.vc[C_DOUBLE] += 1
    if h.hc[HC_MFREE_N] > DOUBLE_PAGING_RESERVE:
        s, _ = hv_access(v, h, g, now, cost)
        return s
    if st == H_SWAPPED:  # read straight through to the guest's I/O buffer
        v.vc[C_SWIN] += 1
        return dev_read(v, h.ht, HT_DEV_BUSY, now, cost[K_HDEV_LAT], cost[K_HDEV_SVC])
    v.vc[C_UNZIP] += 1
    return cost[K_DECOMPRESS]


@kernel(inline="always")
def evict_one(v, h, pol, pid: int, now: float, cost: np.ndarray) -> tuple:  # noqa: ANN001
    """Evict the victim of policy `pid` to guest swap, or drop it if it is file-backed.
    Returns (stall seconds, evicted?, written?): a dirty victim must be written (to swap, or
    back to its file), which the caller does in clusters; a clean file page is dropped.

    Inlined into its callers (with `guest_reclaim`): as a call, passing the VM's ~30 arrays
    took about a third of a replayed miss's time."""
    g = victim(pid, pol, v.rng)
    if g < 0:
        return 0.0, False, False
    warm_victims(v, pid, pol, g)
    fs = v.fslot[g]
    dirty = (v.pstate[g] & G_DIRTY) != 0 or fs == FSLOT_NONE
    if fs == FSLOT_NONE and v.vc[C_GSWAP_FREE_N] == 0:
        return 0.0, False, False  # guest swap full and the victim has no clean copy
    on_remove(pid, pol, g)
    stall = 0.0
    gv = v.frame_vpn[g]
    if fs == FSLOT_FILE:
        # Page cache: a dirty page is written back to its file; either way the next access
        # reads it from the file again.
        if dirty:
            st = v.pstate[g] & H_MASK
            if st in (H_SWAPPED, H_ZIPPED):
                stall += double_page(v, h, g, now, cost)
            v.vc[C_FILE_OUT] += 1
        v.pt[gv] = PTE_NONE
    elif dirty:
        st = v.pstate[g] & H_MASK
        if st in (H_SWAPPED, H_ZIPPED):
            stall += double_page(v, h, g, now, cost)
        if v.fslot[g] >= 0:
            slot = v.fslot[g]  # rewrite the stale copy in place
        else:
            v.vc[C_GSWAP_FREE_N] -= 1
            slot = bm_take(v.gswap_bits, v.vc, C_GSWAP_CURSOR)
        v.vc[C_GSWOUT] += 1
        v.pt[gv] = PTE_SWAP0 - slot
        v.vc[C_GSWAPPED] += 1
    else:
        v.pt[gv] = PTE_SWAP0 - fs
        v.vc[C_GSWAPPED] += 1
    v.fslot[g] = FSLOT_NONE
    v.frame_vpn[g] = -1
    set_guest(v, g, G_FREE)
    v.vc[C_USER_FRAMES] -= 1
    v.vc[C_GEVICT] += 1
    gfree_push(v, g)
    return stall, True, dirty


@kernel(inline="always")
def _write_cluster(v, now: float, cost: np.ndarray) -> None:  # noqa: ANN001
    """One asynchronous write of a cluster of evicted pages to the guest's swap device."""
    dev_io(v.vt, T_GDEV_BUSY, now, cost[K_GDEV_LAT], cost[K_GDEV_SVC])
    v.vc[C_GSWOUT_IOS] += 1


@kernel(inline="always")
def guest_reclaim(v, h, pol, pid: int, target: int, now: float,  # noqa: ANN001
                  cost: np.ndarray) -> float:
    """Evict until the free list reaches `target` frames (kswapd's low-to-high refill), by
    policy `pid` (pol.meta[P_POLICY]; a constant in the reference loop).

    Dirty victims are written to guest swap in clusters of up to wm[WM_CLUSTER] pages per I/O,
    as Linux's reclaim writes a batch: asynchronous writes that occupy the device (and delay
    the reads queued behind them) but that nobody waits for."""
    stall = 0.0
    pending = 0
    cluster = v.wm[WM_CLUSTER]
    while v.vc[C_GFREE_N] < target:
        s, ok, wrote = evict_one(v, h, pol, pid, now + stall, cost)
        stall += s
        if not ok:
            break
        if wrote:
            pending += 1
            if pending >= cluster:
                _write_cluster(v, now + stall, cost)
                pending = 0
    if pending > 0:
        _write_cluster(v, now + stall, cost)
    return stall



@kernel
def balloon_inflate(v, h, pol, n: int, can_sleep: bool, now: float,  # noqa: ANN001
                    cost: np.ndarray) -> tuple:
    """The balloon driver allocates n pinned frames through the guest and hands them over.

    Without sleeping (`can_sleep` False) it takes free frames only while the guest has more
    than its low watermark (an allocation that may not reclaim). Sleeping, it makes the guest
    reclaim, so the guest's own policy chooses what to page out; it never dips into the
    emergency reserve below the min watermark. Returns (frames inflated, guest evictions it
    caused, time spent); fewer than n frames means an allocation failed.
    """
    t = 0.0
    done = 0
    evicted0 = v.vc[C_GEVICT]
    pid = pol.meta[P_POLICY]
    wm_min = v.wm[WM_MIN]
    wm_low = v.wm[WM_LOW]
    wm_high = v.wm[WM_HIGH]
    for _ in range(n):
        if v.vc[C_GFREE_N] <= wm_low:
            if not can_sleep:
                break
            # Its I/O is submitted at `now`, the tick's start, not `now + t`: the timeline's
            # threads submit theirs from `now` on, and a device must see requests in time order.
            t += guest_reclaim(v, h, pol, pid, wm_high, now, cost)
        if v.vc[C_GFREE_N] <= wm_min:
            v.vc[C_BALLOON_FAIL] += 1
            break
        g = gfree_pop(v)
        release(v, h, g)
        v.pstate[g] = H_BALLOON | G_BALLOON | (v.pstate[g] & H_TOUCHED)
        lpush(v.frame_vpn, v.vc, C_BALLOON_HEAD, g)
        v.vc[C_BALLOON_N] += 1
        t += cost[K_BALLOON_PAGE]
        done += 1
    ev = v.vc[C_GEVICT] - evicted0
    v.vc[C_BALLOON_EVICT] += ev
    return done, ev, t


@kernel
def balloon_deflate(v, n: int) -> int:  # noqa: ANN001
    """The driver frees n balloon frames back to the guest; the host backs them again on use."""
    done = 0
    while done < n and v.vc[C_BALLOON_N] > 0:
        v.vc[C_BALLOON_N] -= 1
        g = lpop(v.frame_vpn, v.vc, C_BALLOON_HEAD)
        set_guest(v, g, G_FREE)
        gfree_push(v, g)
        done += 1
    return done


@kernel
def kernel_frames(v, h, n: int) -> None:  # noqa: ANN001
    """Take the first n frames for the guest kernel (never paged by the guest)."""
    for _ in range(n):
        g = gfree_pop(v)
        if g < 0:
            return
        set_guest(v, g, G_KERNEL)


@kernel
def free_process(v, base: int, size: int) -> int:  # noqa: ANN001
    """A process exits: the guest frees its frames and swap slots (the host keeps backing the
    frames: it cannot know they are free). Returns frames freed."""
    freed = 0
    pid = v.pol.meta[P_POLICY]
    for gv in range(base, base + size):
        pte = v.pt[gv]
        if pte >= 0:
            on_remove(pid, v.pol, pte)
            if v.fslot[pte] >= 0:
                gswap_release(v, v.fslot[pte])
            v.fslot[pte] = FSLOT_NONE
            v.frame_vpn[pte] = -1
            set_guest(v, pte, G_FREE)
            v.vc[C_USER_FRAMES] -= 1
            gfree_push(v, pte)
            freed += 1
        elif pte <= PTE_SWAP0:
            gswap_release(v, PTE_SWAP0 - pte)
            v.vc[C_GSWAPPED] -= 1
        v.pt[gv] = PTE_NONE
    return freed
