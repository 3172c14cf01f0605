"""CLOCK (second chance) with one reference bit per frame.

Kept as a queue, as libCacheSim does: the hand is the tail; a frame whose bit is set gets the
bit cleared and goes back to the head, which is what a circular hand sweeping a frame array
does, but independent of the order of the guest's free list. Whether a newly inserted page
starts with its bit set is an option (P_INSERT_REF): hardware sets the accessed bit on the
faulting access, while libCacheSim inserts with the bit clear.
"""

from vmemsim.guest.policies.base import (
    Policy,
    PolicyState,
    list_push_head,
    list_unlink,
    list_upcoming,
)
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import NIL, P_INSERT_REF, P_TAIL


@kernel(inline="always")
def on_insert(pol: PolicyState, g: int) -> None:
    pol.aux[g] = 1 if pol.meta[P_INSERT_REF] else 0
    list_push_head(pol, g)


@kernel(inline="always")
def on_hit(pol: PolicyState, g: int) -> None:
    pol.aux[g] = 1


@kernel(inline="always")
def on_remove(pol: PolicyState, g: int) -> None:
    pol.aux[g] = 0
    list_unlink(pol, g)


@kernel(inline="always")
def victim(pol: PolicyState, rng) -> int:  # noqa: ANN001
    # Terminates: each pass clears a bit, so within COUNT+1 steps a clear bit reaches the tail.
    while True:
        g = pol.meta[P_TAIL]
        if g == NIL or pol.aux[g] == 0:
            return g
        pol.aux[g] = 0
        list_unlink(pol, g)
        list_push_head(pol, g)


@kernel(inline="always")
def warm(pol: PolicyState, g: int) -> None:
    prefetch(pol.aux, g)


upcoming = list_upcoming

POLICY = Policy("clock", on_insert, on_hit, on_remove, victim, upcoming, warm)
