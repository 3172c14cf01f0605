"""Small scenarios for tests: a few MB of memory so that every mechanism acts within seconds."""

from __future__ import annotations

import copy
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from vmemsim.config.loader import scenario_from_dict
from vmemsim.config.schema import Scenario

BASE: dict[str, Any] = {
    "name": "small",
    "seed": 7,
    "duration": "20s",
    "tick": "100ms",
    "baseline": False,
    "host": {"memory": "160MiB", "vmkernel": "16MiB",
             "swap_device": {"latency": "1ms", "iops": "20k/s"}},
    "hypervisor": {"sample_period": "5s", "balance_period": "2s"},
    "vm": [
        {"name": "a", "memory": "64MiB", "overhead": "2MiB",
         "guest": {"kernel": "4MiB", "swap": "64MiB"},
         "process": [{"name": "p", "workload": "uniform", "size": "48MiB",
                      "rate": "50k/s"}]},
        {"name": "b", "memory": "64MiB", "overhead": "2MiB",
         "guest": {"kernel": "4MiB", "swap": "64MiB"},
         "process": [{"name": "p", "workload": "hotcold", "size": "56MiB",
                      "rate": "50k/s", "hot_frac": 0.2}]},
        {"name": "c", "memory": "64MiB", "overhead": "2MiB", "tools": False,
         "guest": {"kernel": "4MiB", "swap": "64MiB", "boot_touch": True},
         "process": [{"name": "p", "workload": "idle", "size": "16MiB"}]},
    ],
}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def small(**over: Any) -> Scenario:
    return scenario_from_dict(merge(BASE, over), "test")


# Where a VM's vCPU time went: summed per slice of the timeline, so the same run cut into other
# slices (its VMs run in other groups, beside other VMs) differs in the last bits.
TIME_COLUMNS = ["run_s", "fault_s", "io_wait_s", "blocked_s", "idle_s", "stall_s", "walk_s",
                "mmu_s"]


def assert_same_run(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Two runs' vms frames: every column equal, the vCPU-time columns to 1e-9 s."""
    other = [c for c in a.columns if c not in TIME_COLUMNS]
    pd.testing.assert_frame_equal(a[other], b[other])
    pd.testing.assert_frame_equal(a[TIME_COLUMNS], b[TIME_COLUMNS], check_exact=False,
                                  rtol=0, atol=1e-9)


# Ctrl-C in tests. A process started with SIGINT ignored (in the background: `make test &`, some
# CI runners) passes that on to every child, and Python then installs no KeyboardInterrupt
# handler in them: a test that sends SIGINT must first restore what a terminal's process has.
def sigint_default() -> None:
    """In a child about to exec (Popen's preexec_fn, pty.fork's child): SIGINT's default
    disposition, which the new interpreter turns into KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def sigint_raises() -> Iterator[None]:
    """In this process, for a test that interrupts itself: SIGINT raises KeyboardInterrupt
    (Python's own handler), whatever this process inherited; the old handler afterwards."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
