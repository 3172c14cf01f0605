"""Compiled dispatch from a policy id (pol.meta[P_POLICY]) to that policy's functions.

Numba cannot cache a kernel that receives functions as arguments, so the reference path calls
these instead, passing the id (a constant in each policy's compiled loop, so the other
policies' branches are dropped). They and the policies' functions are inlined into the loop
(kernel(inline="always")): a call that passes arrays costs more than a hit's own work.
To add a policy: write its module (see base.py), give it the next id in REGISTRY, and add one
line to each function here (six: four operations, two hints).
"""

from vmemsim.guest.policies import clock, fifo, lru
from vmemsim.guest.policies import random as rnd
from vmemsim.guest.policies.base import PolicyState
from vmemsim.kernels.jit import kernel

REGISTRY = {"clock": 0, "lru": 1, "fifo": 2, "random": 3}


@kernel(inline="always")
def on_insert(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        clock.on_insert(pol, g)
    elif pid == 1:
        lru.on_insert(pol, g)
    elif pid == 2:
        fifo.on_insert(pol, g)
    else:
        rnd.on_insert(pol, g)


@kernel(inline="always")
def on_hit(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        clock.on_hit(pol, g)
    elif pid == 1:
        lru.on_hit(pol, g)
    elif pid == 2:
        fifo.on_hit(pol, g)
    else:
        rnd.on_hit(pol, g)


@kernel(inline="always")
def on_remove(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        clock.on_remove(pol, g)
    elif pid == 1:
        lru.on_remove(pol, g)
    elif pid == 2:
        fifo.on_remove(pol, g)
    else:
        rnd.on_remove(pol, g)


@kernel(inline="always")
def victim(pid: int, pol: PolicyState, rng) -> int:  # noqa: ANN001
    if pid == 0:
        return clock.victim(pol, rng)
    if pid == 1:
        return lru.victim(pol, rng)
    if pid == 2:
        return fifo.victim(pol, rng)
    return rnd.victim(pol, rng)


@kernel(inline="always")
def upcoming(pid: int, pol: PolicyState, g: int) -> int:
    if pid == 0:
        return clock.upcoming(pol, g)
    if pid == 1:
        return lru.upcoming(pol, g)
    if pid == 2:
        return fifo.upcoming(pol, g)
    return rnd.upcoming(pol, g)


@kernel(inline="always")
def warm(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        clock.warm(pol, g)
    elif pid == 1:
        lru.warm(pol, g)
    elif pid == 2:
        fifo.warm(pol, g)
    else:
        rnd.warm(pol, g)
