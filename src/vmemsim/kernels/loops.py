# Written by vmemsim.guest.policies.generate from registry.NAMES: do not edit.
"""One compiled reference loop per guest policy (refpath._run_thread with the policy's id
constant), and `run_thread`, which calls the loop of a thread's policy.
"""

from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import ST_DONE
from vmemsim.kernels.refpath import _run_thread


@kernel
def run_thread_clock(v, h, th, a, horizon, near, end, skew):  # noqa: ANN001, ANN201
    return _run_thread(v, h, th, a, horizon, near, end, skew, 0)


@kernel
def run_thread_lru(v, h, th, a, horizon, near, end, skew):  # noqa: ANN001, ANN201
    return _run_thread(v, h, th, a, horizon, near, end, skew, 1)


@kernel
def run_thread_fifo(v, h, th, a, horizon, near, end, skew):  # noqa: ANN001, ANN201
    return _run_thread(v, h, th, a, horizon, near, end, skew, 2)


@kernel
def run_thread_random(v, h, th, a, horizon, near, end, skew):  # noqa: ANN001, ANN201
    return _run_thread(v, h, th, a, horizon, near, end, skew, 3)


RUN_THREAD = (run_thread_clock, run_thread_lru, run_thread_fifo, run_thread_random)


@kernel(inline="always")
def run_thread(  # noqa: ANN201
    v, h, th, a, horizon, near, end, skew,  # noqa: ANN001
    pid, u_clock, u_lru, u_fifo, u_random,  # noqa: ANN001
):
    """Thread `a`'s loop for guest policy `pid`. u_<policy>: 0 if a VM of the run has that
    policy, else None (policies_used): the compiler drops the calls of the policies typed
    None (numba prunes `x is not None` on a None-typed argument, not on a tuple's item), so
    a run compiles or loads only its policies' loops (each takes ~5 s to compile)."""
    if pid == 0:
        if u_clock is not None:
            return run_thread_clock(v, h, th, a, horizon, near, end, skew)
    elif pid == 1:
        if u_lru is not None:
            return run_thread_lru(v, h, th, a, horizon, near, end, skew)
    elif pid == 2:
        if u_fifo is not None:
            return run_thread_fifo(v, h, th, a, horizon, near, end, skew)
    elif u_random is not None:
        return run_thread_random(v, h, th, a, horizon, near, end, skew)
    return ST_DONE


def policies_used(ids: set[int]) -> tuple:
    """run_thread's u_<policy> arguments for a run whose VMs have these policy ids."""
    return tuple(0 if i in ids else None for i in range(len(RUN_THREAD)))
