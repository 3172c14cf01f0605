"""The guest OS's side of a tick: boot, processes that start and exit, each process's working
set, and how the VM's vCPUs are shared by its threads (each thread's speed and clock), before
kernels.timeline runs the tick's references. Replayed traces are read here a window at a time.
"""

from __future__ import annotations

from vmemsim.build import CPU_COSTS, VM
from vmemsim.kernels import guestmm, hostmm, refpath
from vmemsim.kernels.layout import (
    C_BOOT_CURSOR,
    PP_AHEAD,
    PP_BASE,
    PP_CARRY_CPU,
    PP_CARRY_RUN,
    PP_CLOCK,
    PP_COST,
    PP_DIST,
    PP_OFFSET,
    PP_SPEED,
    PP_STRIDE,
    PP_TOFF,
    PP_WSS,
    PS_PENDING,
    PS_SHARED,
    PS_TLEN,
    PS_TPOS,
    T_BLOCKED,
    T_FAULT,
)
from vmemsim.kernels.state import HostArrays, Threads
from vmemsim.workloads.trace import WINDOW


def prepare(v: VM, th: Threads, host: HostArrays, now: float, dt: float, host_wss: int,
            active: list[int]) -> int:
    """Before the timeline runs the tick: boot, processes that start or stop, each
    process's working set, and each active thread's speed and clock (appended to
    `active`). `host_wss`: pages in the working sets of the threads that ran last tick
    (refpath.lookahead). Returns the pages in this VM's working sets this tick."""
    a = v.arrays
    vcpu_time = v.cfg.vcpus * dt
    delay = 0.0
    if v.debt > 0:  # the balloon driver's work took the VM's vCPUs first
        use = min(v.debt, vcpu_time)
        v.debt -= use
        a.vt[T_FAULT] += use
        delay = use / v.cfg.vcpus
    if int(a.vc[C_BOOT_CURSOR]) < v.boot_end:
        budget = vcpu_time - delay * v.cfg.vcpus
        used = hostmm.boot_touch(a, host, v.boot_end, budget, now, v.cost)
        # Its last page may run past the tick: that part is the next tick's work.
        a.vt[T_FAULT] += min(used, budget)
        v.debt += max(0.0, used - budget)
        if int(a.vc[C_BOOT_CURSOR]) < v.boot_end:
            if budget - used > 0:  # boot stalled on machine memory
                a.vt[T_BLOCKED] += budget - used
            return 0
        delay += used / v.cfg.vcpus
    if v.booted_at is None:
        v.booted_at = now
        v.driver.start_time = now + v.cfg.tools_start
    pp = th.pp
    demand = 0.0
    wss = 0
    run: list[int] = []
    for j in v.proc_order:
        w = v.workloads[j]
        if w.cfg.stop is not None and now >= w.cfg.stop and j not in v.exited:
            rows = v.threads[j]
            guestmm.free_process(a, int(pp[rows[0], PP_BASE]), w.size)
            for r in rows:
                th.ps[r, PS_PENDING] = -1
            pp[rows, PP_CARRY_RUN:PP_CARRY_CPU + 1] = 0.0
            v.exited.add(j)
        if not w.active(now):
            continue
        shape = w.shape(now)
        if shape is not v.shapes.get(j):  # the same object while it does not change
            v.shapes[j] = shape
            for r in v.threads[j]:
                pp[r, PP_WSS] = shape.wss
                pp[r, PP_OFFSET] = shape.offset
                pp[r, PP_DIST] = shape.dist
                pp[r, PP_STRIDE] = shape.stride
            if shape.dist == 1 and v.zkey.get(j) != (shape.wss, w.cfg.alpha):
                th.ztab[v.threads[j]] = refpath.zipf_table(shape.wss, w.cfg.alpha)
                v.zkey[j] = (shape.wss, w.cfg.alpha)
        ahead = refpath.lookahead(shape.wss, host_wss)
        if ahead != v.ahead.get(j):
            v.ahead[j] = ahead
            pp[v.threads[j], PP_AHEAD] = ahead
        wss += shape.wss
        demand += w.cpu
        run.append(j)
    if not run:
        return wss
    if v.feeds:
        refill_traces(v, th, now, dt)
    # The VM's vCPUs are shared by its threads in proportion to what each keeps busy.
    scale = min(1.0, v.cfg.vcpus / demand)
    first = len(active)
    for j in run:
        w = v.workloads[j]
        rows = v.threads[j]
        speed = w.cpu / len(rows) * scale
        if speed != v.speed.get(j):
            v.speed[j] = speed
            for r in rows:
                pp[r, PP_SPEED] = speed
                pp[r, PP_COST] = w.ref_cost / speed
                c = th.cost[r]
                c[:] = v.cost
                c[CPU_COSTS] /= speed
        for r in rows:
            # The balloon's or the boot's work (delay) takes each vCPU first, whether its
            # thread was ready or still waiting on what it started last tick.
            pp[r, PP_CLOCK] = max(pp[r, PP_CLOCK], now) + delay
            active.append(r)
    shared = 1 if len(active) - first > 1 else 0
    for r in active[first:]:
        th.ps[r, PS_SHARED] = shared
    return wss


def refill_traces(vm: VM, th: Threads, now: float, dt: float) -> None:
    """Top up the trace window of each of the VM's replayed traces that runs low."""
    for j, feed in vm.feeds.items():
        r = vm.threads[j][0]
        off = int(th.pp[r, PP_TOFF])
        win = th.tbuf[off: off + WINDOW]
        pos, n = int(th.ps[r, PS_TPOS]), int(th.ps[r, PS_TLEN])
        if n - pos > WINDOW // 2 or (feed.done and pos >= n):
            continue
        keep = win[pos:n].copy()
        until = now + dt - vm.workloads[j].cfg.start
        th.ps[r, PS_TLEN] = feed.fill(win, keep, until)
        th.ps[r, PS_TPOS] = 0

