"""Guest page replacement policies, by name (registry.NAMES). See base.py for the interface."""

from importlib import import_module

from vmemsim.guest.policies.base import Policy, PolicyState, new_policy_state
from vmemsim.guest.policies.registry import NAMES

# Each policy's module holds its functions as POLICY.
POLICIES: dict[str, Policy] = {
    n: import_module(f"vmemsim.guest.policies.{n}").POLICY for n in NAMES}


def policy_id(name: str) -> int:
    """The policy's id in compiled code: its place in the registry."""
    get_policy(name)
    return NAMES.index(name)


def get_policy(name: str) -> Policy:
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None


__all__ = ["POLICIES", "Policy", "PolicyState", "get_policy", "new_policy_state", "policy_id"]
