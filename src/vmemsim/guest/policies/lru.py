"""LRU: every hit moves the frame to the head; the victim is the tail (least recently used)."""

from vmemsim.guest.policies.base import (
    Policy,
    PolicyState,
    list_push_head,
    list_unlink,
    list_upcoming,
    warm_links,
)
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import P_HEAD, P_TAIL


@kernel(inline="always")
def on_insert(pol: PolicyState, g: int) -> None:
    list_push_head(pol, g)


@kernel(inline="always")
def on_hit(pol: PolicyState, g: int) -> None:
    if pol.meta[P_HEAD] != g:
        list_unlink(pol, g)
        list_push_head(pol, g)


@kernel(inline="always")
def on_remove(pol: PolicyState, g: int) -> None:
    list_unlink(pol, g)


@kernel(inline="always")
def victim(pol: PolicyState, rng) -> int:  # noqa: ANN001 - rng is a uint64[4] state
    return pol.meta[P_TAIL]


upcoming = list_upcoming
warm = warm_links

POLICY = Policy("lru", on_insert, on_hit, on_remove, victim, upcoming, warm)
