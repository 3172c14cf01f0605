"""xoshiro256** in numba: explicit state arrays, so every component's stream is reproducible."""

import hashlib

import numpy as np

from vmemsim.kernels.jit import kernel


def new_state(seed_seq: np.random.SeedSequence) -> np.ndarray:
    """Four uint64 words from a SeedSequence (never all zero)."""
    words = seed_seq.generate_state(4, dtype=np.uint64)
    if not words.any():
        words[0] = np.uint64(1)
    return words


def name_key(name: str) -> int:
    """A stable 63-bit number for a name (not Python's hash, which changes per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little") >> 1


@kernel(inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


# The generator's step on a state held in four locals (a tuple), for hot loops: a state in an
# array goes through memory on every step, since the compiler cannot rule out that the loop's
# other stores alias it, and the store-to-load latency then chains every draw to the last.

@kernel(inline="always")
def step(st: tuple) -> tuple:
    """One xoshiro256** output and the next state: (u64, state)."""
    s0, s1, s2, s3 = st
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, (s0, s1, s2, s3)


@kernel(inline="always")
def to_float(x: np.uint64) -> float:
    """Uniform in [0, 1) from the top 53 bits of one output."""
    return float(x >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel(inline="always")
def to_below(x: np.uint64, n: int) -> int:
    """Uniform integer in [0, n), 0 < n < 2**32, from one output by multiply-shift (no
    division: this is on the hot path). Bias below n / 2**32 per value: negligible for pages."""
    return np.int64(((x >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@kernel(inline="always")
def load(s: np.ndarray, at: int = 0) -> tuple:
    return (s[at], s[at + 1], s[at + 2], s[at + 3])


@kernel(inline="always")
def store(s: np.ndarray, st: tuple, at: int = 0) -> None:
    s[at], s[at + 1], s[at + 2], s[at + 3] = st


@kernel(inline="always")
def next_u64(s: np.ndarray) -> np.uint64:
    x, st = step(load(s))
    store(s, st)
    return x


@kernel(inline="always")
def next_float(s: np.ndarray) -> float:
    """Uniform in [0, 1) with 53 random bits."""
    return to_float(next_u64(s))


@kernel(inline="always")
def next_below(s: np.ndarray, n: int) -> int:
    """Uniform integer in [0, n) (see to_below)."""
    return to_below(next_u64(s), n)


@kernel(inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: a stateless hash, used for per-page content properties."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
