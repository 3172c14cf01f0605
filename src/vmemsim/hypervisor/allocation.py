"""Allocation targets: shares, reservation, limit and the idle memory tax [W02 s.5].

Min-funding revocation takes memory from the VM with the lowest adjusted shares-per-page
ratio  rho = S / (P * (f + k * (1 - f))),  k = 1 / (1 - tau).  Repeating that until enough is
free ends where every VM that is neither at its reservation nor at its demand has the same rho,
so targets are computed directly as that fixed point: P_i = S_i / (rho * c_i), c_i = f_i +
k (1 - f_i), clipped to [min_i, demand_i], with rho found by bisection so the targets fit.
This is the "allocation policy" plug-in point: any callable with `targets`' signature works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class VMDemand:
    shares: float
    min_pages: float  # reservation
    max_pages: float  # limit or configured size
    demand_pages: float  # what it would use if it could (consumption + headroom), <= max
    active_frac: float  # f: estimated active fraction of its allocation, in [0, 1]


def idle_cost(f: float, tau: float) -> float:
    """c = f + k (1 - f): the cost per page of a VM with active fraction f, k = 1 / (1 - tau)."""
    k = 1.0 / (1.0 - tau)
    return f + k * (1.0 - f)


def rho(shares: float, pages: float, f: float, tau: float) -> float:
    """Adjusted shares per page; min-funding revocation reclaims from the lowest."""
    return shares / (max(pages, 1.0) * idle_cost(f, tau))


def targets(vms: Sequence[VMDemand], available: float, tau: float) -> list[float]:
    """Pages each VM should have so that their sum fits `available` (never below min)."""
    lo_b = [min(v.min_pages, v.max_pages) for v in vms]
    hi_b = [max(lo, min(v.demand_pages, v.max_pages)) for lo, v in zip(lo_b, vms, strict=True)]
    if sum(hi_b) <= available:
        return hi_b
    if sum(lo_b) >= available:
        return lo_b
    cost = [v.shares / idle_cost(v.active_frac, tau) for v in vms]

    def alloc(r: float) -> list[float]:
        return [min(h, max(lo, c / r)) for c, lo, h in zip(cost, lo_b, hi_b, strict=True)]

    # sum(alloc(r)) falls as r rises: bisect on log scale.
    r_lo, r_hi = 1e-30, 1e30
    for _ in range(200):
        mid = (r_lo * r_hi) ** 0.5
        if sum(alloc(mid)) > available:
            r_lo = mid
        else:
            r_hi = mid
        if r_hi / r_lo < 1 + 1e-12:
            break
    return alloc(r_hi)
