"""Guest page replacement policies, by name. See base.py for the interface."""

from vmemsim.guest.policies import clock, fifo, lru
from vmemsim.guest.policies import random as random_policy
from vmemsim.guest.policies.base import Policy, PolicyState, new_policy_state

POLICIES: dict[str, Policy] = {
    p.name: p for p in (clock.POLICY, lru.POLICY, fifo.POLICY, random_policy.POLICY)
}


def policy_id(name: str) -> int:
    from vmemsim.guest.policies.dispatch import REGISTRY

    get_policy(name)
    return REGISTRY[name]


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None


__all__ = ["POLICIES", "Policy", "PolicyState", "get_policy", "new_policy_state", "policy_id"]
