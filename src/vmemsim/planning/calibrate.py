"""A workload calibrated from what RVTools measured: the VM's consumed memory sets how much
of the guest the workload touches, its active memory the working set it keeps touching.

The process references pages uniformly (so that "active" is a set, not a tail of a skewed
distribution). It first touches the whole touched size (phase `warm`), long enough to reach
nearly every page (5 x pages / rate: 1 - e^-5 = 99.3% of them), then settles on the working
set. A guest whose touched size is (nearly) all its memory zeroes it at boot instead, as
Windows does. The guest kernel (its OS preset's size, touched at boot) and the kernel's
active part (guest.kernel_active) are counted in both: the process gets what is left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vmemsim.config.schema import OS_PRESETS

MIB = 1 << 20
PAGE = 4096
WARM_PASSES = 5.0  # uniform touches per page of the warm phase: 1 - e^-5 of them touched
BOOT_TOUCH_FRAC = 0.97  # a guest that touched this much of its memory: zeroed at boot
KERNEL_ACTIVE = 0.5  # GuestConfig.kernel_active's default: the kernel's part of "active"
DEFAULT_RATE = 200_000.0  # page touches per CPU-second (RVTools does not record it)


@dataclass(frozen=True)
class Measured:
    """One VM's memory as the export gives it, in MiB."""

    memory_mb: float
    consumed_mb: float
    active_mb: float
    ballooned_mb: float = 0.0
    swapped_mb: float = 0.0


def kernel_mb(memory_mb: float, os: str) -> float:
    """The guest kernel's size by the OS preset (build.kernel_bytes, in MiB)."""
    p = OS_PRESETS[os]
    return max(p.kernel_min / MIB, min(p.kernel_max / MIB, memory_mb * p.kernel_pct / 100))


@dataclass(frozen=True)
class Calibration:
    touched_mb: int  # process + kernel: what consumed should read on an ample host
    active_mb: int  # working set + the kernel's active part: what active should read
    wss_mb: int  # the process's working set
    size_mb: int  # the process's size
    warm_s: float  # the warm phase (0: boot touch, or nothing more to touch)
    boot_touch: bool


def calibrate(m: Measured, os: str = "linux", rate: float = DEFAULT_RATE) -> Calibration:
    """The process sizes that reproduce `m` on an ample host. Memory the host had taken away
    at export time (ballooned, swapped) was touched too: it counts in the touched size."""
    mem = max(1, int(m.memory_mb))
    k = kernel_mb(mem, os)
    touched = min(float(mem), max(m.consumed_mb + m.ballooned_mb + m.swapped_mb, k + 1))
    boot = touched >= BOOT_TOUCH_FRAC * mem
    if boot:
        touched = float(mem)
    size = max(1, int(round(touched - k)))
    wss = max(1, min(size, int(round(m.active_mb - KERNEL_ACTIVE * k))))
    warm = 0.0
    if not boot and wss < size:
        warm = float(math.ceil(WARM_PASSES * size * MIB / PAGE / rate))
    return Calibration(touched_mb=int(round(touched)),
                       active_mb=int(round(wss + KERNEL_ACTIVE * k)), wss_mb=wss,
                       size_mb=size, warm_s=warm, boot_touch=boot)


def process_table(c: Calibration, rate: float = DEFAULT_RATE) -> dict[str, Any]:
    """The scenario's [[vm.process]] for a calibration."""
    rate_text = f"{rate / 1000:g}k/s"
    if c.warm_s > 0:
        return {"name": "calibrated", "workload": "phases", "size": f"{c.size_mb}MiB",
                "rate": rate_text,
                "schedule": [{"at": "0s", "wss": f"{c.size_mb}MiB"},
                             {"at": f"{c.warm_s:g}s", "wss": f"{c.wss_mb}MiB"}]}
    return {"name": "calibrated", "workload": "uniform", "size": f"{c.size_mb}MiB",
            "wss": f"{c.wss_mb}MiB", "rate": rate_text}
