"""The cost of the second level of translation: TLBs, page walks and shadow paging's traps.

Each thread (a vCPU's worth of a process) has its own TLB: a set-associative, LRU TLB per page
size, held in a row of `Threads.tlb` (TLB4_SETS x TLB_WAYS tags for 4 KB translations, then
TLB2_SETS x TLB_WAYS for 2 MB ones; -1 empty). Every user reference that hits at both levels
looks its GVPN up (refpath); a miss costs a page walk. A reference that takes the miss path
(a guest fault, or a hypervisor fault: its mapping was never made or was taken away by the
host) always walks: the entry was not there, or the host invalidated it when it reclaimed the
page. Under shadow paging such a reference is also a hidden fault (the shadow entry is filled
by the hypervisor), a trap.

A translation is cached as 2 MB when the guest maps its GVPN with a 2 MB page (PP_LARGE: the
share of the guest's 2 MB virtual regions, spread evenly) and the hypervisor backs the GPPN's
2 MB region with a 2 MB page (PP_HV_LARGE, until the region is broken: `broken` is the VM's
one record of broken regions, VMArrays.lpage, which page sharing breaks too, and which host
reclamation breaks here).
Otherwise it is cached as 4 KB (the TLB caches the smaller of the two levels' pages).

The walk's cost (K_WALK + kind, kind = guest large | host large << 1) depends on the MMU:
native (shadow) walks 4 levels, or 3 with a 2 MB page; nested walks
(g + 1)(h + 1) - 1 references, g and h the guest's and the host's levels (24 for 4 KB/4 KB).
Page-walk caches remove a share (costs.walk_cache) of the references above the leaf ones.

Guest page-table updates and context switches happen at a rate per reference (PP_PT_RATE,
PP_CTX_RATE), counted at each slice's end; under shadow paging each one traps.
Kernel references (the guest kernel's active frames) are not looked up: the kernel maps its
memory with large pages, and its few active frames stay within the TLB's reach.
"""

from __future__ import annotations

import math

import numpy as np

from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import (
    K_CTX_TRAP,
    K_HIDDEN,
    K_PT_TRAP,
    K_WALK,
    PP_CTX_CARRY,
    PP_CTX_RATE,
    PP_HV_LARGE,
    PP_LARGE,
    PP_MMU,
    PP_PT_CARRY,
    PP_PT_RATE,
    PP_ROW0,
    PP_ROW1,
)

MMU_OFF, MMU_NESTED, MMU_SHADOW = 0, 1, 2
MMU_CODES = {"off": MMU_OFF, "nested": MMU_NESTED, "shadow": MMU_SHADOW}

# The TLB per thread, per page size. Sizes of a recent x86 core's second-level TLB (Intel
# Skylake: 1536 entries, 12-way, 4 KB and 2 MB; here 1024 4-way for 4 KB and 256 4-way for
# 2 MB: powers of two for the set index, 4 ways for a short LRU shift). Unconfirmed for any one
# host: docs/esx-model.md.
TLB_WAYS = 4
TLB4_SETS = 256
TLB2_SETS = 64
TLB2_OFF = TLB4_SETS * TLB_WAYS  # where the 2 MB part of a row starts


def flush_large(tlb: np.ndarray, rows: list[int]) -> None:
    """The hypervisor broke large pages of a VM (page sharing): its vCPUs' 2 MB entries are
    shot down (the TLB is tagged by guest-virtual region, which the host does not know)."""
    tlb[rows, TLB2_OFF:] = -1
N_TLB = (TLB4_SETS + TLB2_SETS) * TLB_WAYS
LARGE_SHIFT = 9  # 512 4 KB pages in a 2 MB page


def new_tlb(n_threads: int) -> np.ndarray:
    return np.full((max(1, n_threads), N_TLB), -1, dtype=np.int64)


@kernel(inline="always")
def _probe(tlb: np.ndarray, a: int, base: int, tag: int) -> bool:
    """Whether `tag` is in the set at `base`; a hit moves it to the front (most recent)."""
    if tlb[a, base] == tag:
        return True
    for w in range(1, TLB_WAYS):
        if tlb[a, base + w] == tag:
            for k in range(w, 0, -1):
                tlb[a, base + k] = tlb[a, base + k - 1]
            tlb[a, base] = tag
            return True
    return False


@kernel(inline="always")
def _insert(tlb: np.ndarray, a: int, base: int, tag: int, absent: bool) -> None:
    """Put `tag` at the front of its set, the least recent entry out (or its own old place:
    unless the caller knows it is `absent`, just looked up and missed)."""
    w = TLB_WAYS - 1
    if not absent:
        for k in range(TLB_WAYS - 1):
            if tlb[a, base + k] == tag:
                w = k
                break
    for k in range(w, 0, -1):
        tlb[a, base + k] = tlb[a, base + k - 1]
    tlb[a, base] = tag


@kernel(inline="always")
def lookup(tlb: np.ndarray, a: int, gv: int, large: bool) -> bool:
    """Thread a's TLB holds a translation for GVPN gv (4 KB, else 2 MB): a hit. `large`:
    whether the thread can hold 2 MB entries (guest large pages and host large pages: see
    `has_large`); without, the 2 MB part is not probed (it is empty)."""
    if _probe(tlb, a, (gv & (TLB4_SETS - 1)) * TLB_WAYS, gv):
        return True
    if not large:
        return False
    r = gv >> LARGE_SHIFT
    return _probe(tlb, a, TLB2_OFF + (r & (TLB2_SETS - 1)) * TLB_WAYS, r)


@kernel(inline="always")
def has_large(lshare: float, hv_large: bool) -> bool:
    """Whether a thread's TLB can hold 2 MB entries: only translations that are 2 MB at both
    levels are cached as 2 MB."""
    return lshare > 0.0 and hv_large


@kernel(inline="always")
def kind(gv: int, g: int, lshare: float, hv_large: bool, broken: np.ndarray) -> int:
    """The walk's kind for GVPN gv mapped to GPPN g: guest large | host large << 1."""
    r = gv >> LARGE_SHIFT
    k = 1 if lshare > 0.0 and np.int64((r + 1) * lshare) > np.int64(r * lshare) else 0
    if hv_large and broken[g >> LARGE_SHIFT] == 0:
        k |= 2
    return k


@kernel(inline="always")
def fill(tlb: np.ndarray, a: int, gv: int, k: int, absent: bool) -> None:
    """Cache the translation a walk of kind k found: 2 MB only when both levels are."""
    if k == 3:
        r = gv >> LARGE_SHIFT
        _insert(tlb, a, TLB2_OFF + (r & (TLB2_SETS - 1)) * TLB_WAYS, r, absent)
    else:
        _insert(tlb, a, (gv & (TLB4_SETS - 1)) * TLB_WAYS, gv, absent)


@kernel(inline="always")
def miss(tlb: np.ndarray, a: int, gv: int, g: int, lshare: float, hv_large: bool,
         broken: np.ndarray) -> int:
    """A TLB miss on gv (mapped to GPPN g) that `lookup` just found: cache the walk's result;
    returns its kind."""
    k = kind(gv, g, lshare, hv_large, broken)
    fill(tlb, a, gv, k, True)
    return k


@kernel(inline="always")
def refill(tlb: np.ndarray, a: int, gv: int, g: int, lshare: float, hv_large: bool,
           broken: np.ndarray) -> int:
    """A walk for gv whether or not the TLB holds it (the host invalidated the translation):
    cache its result in the entry's old place if there is one; returns its kind."""
    k = kind(gv, g, lshare, hv_large, broken)
    fill(tlb, a, gv, k, False)
    return k


@kernel(inline="always")
def break_large(tlb: np.ndarray, row0: int, row1: int, gv: int, g: int,
                broken: np.ndarray) -> None:
    """The host reclaimed GPPN g (swap, compression, balloon): its 2 MB region is backed by
    4 KB pages from now on, and the 2 MB entry for gv's region is shot down in the TLB of
    every thread of the VM (rows row0 to row1: its vCPUs)."""
    broken[g >> LARGE_SHIFT] = 1
    r = gv >> LARGE_SHIFT
    base = TLB2_OFF + (r & (TLB2_SETS - 1)) * TLB_WAYS
    for a in range(row0, row1):
        for w in range(TLB_WAYS):
            if tlb[a, base + w] == r:
                for k in range(w, TLB_WAYS - 1):
                    tlb[a, base + k] = tlb[a, base + k + 1]
                tlb[a, base + TLB_WAYS - 1] = -1
                break


@kernel(inline="always")
def slice_events(pp: np.ndarray, a: int, refs: int, cost: np.ndarray,
                 shadow: bool) -> tuple:
    """The guest's page-table updates and context switches during `refs` references of
    thread a (their rates are per reference; fractions carry over). Returns (events, traps,
    the traps' time): under shadow paging each event traps."""
    x = pp[a, PP_PT_CARRY] + refs * pp[a, PP_PT_RATE]
    n_pt = np.int64(x)
    pp[a, PP_PT_CARRY] = x - n_pt
    y = pp[a, PP_CTX_CARRY] + refs * pp[a, PP_CTX_RATE]
    n_ctx = np.int64(y)
    pp[a, PP_CTX_CARRY] = y - n_ctx
    if not shadow:
        return n_pt + n_ctx, np.int64(0), 0.0
    return n_pt + n_ctx, n_pt + n_ctx, n_pt * cost[K_PT_TRAP] + n_ctx * cost[K_CTX_TRAP]


# ---- Python side: parameters and costs ------------------------------------------------------

def walk_refs(mmu: str, guest_large: bool, host_large: bool) -> int:
    """Memory references of one page walk (no page-walk cache)."""
    if mmu == "shadow":  # the shadow table maps straight to machine pages: a native walk
        return 3 if guest_large and host_large else 4
    g = 3 if guest_large else 4
    h = 3 if host_large else 4
    return (g + 1) * (h + 1) - 1


def walk_time(mmu: str, guest_large: bool, host_large: bool, walk_ref: float,
              walk_cache: float) -> float:
    """Seconds of one walk: the leaf references (native: the PTE; nested: the guest PTE and
    the data's nested PTE) always go to memory, the page-walk caches remove `walk_cache` of
    the others."""
    n = walk_refs(mmu, guest_large, host_large)
    leaf = 1 if mmu == "shadow" else 2
    return (leaf + (n - leaf) * (1.0 - walk_cache)) * walk_ref


def vm_costs(cost: np.ndarray, mmu: str, costs: object) -> None:
    """Fill a VM's MMU cost entries (costs: the scenario's CostConfig)."""
    for k in range(4):
        cost[K_WALK + k] = (0.0 if mmu == "off" else
                            walk_time(mmu, bool(k & 1), bool(k & 2), costs.walk_ref,
                                      costs.walk_cache))
    shadow = mmu == "shadow"
    cost[K_HIDDEN] = costs.hidden_fault if shadow else 0.0
    cost[K_PT_TRAP] = costs.pt_update_trap if shadow else 0.0
    cost[K_CTX_TRAP] = costs.ctx_switch_trap if shadow else 0.0


CPU_COSTS = [K_WALK, K_WALK + 1, K_WALK + 2, K_WALK + 3, K_HIDDEN, K_PT_TRAP, K_CTX_TRAP]


def thread_row(pp: np.ndarray, mmu: str, large_pages: float, hv_large: bool,
               pt_updates: float, ctx_switches: float, rate: float) -> None:
    """A thread's MMU parameters (pp: its row). Rates are per CPU-second of the process's
    work, and it does `rate` references per CPU-second: per reference, their ratio."""
    pp[PP_MMU] = MMU_CODES[mmu]
    pp[PP_LARGE] = large_pages
    pp[PP_HV_LARGE] = 1.0 if hv_large else 0.0
    pp[PP_PT_RATE] = pt_updates / rate if math.isfinite(rate) and rate > 0 else 0.0
    pp[PP_CTX_RATE] = ctx_switches / rate if math.isfinite(rate) and rate > 0 else 0.0


def vm_rows(pp: np.ndarray, rows: range) -> None:
    """Tell each of a VM's threads (rows of pp) where the VM's threads are."""
    pp[rows.start:rows.stop, PP_ROW0] = rows.start
    pp[rows.start:rows.stop, PP_ROW1] = rows.stop
