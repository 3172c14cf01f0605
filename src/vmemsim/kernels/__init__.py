"""The compiled hot path: numba functions over flat numpy arrays, and nothing else.

Python decides *what* happens (control plane: states, targets, periods); these kernels do the
per-page work (reference path, faults, eviction, host swapping, ballooning, sampling).
Set NUMBA_DISABLE_JIT=1 to run them as plain Python for debugging.
"""
