"""xoshiro256** in numba: explicit state arrays, so every component's stream is reproducible."""

import numpy as np

from vmemsim.kernels.jit import kernel

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def new_state(seed_seq: np.random.SeedSequence) -> np.ndarray:
    """Four uint64 words from a SeedSequence (never all zero)."""
    words = seed_seq.generate_state(4, dtype=np.uint64)
    if not words.any():
        words[0] = np.uint64(1)
    return words


@kernel(inline="always")
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@kernel(inline="always")
def next_u64(s: np.ndarray) -> np.uint64:
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@kernel(inline="always")
def next_float(s: np.ndarray) -> float:
    """Uniform in [0, 1) with 53 random bits."""
    return float(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@kernel(inline="always")
def next_below(s: np.ndarray, n: int) -> int:
    """Uniform integer in [0, n), 0 < n < 2**32, by multiply-shift (no division: this is on
    the hot path). Bias below n / 2**32 per value: negligible for page counts."""
    return np.int64(((next_u64(s) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32))


@kernel(inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finaliser: a stateless hash, used for per-page content properties."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))
