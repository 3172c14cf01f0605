# Written by vmemsim.guest.policies.generate from registry.NAMES: do not edit.
"""Compiled dispatch from a policy id (pol.meta[P_POLICY]) to that policy's functions.

The reference path calls these with the id, a constant in each policy's compiled loop
(kernels.loops), so the other policies' branches are dropped; they and the policies'
functions are inlined (kernel(inline="always")): a call that passes arrays costs more than a
hit's own work.
"""

from vmemsim.guest.policies import clock as p_clock
from vmemsim.guest.policies import fifo as p_fifo
from vmemsim.guest.policies import lru as p_lru
from vmemsim.guest.policies import random as p_random
from vmemsim.guest.policies.base import PolicyState
from vmemsim.kernels.jit import kernel


@kernel(inline="always")
def on_insert(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        return p_clock.on_insert(pol, g)
    if pid == 1:
        return p_lru.on_insert(pol, g)
    if pid == 2:
        return p_fifo.on_insert(pol, g)
    return p_random.on_insert(pol, g)


@kernel(inline="always")
def on_hit(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        return p_clock.on_hit(pol, g)
    if pid == 1:
        return p_lru.on_hit(pol, g)
    if pid == 2:
        return p_fifo.on_hit(pol, g)
    return p_random.on_hit(pol, g)


@kernel(inline="always")
def on_remove(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        return p_clock.on_remove(pol, g)
    if pid == 1:
        return p_lru.on_remove(pol, g)
    if pid == 2:
        return p_fifo.on_remove(pol, g)
    return p_random.on_remove(pol, g)


@kernel(inline="always")
def victim(pid: int, pol: PolicyState, rng) -> int:  # noqa: ANN001
    if pid == 0:
        return p_clock.victim(pol, rng)
    if pid == 1:
        return p_lru.victim(pol, rng)
    if pid == 2:
        return p_fifo.victim(pol, rng)
    return p_random.victim(pol, rng)


@kernel(inline="always")
def upcoming(pid: int, pol: PolicyState, g: int) -> int:
    if pid == 0:
        return p_clock.upcoming(pol, g)
    if pid == 1:
        return p_lru.upcoming(pol, g)
    if pid == 2:
        return p_fifo.upcoming(pol, g)
    return p_random.upcoming(pol, g)


@kernel(inline="always")
def warm(pid: int, pol: PolicyState, g: int) -> None:
    if pid == 0:
        return p_clock.warm(pol, g)
    if pid == 1:
        return p_lru.warm(pol, g)
    if pid == 2:
        return p_fifo.warm(pol, g)
    return p_random.warm(pol, g)
