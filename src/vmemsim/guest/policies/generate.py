"""Write the code that reaches each registered policy (registry.NAMES) from compiled code.

Numba cannot cache a kernel that takes functions as arguments, and a call through a function
pointer could not be inlined, so the reference loop reaches a policy through an if-chain on
its id, and each policy has a compiled loop of its own. Both are plain source written from the
registry by this module: `python -m vmemsim.guest.policies.generate` (`--check`: exit 1 if
the files differ from what it would write, without writing).
"""

from __future__ import annotations

import sys
from pathlib import Path

from vmemsim.guest.policies.registry import NAMES

HERE = Path(__file__).resolve().parent
DISPATCH = HERE / "dispatch.py"
LOOPS = HERE.parent.parent / "kernels" / "loops.py"

NOTE = "# Written by vmemsim.guest.policies.generate from registry.NAMES: do not edit.\n"

# The policy interface (base.py): operation -> (arguments after pid, returns a value)
OPERATIONS = {
    "on_insert": ("pol: PolicyState, g: int", "pol, g", False),
    "on_hit": ("pol: PolicyState, g: int", "pol, g", False),
    "on_remove": ("pol: PolicyState, g: int", "pol, g", False),
    "victim": ("pol: PolicyState, rng", "pol, rng", True),
    "upcoming": ("pol: PolicyState, g: int", "pol, g", True),
    "warm": ("pol: PolicyState, g: int", "pol, g", False),
}


def alias(name: str) -> str:
    return f"p_{name}"


def dispatch_source(names: tuple[str, ...] = NAMES) -> str:
    out = [NOTE, '"""Compiled dispatch from a policy id (pol.meta[P_POLICY]) to that policy\'s '
           "functions.\n\nThe reference path calls these with the id, a constant in each "
           "policy's compiled loop\n(kernels.loops), so the other policies' branches are "
           "dropped; they and the policies'\nfunctions are inlined (kernel(inline=\"always\"))"
           ": a call that passes arrays costs more than a\nhit's own work.\n\"\"\"\n\n"]
    for n in sorted(names):  # as isort orders them
        out.append(f"from vmemsim.guest.policies import {n} as {alias(n)}\n")
    out.append("from vmemsim.guest.policies.base import PolicyState\n")
    out.append("from vmemsim.kernels.jit import kernel\n")
    for op, (params, args, returns) in OPERATIONS.items():
        ann = "int" if returns else "None"
        noqa = "  # noqa: ANN001" if "rng" in params else ""
        out.append(f"\n\n@kernel(inline=\"always\")\n"
                   f"def {op}(pid: int, {params}) -> {ann}:{noqa}\n")
        for i, n in enumerate(names):
            test = "" if i == len(names) - 1 else f"if pid == {i}:\n        "
            out.append(f"    {test}return {alias(n)}.{op}({args})\n")
    return "".join(out)


def loops_source(names: tuple[str, ...] = NAMES) -> str:
    sig = "v, h, th, a, horizon, near, end, skew"
    out = [NOTE, '"""One compiled reference loop per guest policy (refpath._run_thread with '
           "the policy's id\nconstant), and `run_thread`, which calls the loop of a thread's "
           "policy.\n\"\"\"\n\n",
           "from vmemsim.kernels.jit import kernel\n",
           "from vmemsim.kernels.layout import ST_DONE\n",
           "from vmemsim.kernels.refpath import _run_thread\n"]
    for i, n in enumerate(names):
        out.append(f"\n\n@kernel\ndef run_thread_{n}({sig}):  # noqa: ANN001, ANN201\n"
                   f"    return _run_thread({sig}, {i})\n")
    loops = ", ".join(f"run_thread_{n}" for n in names)
    out.append(f"\n\nRUN_THREAD = ({loops}{',' if len(names) == 1 else ''})\n")
    uses = ", ".join(f"u_{n}" for n in names)
    out.append(
        "\n\n@kernel(inline=\"always\")\n"
        f"def run_thread(  # noqa: ANN201\n    {sig},  # noqa: ANN001\n"
        f"    pid, {uses},  # noqa: ANN001\n):\n"
        '    """Thread `a`\'s loop for guest policy `pid`. u_<policy>: 0 if a VM of the run '
        "has that\n    policy, else None (policies_used): the compiler drops the calls of "
        "the policies typed\n    None (numba prunes `x is not None` on a None-typed "
        "argument, not on a tuple's item), so\n    a run compiles or loads only its "
        'policies\' loops (each takes ~5 s to compile)."""\n')
    for i, n in enumerate(names):
        if 0 < i == len(names) - 1:  # the last: no other id is left
            out.append(f"    elif u_{n} is not None:\n        return run_thread_{n}({sig})\n")
            continue
        kw = "if" if i == 0 else "elif"
        out.append(f"    {kw} pid == {i}:\n        if u_{n} is not None:\n"
                   f"            return run_thread_{n}({sig})\n")
    out.append("    return ST_DONE\n")
    out.append("\n\ndef policies_used(ids: set[int]) -> tuple:\n"
               '    """run_thread\'s u_<policy> arguments for a run whose VMs have these '
               'policy ids."""\n'
               "    return tuple(0 if i in ids else None for i in range(len(RUN_THREAD)))\n")
    return "".join(out)


def main(argv: list[str]) -> int:
    files = {DISPATCH: dispatch_source(), LOOPS: loops_source()}
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p} is out of date: run python -m vmemsim.guest.policies.generate")
        return 1 if stale else 0
    for p in stale:
        p.write_text(files[p])
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
