"""How vmemsim compiles its kernels.

`kernel` is numba's `njit` with two settings fixed:
- `cache=True`: compiled code is kept on disk (see vmemsim._cache), so only the first run pays
  for compilation;
- no NRT (numba's reference counting). Kernels only read and write arrays made in Python; they
  never allocate one. With NRT on, every call of a compiled function that takes `VMArrays`
  increments and decrements the reference count of each of its ~25 arrays with atomic
  instructions: measured, that was 70% of a guest fault's time (600 -> 100 ns per miss without
  it) and it stalled the hit loop's overlapping cache misses. The price is that a kernel (or a
  guest policy inlined into one) cannot create arrays: numba then refuses to compile it.
"""

from collections.abc import Callable
from typing import Any

import numba as nb


def kernel(fn: Callable | None = None, *, inline: str = "never") -> Any:  # noqa: ANN401
    """`@kernel` or `@kernel(inline="always")` over a function of arrays and scalars."""
    deco = nb.njit(cache=True, inline=inline, _nrt=False)
    return deco if fn is None else deco(fn)
