"""One simulated timeline: every thread of every VM, and the host's swappers, in time order.

Within a tick, the agents are:

- threads: each busy thread of each process of each VM (a process with `cpu = c` runs
  ceil(c) threads, each at c / ceil(c) of a vCPU); each has a clock, the absolute time of its
  next action, and can wait on its own fault;
- swappers: one per VM the host reclaims from in this tick. It takes a cluster of random
  victims, compresses those that fit and writes the rest to the VM's swap file as one I/O, and
  keeps up to `max_inflight` such writes outstanding, so host swapping proceeds at the pace
  the swap device allows and shares the device with everyone's reads.

The agent with the earliest clock runs next (ties broken by a rotating canonical rank, so no
VM is first by its place in the scenario). A thread runs until the tick's end, or until a miss
that reads a shared device (or takes a machine page while they are scarce) finds it past the
next agent's clock (the miss waits for that agent to catch up), or until it runs `skew` past
the clocks of its own VM's other agents (hits touch only its VM's pages). So every device
receives requests in the order of their simulated times, and a FIFO device with one "busy
until" time is an exact queue (kernels.hostmm.dev_io); a VM alone with its pages runs its
tick in one turn.
"""

from typing import NamedTuple

import numpy as np

from vmemsim.kernels.hostmm import dev_io, host_reclaim
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import (
    C_SWOUT,
    C_SWOUT_IOS,
    C_ZIP,
    HT_DEV_BUSY,
    K_COMPRESS,
    K_HDEV_LAT,
    K_HDEV_SVC,
    P_POLICY,
    PP_CARRY_CPU,
    PP_CARRY_IO,
    PP_CARRY_RUN,
    PP_CLOCK,
    PP_SPEED,
    PS_ACTIVE,
    PS_VM,
    ST_YIELD,
    T_FAULT,
    T_IOWAIT,
    T_RUN,
)
from vmemsim.kernels.loops import run_thread
from vmemsim.kernels.state import vm_view

RECLAIM_ZIP = 1  # Reclaim.mode bits: compress victims that fit
RECLAIM_SWAP = 2  # ... and swap the others


class Reclaim(NamedTuple):
    """The host's swappers, one per VM (index): what each is to do in this tick."""

    want: np.ndarray  # int64[n_vm]: machine pages still to free in this tick
    mode: np.ndarray  # int64[n_vm]: RECLAIM_* bits
    clock: np.ndarray  # float64[n_vm]
    inflight: np.ndarray  # float64[n_vm, max_inflight]: completion times of its writes (ring)
    iq: np.ndarray  # int64[n_vm, 2]: the ring's head and count


class Sched(NamedTuple):
    """Scratch for the scheduler's heap, one entry per agent (threads, then swappers)."""

    heap: np.ndarray  # int64[n_agents]
    key: np.ndarray  # float64[n_agents]: an agent's clock when it was queued
    tie: np.ndarray  # int64[n_agents]: its rank in this tick (for equal clocks)
    rank: np.ndarray  # int64[n_agents]: its canonical rank (by VM and process name)
    live: np.ndarray  # int64[n_agents]: 1 while it is queued
    vrow: np.ndarray  # int64[n_vm + 1]: VM i's threads are rows vrow[i] to vrow[i + 1]


def new_reclaim(n_vm: int, max_inflight: int) -> Reclaim:
    return Reclaim(want=np.zeros(n_vm, dtype=np.int64), mode=np.zeros(n_vm, dtype=np.int64),
                   clock=np.zeros(n_vm), inflight=np.zeros((n_vm, max(1, max_inflight))),
                   iq=np.zeros((n_vm, 2), dtype=np.int64))


@kernel(inline="always")
def _before(s, x: int, y: int) -> bool:  # noqa: ANN001
    kx = s.key[x]
    ky = s.key[y]
    return kx < ky or (kx == ky and s.tie[x] < s.tie[y])


@kernel(inline="always")
def _push(s, n: int, a: int, clock: float) -> int:  # noqa: ANN001
    s.key[a] = clock
    s.live[a] = 1
    i = n
    s.heap[i] = a
    while i > 0:
        up = (i - 1) >> 1
        if not _before(s, s.heap[i], s.heap[up]):
            break
        s.heap[i], s.heap[up] = s.heap[up], s.heap[i]
        i = up
    return n + 1


@kernel(inline="always")
def _pop(s, n: int) -> int:  # noqa: ANN001
    """Remove the earliest agent (the caller reads s.heap[0] first); returns the new count."""
    s.live[s.heap[0]] = 0
    n -= 1
    s.heap[0] = s.heap[n]
    i = 0
    while True:
        lo = 2 * i + 1
        if lo >= n:
            break
        if lo + 1 < n and _before(s, s.heap[lo + 1], s.heap[lo]):
            lo += 1
        if not _before(s, s.heap[lo], s.heap[i]):
            break
        s.heap[i], s.heap[lo] = s.heap[lo], s.heap[i]
        i = lo
    return n


@kernel(inline="always")
def _swap_step(v, h, rc, i: int, hcost: np.ndarray, cluster: int) -> bool:  # noqa: ANN001
    """One step of VM i's swapper at its clock: wait for a write slot if all are taken, else
    reclaim one cluster (kernels.hostmm.host_reclaim) and submit its write. Returns whether it
    has more to do."""
    t = rc.clock[i]
    q = rc.inflight.shape[1]
    head = rc.iq[i, 0]
    cnt = rc.iq[i, 1]
    while cnt > 0 and rc.inflight[i, head] <= t:  # writes done by now
        head = (head + 1) % q
        cnt -= 1
    if cnt >= q:  # every write slot is taken: wait for the oldest write to complete
        rc.clock[i] = rc.inflight[i, head]
        rc.iq[i, 0] = (head + 1) % q
        rc.iq[i, 1] = cnt - 1
        return True
    mode = rc.mode[i]
    sw0 = v.vc[C_SWOUT]
    z0 = v.vc[C_ZIP]
    freed = host_reclaim(v, h, rc.want[i], (mode & RECLAIM_ZIP) != 0,
                         (mode & RECLAIM_SWAP) != 0, cluster)
    wrote = v.vc[C_SWOUT] - sw0
    zipped = v.vc[C_ZIP] - z0
    rc.want[i] -= freed
    if wrote > 0:  # one clustered, asynchronous write of the pages it swapped
        done = t + dev_io(h.ht, HT_DEV_BUSY, t, hcost[K_HDEV_LAT], hcost[K_HDEV_SVC])
        v.vc[C_SWOUT_IOS] += 1
        rc.inflight[i, (head + cnt) % q] = done
        cnt += 1
    rc.clock[i] = t + zipped * hcost[K_COMPRESS]
    rc.iq[i, 0] = head
    rc.iq[i, 1] = cnt
    if freed == 0 and wrote == 0:  # nothing left it may take
        rc.want[i] = 0
    return rc.want[i] > 0


@kernel(inline="always")
def _near(s, a: int, vi: int, n_thr: int) -> float:  # noqa: ANN001
    """The earliest clock of the other queued agents of thread a's VM vi: its other threads
    and its swapper (what else touches its pages)."""
    near = np.inf
    for r in range(s.vrow[vi], s.vrow[vi + 1]):
        if r != a and s.live[r] and s.key[r] < near:
            near = s.key[r]
    sw = n_thr + vi
    if s.live[sw] and s.key[sw] < near:
        near = s.key[sw]
    return near


@kernel
def run_timeline(P, h, th, rc, s, hcost: np.ndarray, now: float, end: float,  # noqa: ANN001
                 skew: float, rot: int, cluster: int, uses: tuple) -> int:
    """Run every active thread (th.ps[:, PS_ACTIVE]) and every swapper with pages to free
    (rc.want) from `now` to `end`, earliest clock first. `uses`: the guest policies the VMs
    have (loops.policies_used). Returns the number of slices run (agent turns), for the
    benchmarks."""
    n_thr = th.pp.shape[0]
    n_vm = rc.want.size
    n_ag = n_thr + n_vm
    n = 0
    for a in range(n_ag):
        s.tie[a] = (s.rank[a] + rot) % n_ag
        s.live[a] = 0
    for a in range(n_thr):
        if th.ps[a, PS_ACTIVE] == 0:
            continue
        c = th.pp[a, PP_CLOCK]
        if c < now:
            c = now
        elif c > now:
            # Still waiting on what it started last tick: that time is this tick's.
            # (In time order: its fault's work, its device wait, then the reference.)
            x = min(c, end) - now
            cpu = min(x, th.pp[a, PP_CARRY_CPU])
            io = min(x - cpu, th.pp[a, PP_CARRY_IO])
            run = min(x - cpu - io, th.pp[a, PP_CARRY_RUN])
            th.pp[a, PP_CARRY_CPU] -= cpu
            th.pp[a, PP_CARRY_IO] -= io
            th.pp[a, PP_CARRY_RUN] -= run
            vt = P.vt[th.ps[a, PS_VM]]
            d = th.pp[a, PP_SPEED]
            vt[T_FAULT] += d * cpu
            vt[T_IOWAIT] += d * io
            vt[T_RUN] += d * run
        th.pp[a, PP_CLOCK] = c
        if c < end:
            n = _push(s, n, a, c)
    for i in range(n_vm):
        if rc.want[i] > 0:
            rc.clock[i] = max(rc.clock[i], now)
            if rc.clock[i] < end:
                n = _push(s, n, n_thr + i, rc.clock[i])
    slices = 0
    while n > 0:
        a = s.heap[0]
        n = _pop(s, n)
        horizon = s.key[s.heap[0]] if n > 0 else np.inf
        slices += 1
        if a < n_thr:
            vi = th.ps[a, PS_VM]
            v = vm_view(P, vi)
            near = _near(s, a, vi, n_thr)
            if run_thread(v, h, th, a, horizon, near, end, skew, P.meta[vi, P_POLICY],
                          *uses) == ST_YIELD:
                n = _push(s, n, a, th.pp[a, PP_CLOCK])
        else:
            i = a - n_thr
            v = vm_view(P, i)
            if _swap_step(v, h, rc, i, hcost, cluster) and rc.clock[i] < end:
                n = _push(s, n, a, rc.clock[i])
    return slices
