"""The flat arrays that hold a host's and its VMs' memory state.

Everything the kernels touch per page lives here, in the smallest dtype that fits. Per GPPN:
pmap (4 B) + pstate (1) + frame_vpn (4) + fslot (4) + policy links and byte (9) = 22 B; per
GVPN: pt (4 B); per MPN: reverse map (6 B); per swap slot: one bit. Free lists cost nothing:
they are linked through these arrays (kernels.freelists).
"""

from __future__ import annotations

import mmap
from typing import NamedTuple

import numpy as np

from vmemsim.guest.policies.base import PolicyState, new_policy_state
from vmemsim.kernels.freelists import END, new_bitmap
from vmemsim.kernels.layout import (
    C_BALLOON_HEAD,
    C_GFREE_HEAD,
    C_GFREE_N,
    C_GSWAP_FREE_N,
    C_GSWAP_SLOTS,
    C_HSWAP_FREE_N,
    C_HSWAP_SLOTS,
    C_ZSLOT_FREE_N,
    C_ZSLOT_HEAD,
    HC_MFREE_HEAD,
    HC_MFREE_N,
    N_COUNTERS,
    N_HOST_COUNTERS,
    N_HOST_TIMES,
    N_TIMES,
    PTE_NONE,
    R_FREE,
)

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
    if fill is not None:
        a.fill(fill)
    return a


class HostArrays(NamedTuple):
    rmap_vm: np.ndarray  # int16: VM owning the MPN, -1 free
    rmap_gppn: np.ndarray  # int32: GPPN it backs, or R_* (zip cache, overhead); free: a link
    hc: np.ndarray  # int64 scalars
    ht: np.ndarray  # float64 scalars (device busy-until)


class VMArrays(NamedTuple):
    vm_id: int
    pt: np.ndarray  # int32 per GVPN: guest page table (all processes, concatenated)
    frame_vpn: np.ndarray  # int32 per GPPN: GVPN mapped there; free/balloon frames: a link
    fslot: np.ndarray  # int32 per GPPN: guest swap slot still holding a clean copy, -1 none
    gswap_bits: np.ndarray  # uint64 bitmap: free guest swap slots
    pmap: np.ndarray  # int32 per GPPN: MPN, or host swap slot, or zip slot (per pstate)
    pstate: np.ndarray  # uint8 per GPPN: host state H_*, guest kind and dirty bit G_* (layout)
    hswap_bits: np.ndarray  # uint64 bitmap: free slots of the VM's .vswp file
    zowner: np.ndarray  # int32 per zip slot (2 KiB each): GPPN held there; free: a link
    zmpns: np.ndarray  # int32 stack: machine pages backing the compression cache
    sample: np.ndarray  # int32: GPPNs sampled this period
    vc: np.ndarray  # int64 counters (layout C_*)
    vt: np.ndarray  # float64 times (layout T_*)
    rng: np.ndarray  # uint64[4] xoshiro state
    wm: np.ndarray  # int64[3]: guest free-page watermarks min, low, high
    content: np.ndarray  # uint64[2]: content seed, compressible threshold (of 2**64)
    pol: PolicyState


def new_host(n_mpn: int) -> HostArrays:
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
    )


def new_vm(
    vm_id: int,
    *,
    n_gppn: int,
    n_gvpn: int,
    guest_swap_pages: int,
    host_swap_pages: int,
    zip_slots: int,
    sample_size: int,
    watermarks: tuple[int, int, int],
    compressible: float,
    content_seed: int,
    insert_referenced: bool,
    rng: np.ndarray,
    policy_id: int = 0,
) -> VMArrays:
    vc = np.zeros(N_COUNTERS, dtype=np.int64)
    vc[C_GFREE_N] = n_gppn
    vc[C_GSWAP_FREE_N] = guest_swap_pages
    vc[C_HSWAP_FREE_N] = host_swap_pages
    vc[C_ZSLOT_FREE_N] = zip_slots
    vc[C_GFREE_HEAD] = END
    vc[C_GSWAP_SLOTS] = guest_swap_pages
    vc[C_HSWAP_SLOTS] = host_swap_pages
    vc[C_BALLOON_HEAD] = END
    vc[C_ZSLOT_HEAD] = END
    content = np.zeros(2, dtype=np.uint64)
    content[0] = np.uint64(content_seed & 0xFFFFFFFFFFFFFFFF)
    content[1] = np.uint64(min(int(compressible * 2.0**64), 2**64 - 1))
    return VMArrays(
        vm_id=vm_id,
        pt=big_array(n_gvpn, np.int32, PTE_NONE),
        frame_vpn=big_array(n_gppn, np.int32, -1),
        fslot=big_array(n_gppn, np.int32, -1),
        gswap_bits=new_bitmap(guest_swap_pages),
        pmap=big_array(n_gppn, np.int32, -1),
        pstate=big_array(n_gppn, np.uint8, 0),
        hswap_bits=new_bitmap(host_swap_pages),
        zowner=np.full(zip_slots, -1, dtype=np.int32),
        zmpns=np.zeros(zip_slots // 2 + 1, dtype=np.int32),
        sample=np.full(sample_size, -1, dtype=np.int32),
        vc=vc,
        vt=np.zeros(N_TIMES, dtype=np.float64),
        rng=rng,
        wm=np.array(watermarks, dtype=np.int64),
        content=content,
        pol=new_policy_state(n_gppn, insert_referenced, policy_id),
    )
