"""The flat arrays that hold a host's and its VMs' memory state.

Everything the kernels touch per page lives here, in the smallest dtype that fits. Per GPPN:
pmap (4 B) + pstate (1) + frame_vpn (4) + fslot (4) + policy links and byte (9) = 22 B; per
GVPN: pt (4 B); per MPN: reverse map (6 B); per swap slot: one bit; per compression-cache slot
(2 KiB): owner and FIFO links (12 B). Free lists cost nothing: they are linked through these
arrays (kernels.freelists).

All VMs' arrays of a kind are one host-wide array (`VMPool`), each VM's part a contiguous
slice of it: the one-timeline scheduler (kernels.timeline) runs every VM's threads in one
compiled call, and rebuilds a VM's `VMArrays` from the pool by slicing (`vm_view`, no copy).
Python holds the same slices as numpy views, so both sides see one state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from vmemsim.guest.policies.base import PolicyState
from vmemsim.kernels.arrays import big_array
from vmemsim.kernels.freelists import END, bitmap_set_range
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import (
    C_BALLOON_HEAD,
    C_GFREE_HEAD,
    C_GFREE_N,
    C_GSWAP_FREE_N,
    C_GSWAP_SLOTS,
    C_HSWAP_FREE_N,
    C_HSWAP_SLOTS,
    C_ZQ_HEAD,
    C_ZQ_TAIL,
    C_ZSLOT_FREE_N,
    C_ZSLOT_HEAD,
    HC_MFREE_HEAD,
    HC_MFREE_N,
    N_COUNTERS,
    N_HOST_COUNTERS,
    N_HOST_TIMES,
    N_PMETA,
    N_TIMES,
    N_WM,
    NIL,
    P_HEAD,
    P_INSERT_REF,
    P_POLICY,
    P_TAIL,
    PTE_NONE,
    R_FREE,
)


class HostArrays(NamedTuple):
    rmap_vm: np.ndarray  # int16: VM owning the MPN, -1 free
    rmap_gppn: np.ndarray  # int32: GPPN it backs, or R_* (zip cache, overhead); free: a link
    hc: np.ndarray  # int64 scalars
    ht: np.ndarray  # float64 scalars (device busy-until)
    # TPS's hash table (kernels.sharing), open addressing: a key (a content's hash with its
    # salt, -1 empty) and its value (a shared MPN, or a hint: -2 - (VM << 32 | GPPN))
    skey: np.ndarray  # int64[power of two]
    sval: np.ndarray  # int64


class VMArrays(NamedTuple):
    vm_id: int
    pt: np.ndarray  # int32 per GVPN: guest page table (all processes, concatenated)
    frame_vpn: np.ndarray  # int32 per GPPN: GVPN mapped there; free/balloon frames: a link
    fslot: np.ndarray  # int32 per GPPN: guest swap slot still holding a clean copy, -1 none
    gswap_bits: np.ndarray  # uint64 bitmap: free guest swap slots
    pmap: np.ndarray  # int32 per GPPN: MPN, or host swap slot, or zip slot (per pstate)
    pstate: np.ndarray  # uint8 per GPPN: host state H_*, guest kind and dirty bit G_* (layout)
    hswap_bits: np.ndarray  # uint64 bitmap: free slots of the VM's .vswp file
    zowner: np.ndarray  # int32 per zip slot (zip_threshold of a page): GPPN held; free: a link
    zlinks: np.ndarray  # int32, two per zip slot: the cache's FIFO (older, newer), oldest out
    zmpns: np.ndarray  # int32 stack: machine pages backing the compression cache
    sample: np.ndarray  # int32: GPPNs sampled this period
    vc: np.ndarray  # int64 counters (layout C_*)
    vt: np.ndarray  # float64 times (layout T_*)
    rng: np.ndarray  # uint64[4] xoshiro state
    wm: np.ndarray  # int64[N_WM]: guest free-page watermarks min, low, high; swap cluster
    content: np.ndarray  # uint64[3]: content seed, fits-a-slot threshold (of 2**64), slots/page
    pol: PolicyState
    cid: np.ndarray  # int64 per GPPN: its content's id (kernels.sharing: zero, OS, app, unique)
    lpage: np.ndarray  # uint8 per 2 MB region of guest memory: 1 once its large page is broken


class VMSpec(NamedTuple):
    """What a VM's arrays are sized and initialised from."""

    n_gppn: int
    n_gvpn: int
    guest_swap_pages: int
    host_swap_pages: int
    zip_slots: int
    sample_size: int
    watermarks: tuple[int, int, int]
    swap_cluster: int
    compressible: float  # share of pages that fit a compression slot (hostmm.fit_share)
    content_seed: int
    insert_referenced: bool
    rng: np.ndarray
    policy_id: int = 0
    zip_per_page: int = 2  # compression slots per machine page


# Where each VM's part of a pooled array starts (VMPool.off columns); row i + 1 is where VM
# i's part ends.
O_GPPN, O_GVPN, O_GSWAP, O_HSWAP, O_ZIP, O_ZMPN, O_SAMPLE, O_LPAGE = range(8)
N_OFF = 8
LPAGE_SHIFT = 9  # a large page is 512 small ones (2 MB)


class VMPool(NamedTuple):
    """Every VM's arrays, one host-wide array per kind; VM i's part of `pt` is
    pt[off[i, O_GVPN]:off[i + 1, O_GVPN]], and so on (vm_view). Scalars per VM are rows."""

    off: np.ndarray  # int64[n_vm + 1, N_OFF]
    pt: np.ndarray
    frame_vpn: np.ndarray
    fslot: np.ndarray
    gswap_bits: np.ndarray
    pmap: np.ndarray
    pstate: np.ndarray
    hswap_bits: np.ndarray
    zowner: np.ndarray
    zlinks: np.ndarray
    zmpns: np.ndarray
    sample: np.ndarray
    links: np.ndarray
    aux: np.ndarray
    vc: np.ndarray  # int64[n_vm, N_COUNTERS]
    vt: np.ndarray  # float64[n_vm, N_TIMES]
    rng: np.ndarray  # uint64[n_vm, 4]
    wm: np.ndarray  # int64[n_vm, N_WM]
    content: np.ndarray  # uint64[n_vm, 3]
    meta: np.ndarray  # int64[n_vm, N_PMETA]: the guest policy's scalars
    cid: np.ndarray
    lpage: np.ndarray


def new_host(n_mpn: int, slots: int = 16) -> HostArrays:
    if n_mpn >= 2**31:
        raise ValueError("host too large: more than 2**31 machine pages (8 TiB)")
    hc = np.zeros(N_HOST_COUNTERS, dtype=np.int64)
    hc[HC_MFREE_N] = n_mpn
    hc[HC_MFREE_HEAD] = END
    return HostArrays(
        rmap_vm=big_array(n_mpn, np.int16, -1),
        rmap_gppn=big_array(n_mpn, np.int32, R_FREE),
        hc=hc,
        ht=np.zeros(N_HOST_TIMES, dtype=np.float64),
        skey=big_array(slots, np.int64, -1),
        sval=big_array(slots, np.int64, 0),
    )


def _words(n: int) -> int:
    return max((n + 63) // 64, 1)


def new_pool(specs: list[VMSpec]) -> tuple[VMPool, list[VMArrays]]:
    """The pooled arrays of these VMs, initialised, and each VM's view of them."""
    n = len(specs)
    sizes = np.zeros((n, N_OFF), dtype=np.int64)
    for i, s in enumerate(specs):
        sizes[i] = (s.n_gppn, s.n_gvpn, _words(s.guest_swap_pages), _words(s.host_swap_pages),
                    s.zip_slots, s.zip_slots // s.zip_per_page + 1, s.sample_size,
                    (s.n_gppn >> LPAGE_SHIFT) + 1)
    off = np.zeros((n + 1, N_OFF), dtype=np.int64)
    off[1:] = np.cumsum(sizes, axis=0)
    tot = off[n]
    vc = np.zeros((n, N_COUNTERS), dtype=np.int64)
    meta = np.zeros((n, N_PMETA), dtype=np.int64)
    content = np.zeros((n, 3), dtype=np.uint64)
    for i, s in enumerate(specs):
        c = vc[i]
        c[C_GFREE_N] = s.n_gppn
        c[C_GSWAP_FREE_N] = c[C_GSWAP_SLOTS] = s.guest_swap_pages
        c[C_HSWAP_FREE_N] = c[C_HSWAP_SLOTS] = s.host_swap_pages
        c[C_ZSLOT_FREE_N] = s.zip_slots
        c[C_GFREE_HEAD] = c[C_BALLOON_HEAD] = c[C_ZSLOT_HEAD] = END
        c[C_ZQ_HEAD] = c[C_ZQ_TAIL] = NIL
        meta[i, P_POLICY] = s.policy_id
        meta[i, P_HEAD] = meta[i, P_TAIL] = NIL
        meta[i, P_INSERT_REF] = 1 if s.insert_referenced else 0
        content[i, 0] = np.uint64(s.content_seed & 0xFFFFFFFFFFFFFFFF)
        content[i, 1] = np.uint64(min(int(s.compressible * 2.0**64), 2**64 - 1))
        content[i, 2] = np.uint64(s.zip_per_page)
    pool = VMPool(
        off=off,
        pt=big_array(tot[O_GVPN], np.int32, PTE_NONE),
        frame_vpn=big_array(tot[O_GPPN], np.int32, -1),
        fslot=big_array(tot[O_GPPN], np.int32, -1),
        gswap_bits=np.zeros(tot[O_GSWAP], dtype=np.uint64),
        pmap=big_array(tot[O_GPPN], np.int32, -1),
        pstate=big_array(tot[O_GPPN], np.uint8, 0),
        hswap_bits=np.zeros(tot[O_HSWAP], dtype=np.uint64),
        zowner=np.full(tot[O_ZIP], -1, dtype=np.int32),
        zlinks=np.full(2 * tot[O_ZIP], NIL, dtype=np.int32),
        zmpns=np.zeros(tot[O_ZMPN], dtype=np.int32),
        sample=np.full(tot[O_SAMPLE], -1, dtype=np.int32),
        links=big_array(2 * tot[O_GPPN], np.int32, NIL),
        aux=big_array(tot[O_GPPN], np.uint8, 0),
        vc=vc,
        vt=np.zeros((n, N_TIMES), dtype=np.float64),
        rng=np.array([s.rng for s in specs], dtype=np.uint64).reshape(n, 4),
        wm=np.array([(*s.watermarks, s.swap_cluster) for s in specs],
                    dtype=np.int64).reshape(n, N_WM),
        content=content,
        meta=meta,
        cid=big_array(tot[O_GPPN], np.int64, 0),
        lpage=np.zeros(tot[O_LPAGE], dtype=np.uint8),
    )
    views = [_view(pool, i) for i in range(n)]
    for v, s in zip(views, specs, strict=True):
        bitmap_set_range(v.gswap_bits, 0, s.guest_swap_pages)
        bitmap_set_range(v.hswap_bits, 0, s.host_swap_pages)
    return pool, views


def _view(P: VMPool, i: int) -> VMArrays:
    """VM i's arrays: slices of the pool (Python's side of vm_view)."""
    o = P.off

    def part(a: np.ndarray, col: int, k: int = 1) -> np.ndarray:
        return a[k * o[i, col]: k * o[i + 1, col]]

    return VMArrays(
        vm_id=i, pt=part(P.pt, O_GVPN), frame_vpn=part(P.frame_vpn, O_GPPN),
        fslot=part(P.fslot, O_GPPN), gswap_bits=part(P.gswap_bits, O_GSWAP),
        pmap=part(P.pmap, O_GPPN), pstate=part(P.pstate, O_GPPN),
        hswap_bits=part(P.hswap_bits, O_HSWAP), zowner=part(P.zowner, O_ZIP),
        zlinks=part(P.zlinks, O_ZIP, 2), zmpns=part(P.zmpns, O_ZMPN),
        sample=part(P.sample, O_SAMPLE), vc=P.vc[i], vt=P.vt[i], rng=P.rng[i], wm=P.wm[i],
        content=P.content[i],
        pol=PolicyState(links=part(P.links, O_GPPN, 2), aux=part(P.aux, O_GPPN),
                        meta=P.meta[i]),
        cid=part(P.cid, O_GPPN), lpage=part(P.lpage, O_LPAGE))


@kernel(inline="always")
def vm_view(P, i: int) -> VMArrays:  # noqa: ANN001 - VMPool
    """VM i's arrays, sliced from the pool in compiled code (no copy, no allocation)."""
    o = P.off
    g0, g1 = o[i, O_GPPN], o[i + 1, O_GPPN]
    z0, z1 = o[i, O_ZIP], o[i + 1, O_ZIP]
    return VMArrays(
        i, P.pt[o[i, O_GVPN]:o[i + 1, O_GVPN]], P.frame_vpn[g0:g1], P.fslot[g0:g1],
        P.gswap_bits[o[i, O_GSWAP]:o[i + 1, O_GSWAP]], P.pmap[g0:g1], P.pstate[g0:g1],
        P.hswap_bits[o[i, O_HSWAP]:o[i + 1, O_HSWAP]], P.zowner[z0:z1],
        P.zlinks[2 * z0:2 * z1], P.zmpns[o[i, O_ZMPN]:o[i + 1, O_ZMPN]],
        P.sample[o[i, O_SAMPLE]:o[i + 1, O_SAMPLE]], P.vc[i], P.vt[i], P.rng[i], P.wm[i],
        P.content[i], PolicyState(P.links[2 * g0:2 * g1], P.aux[g0:g1], P.meta[i]),
        P.cid[g0:g1], P.lpage[o[i, O_LPAGE]:o[i + 1, O_LPAGE]])


def new_vm(vm_id: int = 0, **spec: object) -> VMArrays:
    """One VM's arrays on their own (a pool of one): for tools that simulate a single guest
    (guest.replay). `spec`: VMSpec's fields."""
    _, views = new_pool([VMSpec(**spec)])  # type: ignore[arg-type]
    return views[0]._replace(vm_id=vm_id)


class Threads(NamedTuple):
    """Every thread of every VM's processes: one row each (layout PP_*, PS_*)."""

    pp: np.ndarray  # float64[n, N_PP]: parameters, clock
    ps: np.ndarray  # int64[n, N_PS]: state (stream position, pending reference, ...)
    wrng: np.ndarray  # uint64[n, N_WRNG]: its reference stream (+ look-ahead scratch)
    ztab: np.ndarray  # float64[n, ZIPF_KNOTS + 1]: its zipf table
    tbuf: np.ndarray  # int64: trace windows (PP_TOFF is where a thread's starts)
    cost: np.ndarray  # float64[n, N_COSTS]: its VM's costs, CPU ones at the thread's speed
    tlb: np.ndarray  # int64[n, mmu.N_TLB]: its TLB (kernels.mmu)
