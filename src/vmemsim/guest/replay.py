"""Replay a page-reference stream through one guest's replacement policy.

This is the engine's own reference path (kernels.refpath.run_thread), configured as a single
guest with `frames` frames, no free-page watermarks (it evicts exactly when a frame is needed,
as a cache simulator does) and a host with memory to spare, so its misses are comparable
one-to-one with libCacheSim's on the same stream.
"""

from __future__ import annotations

import numpy as np

from vmemsim.guest.policies import get_policy, policy_id
from vmemsim.kernels.freelists import bitmap_set_range, new_bitmap
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import (
    C_GFAULT,
    C_GSWAP_FREE_N,
    C_GSWAP_SLOTS,
    C_REFS,
    N_COSTS,
    N_PP,
    N_PS,
    N_WRNG,
    P_POLICY,
    PP_AHEAD,
    PP_CLOCK,
    PP_DIST,
    PP_SIZE,
    PP_SPEED,
    PP_WSS,
    PS_PENDING,
    PS_TLEN,
    PS_TPOS,
)
from vmemsim.kernels.loops import RUN_THREAD
from vmemsim.kernels.mmu import new_tlb
from vmemsim.kernels.refpath import lookahead
from vmemsim.kernels.rng import new_state
from vmemsim.kernels.state import Threads, new_host, new_vm


@kernel
def _pack(pages: np.ndarray, is_write: np.ndarray, out: np.ndarray) -> tuple:
    """out[i] = (pages[i] << 1) | is_write[i] (is_write empty: all reads), in one pass that
    also returns the smallest and largest page: no temporary arrays, so a chunk of a long
    trace costs no fresh (page-faulted) memory."""
    lo = pages[0]
    hi = pages[0]
    rw = is_write.size > 0
    for i in range(pages.size):
        p = pages[i]
        lo = min(lo, p)
        hi = max(hi, p)
        out[i] = (p << 1) | (1 if rw and is_write[i] else 0)
    return lo, hi


class Replayer:
    """Feed chunks of dense page ids; read `refs` and `misses` at any time."""

    def __init__(self, frames: int, policy: str = "lru", seed: int = 0,
                 clock_insert_referenced: bool = False) -> None:
        if frames <= 0:
            raise ValueError("frames must be positive")
        self.policy = get_policy(policy)
        self.frames = int(frames)
        self._cap = 1024
        self.host = new_host(self.frames + 64)
        self.vm = new_vm(
            0, n_gppn=self.frames, n_gvpn=self._cap, guest_swap_pages=self._cap,
            host_swap_pages=0, zip_slots=0, sample_size=1, watermarks=(0, 0, 0),
            swap_cluster=1, compressible=0.0, content_seed=0,
            insert_referenced=clock_insert_referenced,
            rng=new_state(np.random.SeedSequence(seed)), policy_id=policy_id(policy))
        self.cost = np.zeros((1, N_COSTS))
        self.pp = np.zeros((1, N_PP))
        self.pp[0, PP_DIST] = 4
        self.pp[0, PP_SPEED] = 1.0
        self.ps = np.zeros((1, N_PS), dtype=np.int64)
        self.ps[0, PS_PENDING] = -1
        self._wrng = np.ones((1, N_WRNG), dtype=np.uint64)  # unused: a trace draws no numbers
        self._ztab = np.ones((1, 2))  # unused: no zipf
        self._tbuf = np.empty(0, dtype=np.int64)  # reused by every feed
        self._no_writes = np.empty(0, dtype=np.bool_)
        self._tlb = new_tlb(1)  # unused: the MMU model is off (pp[PP_MMU] = 0)

    def _grow(self, need: int) -> None:
        cap = self._cap
        while cap < need:
            cap *= 2
        v = self.vm
        pt = np.full(cap, -1, dtype=np.int32)
        pt[: v.pt.size] = v.pt
        # Every page may end up in swap: the new slots join the free-slot bitmap.
        bits = new_bitmap(cap, free=False)
        bits[: v.gswap_bits.size] = v.gswap_bits
        bitmap_set_range(bits, self._cap, cap)
        v.vc[C_GSWAP_FREE_N] += cap - self._cap
        v.vc[C_GSWAP_SLOTS] = cap
        self.vm = v._replace(pt=pt, gswap_bits=bits)
        self._cap = cap

    def feed(self, pages: np.ndarray, is_write: np.ndarray | None = None) -> None:
        pages = np.ascontiguousarray(pages, dtype=np.int64)
        if pages.ndim != 1:
            raise ValueError(f"pages must be one-dimensional, not of shape {pages.shape}")
        if pages.size == 0:
            return
        if is_write is None:
            w = self._no_writes  # empty: all reads
        else:
            w = np.asarray(is_write, np.bool_)
            # One flag for the whole chunk, or one per page.
            w = np.full(pages.size, bool(w)) if w.ndim == 0 else np.ascontiguousarray(w)
            if w.shape != pages.shape:
                raise ValueError(f"is_write must have one flag per page: {w.size} flags for "
                                 f"{pages.size} pages")
        if self._tbuf.size < pages.size:
            self._tbuf = np.empty(pages.size, dtype=np.int64)
        tbuf = self._tbuf[: pages.size]
        lo, hi = _pack(pages, w, tbuf)
        if lo < 0:
            raise ValueError("page ids must be non-negative (densify them first)")
        if hi + 1 > self._cap:
            self._grow(int(hi) + 1)
        self.pp[0, PP_SIZE] = self._cap
        self.pp[0, PP_WSS] = self._cap
        self.pp[0, PP_AHEAD] = lookahead(self._cap)
        self.pp[0, PP_CLOCK] = 0.0
        self.ps[0, PS_TPOS] = 0
        self.ps[0, PS_TLEN] = tbuf.size
        th = Threads(pp=self.pp, ps=self.ps, wrng=self._wrng, ztab=self._ztab, tbuf=tbuf,
                     cost=self.cost, tlb=self._tlb)
        # One thread alone, with no end: it replays the whole chunk.
        RUN_THREAD[int(self.vm.pol.meta[P_POLICY])](self.vm, self.host, th, 0, np.inf, np.inf,
                                                    np.inf, np.inf)

    @property
    def refs(self) -> int:
        return int(self.vm.vc[C_REFS])

    @property
    def misses(self) -> int:
        return int(self.vm.vc[C_GFAULT])
