"""Balloon and swap targets: how much of a VM's excess over its allocation target each
mechanism should take back. One function each, so a researcher can swap in another policy.
"""

from __future__ import annotations


def balloon_target(balloon: float, consumed: float, target: float, max_balloon: float) -> float:
    """Pages the balloon should hold: its size plus the VM's excess (or less, to deflate)."""
    return min(max_balloon, max(0.0, balloon + consumed - target))


def swap_target(consumed: float, target: float, balloon_pending: float) -> float:
    """Pages to take by swapping/compressing: the excess that ballooning is not about to cover."""
    return max(0.0, consumed - target - balloon_pending)
