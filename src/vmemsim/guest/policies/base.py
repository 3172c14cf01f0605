"""The guest replacement-policy interface, and the frame list most policies share.

A policy is four compiled functions (`@kernel(inline="always")`, kernels.jit) over a
`PolicyState` (flat arrays indexed by guest frame, i.e. by GPPN); like every kernel they may
not allocate arrays:

    on_insert(pol, g)   frame g now holds a user page (after a fault); make it a candidate
    on_hit(pol, g)      frame g was referenced (called on every guest-level hit: keep it cheap)
    on_remove(pol, g)   frame g stops being a candidate (evicted, freed)
    victim(pol, rng)    the frame to evict, or -1 if there is none; must not remove it

and two hints, which only make the reference loop faster (results never depend on them):

    upcoming(pol, g)    the frame likely to be the victim after frame g (g = NIL: the next
                        victim), or NIL if the policy cannot tell cheaply; the loop starts
                        loading what evicting it will read (list policies: the tail, then
                        each frame's PREV link)
    warm(pol, g)        start loading what on_hit(pol, g) will touch (called a few references
                        before it; `prefetch` only, no stores)

(`no_upcoming` and `no_warm` below, for a policy with nothing to say.)

`links` is a doubly linked list (head = most recently inserted): frame g's previous frame at
`links[2g]` and its next at `links[2g + 1]` (`PREV`, `NEXT`), one cache line for both; `aux`
is one byte per frame for the policy's own use (a reference bit, a small counter), `meta`
holds scalars (see kernels.layout P_*). To add a policy, write a module like clock.py (its
functions, and POLICY naming them), add its name to registry.NAMES, and run
`python -m vmemsim.guest.policies.generate`: the compiled loop reaches it through the
dispatch that writes (dispatch.py, kernels/loops.py).
"""

from typing import NamedTuple

import numpy as np

from vmemsim.kernels.arrays import big_array
from vmemsim.kernels.jit import kernel, prefetch
from vmemsim.kernels.layout import N_PMETA, NIL, P_COUNT, P_HEAD, P_TAIL

PREV = 0  # links[2 * g + PREV]: the frame before g (towards the head)
NEXT = 1  # links[2 * g + NEXT]: the frame after g (towards the tail)


class PolicyState(NamedTuple):
    links: np.ndarray  # int32, two per frame (PREV, NEXT): a hit reads both in one line
    aux: np.ndarray  # uint8 per frame
    meta: np.ndarray  # int64[N_PMETA]


class Policy(NamedTuple):
    name: str
    on_insert: object
    on_hit: object
    on_remove: object
    victim: object
    upcoming: object
    warm: object


def new_policy_state(frames: int, insert_referenced: bool = False,
                     policy_id: int = 0) -> PolicyState:
    from vmemsim.kernels.layout import P_INSERT_REF, P_POLICY

    meta = np.zeros(N_PMETA, dtype=np.int64)
    meta[P_POLICY] = policy_id
    meta[P_HEAD] = NIL
    meta[P_TAIL] = NIL
    meta[P_INSERT_REF] = 1 if insert_referenced else 0
    return PolicyState(
        links=big_array(2 * frames, np.int32, NIL),
        aux=big_array(frames, np.uint8, 0),
        meta=meta,
    )


@kernel(inline="always")
def list_push_head(pol: PolicyState, g: int) -> None:
    head = pol.meta[P_HEAD]
    pol.links[2 * g + PREV] = NIL
    pol.links[2 * g + NEXT] = head
    if head != NIL:
        pol.links[2 * head + PREV] = g
    else:
        pol.meta[P_TAIL] = g
    pol.meta[P_HEAD] = g
    pol.meta[P_COUNT] += 1


@kernel(inline="always")
def list_unlink(pol: PolicyState, g: int) -> None:
    p = pol.links[2 * g + PREV]
    n = pol.links[2 * g + NEXT]
    if p != NIL:
        pol.links[2 * p + NEXT] = n
    else:
        pol.meta[P_HEAD] = n
    if n != NIL:
        pol.links[2 * n + PREV] = p
    else:
        pol.meta[P_TAIL] = p
    pol.links[2 * g + PREV] = NIL
    pol.links[2 * g + NEXT] = NIL
    pol.meta[P_COUNT] -= 1


@kernel(inline="always")
def list_upcoming(pol: PolicyState, g: int) -> int:
    """The list's eviction order: the tail first, then towards the head."""
    if g == NIL:
        return pol.meta[P_TAIL]
    return pol.links[2 * g + PREV]


@kernel(inline="always")
def no_upcoming(pol: PolicyState, g: int) -> int:
    return NIL


@kernel(inline="always")
def no_warm(pol: PolicyState, g: int) -> None:
    pass


@kernel(inline="always")
def warm_links(pol: PolicyState, g: int) -> None:
    prefetch(pol.links, 2 * g)


@kernel
def list_length(links: np.ndarray, head: int, limit: int) -> int:
    """Frames on the list from `head` along NEXT links, or -1 if there are more than `limit`
    (a cycle, or a list longer than its count) or a link points outside the frames: for the
    invariant checks."""
    n = 0
    g = head
    frames = links.size // 2
    while g != NIL:
        if n == limit or g < 0 or g >= frames:
            return -1
        n += 1
        g = links[2 * g + NEXT]
    return n
