"""FIFO: frames leave in the order they were filled; hits change nothing."""

import numba as nb

from vmemsim.guest.policies.base import Policy, PolicyState, list_push_head, list_unlink
from vmemsim.kernels.layout import P_TAIL


@nb.njit(cache=True, inline="always")
def on_insert(pol: PolicyState, g: int) -> None:
    list_push_head(pol, g)


@nb.njit(cache=True, inline="always")
def on_hit(pol: PolicyState, g: int) -> None:
    pass


@nb.njit(cache=True, inline="always")
def on_remove(pol: PolicyState, g: int) -> None:
    list_unlink(pol, g)


@nb.njit(cache=True, inline="always")
def victim(pol: PolicyState, rng) -> int:  # noqa: ANN001
    return pol.meta[P_TAIL]


POLICY = Policy("fifo", on_insert, on_hit, on_remove, victim)
