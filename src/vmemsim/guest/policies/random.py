"""Random: the victim is a uniformly random resident frame.

Frames are probed at random (aux marks membership); after a bounded number of misses, as when
few frames are resident, it walks the list from a random point instead.
"""

from vmemsim.guest.policies.base import (
    PREV,
    Policy,
    PolicyState,
    list_push_head,
    list_unlink,
    no_upcoming,
    no_warm,
)
from vmemsim.kernels.jit import kernel
from vmemsim.kernels.layout import NIL, P_COUNT, P_TAIL
from vmemsim.kernels.rng import next_below


@kernel(inline="always")
def on_insert(pol: PolicyState, g: int) -> None:
    pol.aux[g] = 1
    list_push_head(pol, g)


@kernel(inline="always")
def on_hit(pol: PolicyState, g: int) -> None:
    pass


@kernel(inline="always")
def on_remove(pol: PolicyState, g: int) -> None:
    pol.aux[g] = 0
    list_unlink(pol, g)


@kernel(inline="always")
def victim(pol: PolicyState, rng) -> int:  # noqa: ANN001
    n = pol.aux.size
    count = pol.meta[P_COUNT]
    if count == 0:
        return NIL
    for _ in range(64):
        g = next_below(rng, n)
        if pol.aux[g]:
            return g
    # Sparse membership: take the k-th member along the list, k uniform.
    k = next_below(rng, count)
    g = pol.meta[P_TAIL]
    for _ in range(k):
        g = pol.links[2 * g + PREV]
    return g


upcoming = no_upcoming
warm = no_warm

POLICY = Policy("random", on_insert, on_hit, on_remove, victim, upcoming, warm)
