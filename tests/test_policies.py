"""Guest replacement policies against libCacheSim on the same reference streams."""

from __future__ import annotations

import libcachesim as lcs
import numpy as np
import pytest

from vmemsim.guest.replay import Replayer
from vmemsim.kernels.layout import C_GSWOUT

N = 60_000


def _stream(kind: str, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zipf":
        return (rng.zipf(1.15, N) % 4000).astype(np.int64)
    if kind == "loop":  # a scan slightly larger than most caches: LRU's worst case
        return np.tile(np.arange(700, dtype=np.int64), N // 700 + 1)[:N]
    # hot/cold mixture
    hot = rng.integers(0, 200, N)
    cold = rng.integers(200, 5000, N)
    return np.where(rng.random(N) < 0.8, hot, cold).astype(np.int64)


def _lcs_misses(cls: type, size: int, pages: np.ndarray) -> int:
    cache = cls(cache_size=size)
    req = lcs.Request()
    req.obj_size = 1
    misses = 0
    for p in pages.tolist():
        req.obj_id = p
        if not cache.get(req):
            misses += 1
    return misses


def _ours(policy: str, size: int, pages: np.ndarray, **kw: object) -> Replayer:
    r = Replayer(size, policy, **kw)
    half = pages.size // 2  # two chunks: state must carry across feeds
    r.feed(pages[:half])
    r.feed(pages[half:])
    return r


@pytest.mark.parametrize("kind", ["zipf", "loop", "hotcold"])
@pytest.mark.parametrize("size", [16, 200, 650, 3000])
@pytest.mark.parametrize("policy,cls", [("lru", lcs.LRU), ("fifo", lcs.FIFO),
                                        ("clock", lcs.Clock)])
def test_exact_against_libcachesim(policy: str, cls: type, size: int, kind: str) -> None:
    pages = _stream(kind)
    r = _ours(policy, size, pages, clock_insert_referenced=False)
    assert r.refs == pages.size
    assert r.misses == _lcs_misses(cls, size, pages)


def _uniform_random_misses(size: int, pages: np.ndarray, seed: int) -> int:
    """A plain reference model: evict a uniformly random resident page."""
    rng = np.random.default_rng(seed)
    slots: list[int] = []
    where: dict[int, int] = {}
    misses = 0
    for p in pages.tolist():
        if p in where:
            continue
        misses += 1
        if len(slots) < size:
            where[p] = len(slots)
            slots.append(p)
            continue
        k = int(rng.integers(len(slots)))
        del where[slots[k]]
        slots[k] = p
        where[p] = k
    return misses


@pytest.mark.parametrize("size", [200, 650])
def test_random_is_statistically_close(size: int) -> None:
    pages = _stream("hotcold")
    ours = [_ours("random", size, pages, seed=s).misses for s in range(6)]
    model = [_uniform_random_misses(size, pages, s) for s in range(6)]
    assert np.std(ours) > 0  # seeds do change the victims
    # Means of 6 runs each; between-seed spread here is about 0.5%.
    assert abs(np.mean(ours) - np.mean(model)) / np.mean(model) < 0.015
    # libCacheSim's Random picks a random hash bucket, which is not quite uniform over
    # objects: it agrees only to a few percent.
    theirs = _lcs_misses(lcs.Random, size, pages)
    assert abs(np.mean(ours) - theirs) / theirs < 0.06


def test_clock_insert_rule_matters() -> None:
    pages = _stream("hotcold")
    clear = _ours("clock", 200, pages, clock_insert_referenced=False).misses
    setbit = _ours("clock", 200, pages, clock_insert_referenced=True).misses
    assert clear != setbit


def test_policies_rank_as_expected_on_a_loop() -> None:
    # A cyclic scan of 700 pages through 650 frames: LRU and FIFO miss every time.
    pages = _stream("loop")
    assert _ours("lru", 650, pages).misses == pages.size
    assert _ours("random", 650, pages).misses < 0.5 * pages.size


def test_cold_misses_only_when_everything_fits() -> None:
    pages = _stream("zipf")
    for policy in ("lru", "fifo", "clock", "random"):
        assert _ours(policy, 5000, pages).misses == np.unique(pages).size


def test_bad_policy_and_frames() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        Replayer(10, "belady")
    with pytest.raises(ValueError, match="frames"):
        Replayer(0, "lru")


@pytest.mark.parametrize("policy", ["lru", "fifo", "clock", "random"])
def test_upcoming_names_the_next_victims(policy: str) -> None:
    """The eviction hint (`upcoming`) the reference loop prefetches by: for the list policies,
    with no reference in between (and CLOCK's bits clear), it names exactly the frames that
    victim() then evicts, in order; random makes no guess."""
    from vmemsim.guest.policies import new_policy_state, policy_id
    from vmemsim.guest.policies.dispatch import on_hit, on_insert, on_remove, upcoming, victim
    from vmemsim.kernels.layout import NIL
    from vmemsim.kernels.rng import new_state

    pid = policy_id(policy)
    pol = new_policy_state(64, policy_id=pid)
    rng = new_state(np.random.SeedSequence(1))
    order = np.random.default_rng(5).permutation(64)
    for g in order[:50]:
        on_insert(pid, pol, int(g))
    if policy == "lru":  # hits reorder the list: the hint must follow them
        for g in order[:10]:
            on_hit(pid, pol, int(g))
    chain = [upcoming(pid, pol, NIL)]
    while chain[-1] != NIL and len(chain) < 60:
        chain.append(upcoming(pid, pol, chain[-1]))
    if policy == "random":
        assert chain == [NIL]
        return
    evicted = []
    while True:
        g = victim(pid, pol, rng)
        if g == NIL:
            break
        evicted.append(g)
        on_remove(pid, pol, g)
    assert len(evicted) == 50
    assert chain == [*evicted, NIL]


def test_feed_checks_its_input_and_counts_writes() -> None:
    r = Replayer(4, "lru")
    with pytest.raises(ValueError, match="non-negative"):
        r.feed(np.array([3, -1, 2]))
    with pytest.raises(ValueError, match="one flag per page"):
        r.feed(np.array([1, 2, 3]), np.array([True, False]))
    with pytest.raises(ValueError, match="one flag per page"):
        r.feed(np.array([1, 2, 3]), np.array([], bool))
    with pytest.raises(ValueError, match="one-dimensional"):
        r.feed(np.zeros((2, 2), np.int64))
    assert r.refs == 0
    # Writes dirty their pages: evicting them writes guest swap; reads of fresh pages do too
    # (anonymous memory has no other copy), but a clean reloaded page leaves without a write.
    r.feed(np.arange(8), np.zeros(8, bool))
    r.feed(np.arange(8), np.zeros(8, bool))
    reads = int(r.vm.vc[C_GSWOUT])
    w = Replayer(4, "lru")
    w.feed(np.arange(8), np.zeros(8, bool))
    w.feed(np.arange(8), np.ones(8, bool))
    assert int(w.vm.vc[C_GSWOUT]) > reads
    assert (w.refs, w.misses) == (r.refs, r.misses) == (16, 16)
    # One flag for the whole chunk is the same as a flag per page.
    s = Replayer(4, "lru")
    s.feed(np.arange(8), False)
    s.feed(np.arange(8), True)
    assert int(s.vm.vc[C_GSWOUT]) == int(w.vm.vc[C_GSWOUT])


def test_the_compiled_dispatch_is_written_from_the_registry() -> None:
    """dispatch.py and kernels/loops.py are what the generator writes from registry.NAMES:
    a policy added to the registry reaches the compiled loop once they are regenerated."""
    from vmemsim.guest.policies import generate, registry

    assert generate.DISPATCH.read_text() == generate.dispatch_source()
    assert generate.LOOPS.read_text() == generate.loops_source()
    more = (*registry.NAMES, "mine")
    assert "p_mine.victim(pol, rng)" in generate.dispatch_source(more)
    assert f"return _run_thread(v, h, th, a, horizon, near, end, skew, {len(more) - 1})" in (
        generate.loops_source(more))


def test_every_registered_policy_is_a_choice_everywhere() -> None:
    from vmemsim.config.schema import POLICIES as SCHEMA
    from vmemsim.guest.policies import POLICIES, policy_id
    from vmemsim.guest.policies.registry import NAMES
    from vmemsim.kernels.loops import RUN_THREAD
    from vmemsim.traces.cli import POLICIES as CLI

    assert tuple(POLICIES) == NAMES == SCHEMA == CLI
    assert [policy_id(n) for n in NAMES] == list(range(len(RUN_THREAD)))
