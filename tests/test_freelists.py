"""Free lists threaded through per-page arrays, and free-slot bitmaps, against plain oracles."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import small
from vmemsim.engine import Simulation
from vmemsim.invariants import InvariantError, check_all
from vmemsim.kernels import guestmm, hostmm
from vmemsim.kernels.freelists import (
    END,
    bitmap_members,
    bitmap_set_range,
    bm_put,
    bm_take,
    fpop,
    lpop,
    lpush,
    members,
    new_bitmap,
)
from vmemsim.kernels.layout import (
    C_BALLOON_HEAD,
    C_BALLOON_N,
    C_GFREE_HEAD,
    C_HSWAP_CURSOR,
    C_HSWAP_FREE_N,
    C_SWAPPED,
    G_DIRTY,
    HC_MFREE_BUMP,
    HC_MFREE_HEAD,
    HC_MFREE_N,
    NIL,
    P_HEAD,
    P_TAIL,
)

HEAD, BUMP, CURSOR = 0, 1, 2


def _meta() -> np.ndarray:
    meta = np.zeros(3, dtype=np.int64)
    meta[HEAD] = END
    return meta


def test_list_and_bump_hand_out_pages_in_the_order_of_a_descending_stack() -> None:
    """The order the explicit stacks had (initially n-1..0, pops from the top), so replacing
    them changed no result."""
    n = 50
    rng = np.random.default_rng(3)
    links = np.full(n, -1, dtype=np.int32)
    meta = _meta()
    stack = list(range(n - 1, -1, -1))
    held: list[int] = []
    for _ in range(2000):
        if held and (not stack or rng.random() < 0.5):
            x = held.pop(int(rng.integers(len(held))))
            lpush(links, meta, HEAD, x)
            stack.append(x)
        else:
            got = fpop(links, meta, HEAD, BUMP, n)
            want = stack.pop() if stack else -1
            assert got == want
            if got >= 0:
                held.append(got)
                assert links[got] == END  # a taken entry no longer carries a link
    free = members(links, meta[HEAD], meta[BUMP], n, len(stack))
    assert sorted(free.tolist()) == sorted(stack)
    assert fpop(links, meta, HEAD, BUMP, n) == (stack[-1] if stack else -1)


def test_links_are_negative_so_they_cannot_pass_for_page_numbers() -> None:
    links = np.full(8, 7, dtype=np.int32)  # "mapped" entries hold page numbers >= 0
    meta = _meta()
    for x in (3, 5, 0):
        lpush(links, meta, HEAD, x)
    assert (links[[3, 5, 0]] < 0).all() and links[3] == END  # the first pushed ends the list
    assert [lpop(links, meta, HEAD) for _ in range(4)] == [0, 5, 3, -1]


def test_members_refuses_a_list_longer_than_its_counter_or_a_cycle() -> None:
    links = np.full(4, -1, dtype=np.int32)
    meta = _meta()
    lpush(links, meta, HEAD, 1)
    lpush(links, meta, HEAD, 2)
    with pytest.raises(ValueError, match="longer"):
        members(links, meta[HEAD], 4, 4, 1)
    links[1] = -2 - 2  # 2 -> 1 -> 2 -> ...
    with pytest.raises(ValueError, match="cycle"):
        members(links, meta[HEAD], 4, 4, 10)
    links[1] = -2 - 4  # 2 -> 1 -> 4: past the end of the array, read nowhere
    with pytest.raises(ValueError, match="bad link"):
        members(links, meta[HEAD], 4, 4, 10)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 200, 1000])
def test_bitmap_against_a_set(n: int) -> None:
    rng = np.random.default_rng(n)
    words = new_bitmap(n)
    assert bitmap_members(words).tolist() == list(range(n))
    meta = np.zeros(3, dtype=np.int64)
    free = set(range(n))
    for _ in range(5 * n):
        if free and (len(free) == n or rng.random() < 0.6):
            s = bm_take(words, meta, CURSOR)
            assert s in free
            free.remove(s)
        else:
            s = int(rng.choice(sorted(set(range(n)) - free)))
            bm_put(words, s)
            free.add(s)
        assert bitmap_members(words).tolist() == sorted(free)


def test_bitmap_ranges() -> None:
    for lo, hi in [(0, 0), (0, 1), (3, 64), (0, 64), (5, 200), (64, 128), (63, 65)]:
        words = new_bitmap(256, free=False)
        bitmap_set_range(words, lo, hi)
        assert bitmap_members(words).tolist() == list(range(lo, hi))


def test_bitmap_shows_a_stray_bit_past_the_last_slot() -> None:
    words = new_bitmap(70)
    bm_put(words, 100)  # in the last word, past slot 69: the invariants compare with n
    assert bitmap_members(words).tolist() == [*range(70), 100]


def test_bitmap_finds_the_last_free_slot_of_a_full_map() -> None:
    n = 64 * 40 + 7
    words = new_bitmap(n)
    meta = np.zeros(3, dtype=np.int64)
    taken = [bm_take(words, meta, CURSOR) for _ in range(n)]
    assert sorted(taken) == list(range(n)) and not words.any()
    bm_put(words, 5)  # behind the cursor: the search wraps around
    assert bm_take(words, meta, CURSOR) == 5


# ---- the invariant checks see a corrupted state ---------------------------------------------
def _pressured() -> Simulation:
    """The small scenario after 12 s: balloon, compression and host swap all hold pages."""
    sim = Simulation(small())
    for _ in range(12):
        sim.step_second()
    check_all(sim)
    a = sim.vms[0].arrays
    assert a.vc[C_BALLOON_N] > 0 and sum(v.arrays.vc[C_SWAPPED] for v in sim.vms) > 0
    return sim


def _corrupt_guest_free_list_twice(sim: Simulation) -> None:
    a = sim.vms[0].arrays
    g = int(a.vc[C_GFREE_HEAD])  # already free: push it again
    assert g >= 0
    guestmm.gfree_push(a, g)


def _leak_machine_page(sim: Simulation) -> None:
    hostmm.mpn_alloc(sim.host)  # taken off the free list, owned by nobody


def _leak_host_swap_slot(sim: Simulation) -> None:
    v = next(v.arrays for v in sim.vms if v.arrays.vc[C_HSWAP_FREE_N] > 0)
    bm_take(v.hswap_bits, v.vc, C_HSWAP_CURSOR)  # bit cleared, no page holds the slot


def _lose_balloon_frame(sim: Simulation) -> None:
    a = sim.vms[0].arrays
    lpop(a.frame_vpn, a.vc, C_BALLOON_HEAD)  # off the list, still counted and marked


def _free_list_cycle(sim: Simulation) -> None:
    h = sim.host
    m = int(h.hc[HC_MFREE_HEAD])
    assert m >= 0
    h.rmap_gppn[m] = -2 - m


def _drop_dirty_bit(sim: Simulation) -> None:
    a = sim.vms[0].arrays
    g = int(np.flatnonzero((a.pstate & G_DIRTY) != 0)[0])
    a.pstate[g] &= np.uint8(0xFF & ~G_DIRTY)  # only copy in RAM, yet eviction would drop it


def _listed_and_never_used(sim: Simulation) -> None:
    h = sim.host
    bump = int(h.hc[HC_MFREE_BUMP])
    assert bump < h.rmap_vm.size
    hostmm.mpn_alloc(sim.host)  # leaks one MPN...
    lpush(h.rmap_gppn, h.hc, HC_MFREE_HEAD, bump)  # ...and lists one the cursor still holds
    h.hc[HC_MFREE_N] += 1


def _unlink_policy_list(sim: Simulation) -> None:
    a = sim.vms[0].arrays
    a.pol.links[:] = NIL  # every link gone, the count kept


def _swap_two_links(sim: Simulation) -> None:
    a = sim.vms[0].arrays
    head = int(a.pol.meta[P_HEAD])
    second = int(a.pol.links[2 * head + 1])
    a.pol.links[2 * second + 1], a.pol.links[2 * head + 1] = head, second  # NEXT loops back


def _cycle_beside_the_chain(sim: Simulation) -> None:
    """Two frames cut out of the chain into a cycle of their own; every local link agrees."""
    a = sim.vms[0].arrays
    lk = a.pol.links
    t = int(a.pol.meta[P_TAIL])
    x = int(lk[2 * t])  # the tail's PREV
    y = int(lk[2 * x])
    lk[2 * y + 1] = t  # y skips x
    lk[2 * t] = y
    lk[2 * x], lk[2 * x + 1] = x, x  # x alone in a cycle of one


@pytest.mark.parametrize("corrupt", [_corrupt_guest_free_list_twice, _leak_machine_page,
                                     _leak_host_swap_slot, _lose_balloon_frame,
                                     _free_list_cycle, _drop_dirty_bit,
                                     _listed_and_never_used, _unlink_policy_list,
                                     _swap_two_links, _cycle_beside_the_chain])
def test_invariants_catch_corruption(corrupt) -> None:  # noqa: ANN001
    sim = _pressured()
    corrupt(sim)
    with pytest.raises(InvariantError):
        check_all(sim)
