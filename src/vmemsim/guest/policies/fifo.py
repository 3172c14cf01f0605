"""FIFO: frames leave in the order they were filled; hits change nothing."""

from vmemsim.guest.policies.base import (
    Policy,
    PolicyState,
    list_push_head,
    list_unlink,
    list_upcoming,
    no_warm,
)
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import P_TAIL


@kernel(inline="always")
def on_insert(pol: PolicyState, g: int) -> None:
    list_push_head(pol, g)


@kernel(inline="always")
def on_hit(pol: PolicyState, g: int) -> None:
    pass


@kernel(inline="always")
def on_remove(pol: PolicyState, g: int) -> None:
    list_unlink(pol, g)


@kernel(inline="always")
def victim(pol: PolicyState, rng) -> int:  # noqa: ANN001
    return pol.meta[P_TAIL]


upcoming = list_upcoming
warm = no_warm

POLICY = Policy("fifo", on_insert, on_hit, on_remove, victim, upcoming, warm)
