"""The guest replacement policies, by name: the one place a policy is registered.

A policy's id is its place here (kept in each VM's policy state, kernels.layout P_POLICY). To
add one: write its module in this package (see base.py), add its name at the end, and run

    python -m vmemsim.guest.policies.generate

which rewrites the compiled dispatch (dispatch.py) and the per-policy reference loops
(kernels/loops.py) from this list; tests/test_policies.py fails until they match it.
"""

NAMES: tuple[str, ...] = ("clock", "lru", "fifo", "random")
