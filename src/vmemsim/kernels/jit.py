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
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def kernel(fn: Callable | None = None, *, inline: str = "never") -> Any:  # noqa: ANN401
    """`@kernel`, `@kernel(inline="always")` or `@kernel(inline="ir")` over a function of
    arrays and scalars.

    - "never": a function of its own, called.
    - "always": compiled once, and LLVM inlines its machine code into every caller (numba's
      `forceinline`, LLVM's `alwaysinline`). For the helpers of the hot paths, and for any
      kernel those call with the VM's arrays: as a real call, passing `VMArrays` (~30 arrays,
      ~1.5 KB of arguments) cost more than a guest eviction's own work (perf: 35% of a
      replayed miss).
    - "ir": numba inlines the function's IR into each caller before typing, so a constant
      argument prunes its branches before any code is generated. Only for the reference
      loop's body, inlined into one wrapper per guest policy. It costs compilation at each
      call site, with every "ir" callee copied again: when all helpers were inlined this way,
      copying IR took most of a cold start's 30 s (now 16-20 s).
    """
    if inline == "ir":
        deco = nb.njit(cache=True, inline="always", _nrt=False)
    else:
        deco = nb.njit(cache=True, forceinline=inline == "always", _nrt=False)
    return deco if fn is None else deco(fn)


def bind(dispatcher: Any, *args: Any) -> Callable:  # noqa: ANN401
    """The compiled code of `dispatcher` for the types of `args`, callable without numba's
    dispatch: for a call site that runs every tick with arguments of types that never change
    (a VM's arrays). Dispatch looks up the type of every argument, and of each of the ~30
    arrays inside `VMArrays`, on every call: measured, 4-5 us a call against under 1 us for
    the compiled code's own entry. Passing other types to the result than those bound is an
    error numba no longer catches: bind again instead.
    """
    sig = tuple(nb.typeof(a) for a in args)
    return dispatcher.compile(sig)


@intrinsic
def prefetch(typingctx, arr, idx):  # noqa: ARG001 (numba passes the typing context)
    """Hint the CPU to load ``arr[idx]`` into cache (LLVM's prefetch: read, keep, data)."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        i8p = ir.IntType(8).as_pointer()  # one declaration for every element type
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen
