"""The guest's memory beyond anonymous user pages: the kernel's active part, and file-backed
(page cache) pages that are read from disk and dropped clean."""

from __future__ import annotations

from typing import Any

from helpers import small
from vmemsim.engine import Simulation
from vmemsim.kernels import hostmm
from vmemsim.kernels.layout import (
    C_BALLOON_EVICT,
    C_FILE_IN,
    C_FILE_OUT,
    C_GEVICT,
    C_GSWAPPED,
    C_GSWOUT,
    C_GSWOUT_IOS,
    C_SWIN,
    G_KERNEL,
    G_KIND,
    H_MASK,
    H_SWAPPED,
    H_TOUCHED,
    PP_KPAGES,
    T_IOWAIT,
)

MB = 256  # pages per MiB


# ---- the guest kernel's active part -----------------------------------------------------------
def _kernel_vm(kernel_refs: float, duration: str = "6s") -> Simulation:
    """A VM with an 8 MiB kernel, run for `duration` ("0s": built, not run)."""
    sc = small(duration="6s" if duration == "0s" else duration, host={"memory": "256MiB"},
               hypervisor={"sample_period": "2s"},
               vm=[{"name": "k", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "8MiB", "kernel_active": 0.25,
                              "kernel_refs": kernel_refs},
                    "process": [{"workload": "uniform", "size": "16MiB",
                                 "rate": "100k/s"}]}])
    sim = Simulation(sc, check=10)
    if duration != "0s":
        sim.run()
    return sim


def test_kernel_active_frames_are_touched_every_period() -> None:
    sim = _kernel_vm(0.05)
    v = sim.vms[0]
    a = v.arrays
    ka = int(sim.th.pp[v.threads[0][0], PP_KPAGES])
    assert ka == 2 * MB  # a quarter of the 8 MiB kernel
    assert ((a.pstate[:ka] & G_KIND) == G_KERNEL).all()
    # The last sampling period began 2 s ago, long after boot: the active part has been
    # touched in it (1 in 20 of ~200k references over 512 pages), the rest of the kernel not.
    assert ((a.pstate[:ka] & H_TOUCHED) != 0).all()
    assert not ((a.pstate[ka:v.kernel_pages] & H_TOUCHED) != 0).any()
    # The same VM without kernel references: its kernel is idle memory after boot.
    idle = _kernel_vm(0.0).vms[0].arrays
    assert not ((idle.pstate[:ka] & H_TOUCHED) != 0).any()


def test_host_swapping_the_kernel_costs_faults() -> None:
    out = {}
    for refs in (0.0, 0.05):
        sim = _kernel_vm(refs, duration="0s")
        for _ in range(3):
            sim.step_second()
        v = sim.vms[0]
        a = v.arrays
        ka = int(sim.th.pp[v.threads[0][0], PP_KPAGES]) or 2 * MB
        # The host swaps out half the VM's memory, at random: kernel frames among it.
        hostmm.host_reclaim(a, sim.host, 32 * MB, False, True, 10**9)
        swapped = int(((a.pstate[:ka] & H_MASK) == H_SWAPPED).sum())
        assert swapped > ka // 4
        swin0 = int(a.vc[C_SWIN])
        for _ in range(3):
            sim.step_second()
        back = swapped - int(((a.pstate[:ka] & H_MASK) == H_SWAPPED).sum())
        out[refs] = back, int(a.vc[C_SWIN]) - swin0
    # Without kernel references the swapped kernel frames stay swapped (host swapping took
    # them for free); with them, every one is read back: a host swap-in each.
    assert out[0.0][0] == 0
    back, swin = out[0.05]
    assert back > 0
    assert swin >= back


# ---- file-backed pages --------------------------------------------------------------------------
def _file_vm(file_frac: float, write_frac: float, **over: Any) -> Simulation:
    """A 32 MiB guest whose one process reads 40 MiB: the guest evicts all the time (a fast
    disk, so that reads from it do not take the whole run)."""
    vm = {"name": "f", "memory": "32MiB", "overhead": "1MiB",
          "guest": {"kernel": "2MiB", "swap": "48MiB", "kernel_refs": 0.0,
                    "swap_device": {"latency": "100us", "iops": "100k/s"}},
          "process": [{"name": "fs", "workload": "uniform", "size": "40MiB",
                       "rate": "100k/s", "file_frac": file_frac,
                       "write_frac": write_frac}]}
    sc = small(duration="5s", host={"memory": "256MiB"}, vm=[{**vm, **over}])
    sim = Simulation(sc, check=10)
    sim.run()
    return sim


def test_clean_file_pages_are_read_from_disk_and_dropped_without_writes() -> None:
    a = _file_vm(1.0, 0.0).vms[0].arrays
    vc = a.vc
    assert vc[C_GEVICT] > 1000
    # Nothing was written: no swap-out, no write-back, no write I/O at all.
    assert vc[C_GSWOUT] == 0 and vc[C_FILE_OUT] == 0 and vc[C_GSWOUT_IOS] == 0
    assert vc[C_GSWAPPED] == 0
    # Every page the process has in memory was read from its file once, and every one
    # dropped was read again when touched again: one read per first touch or re-touch.
    resident = int((a.pt >= 0).sum())
    assert vc[C_FILE_IN] == resident + vc[C_GEVICT]
    # The reads are device I/O: the thread waited on the guest's disk.
    assert a.vt[T_IOWAIT] > 0


def test_anonymous_pages_are_written_to_swap() -> None:
    """The control: the same process with anonymous memory writes every eviction."""
    vc = _file_vm(0.0, 0.0).vms[0].arrays.vc
    assert vc[C_GEVICT] > 1000 and vc[C_FILE_IN] == 0
    assert vc[C_GSWOUT] > 1000
    assert vc[C_GSWOUT_IOS] > 0


def test_dirty_file_pages_are_written_back_not_swapped() -> None:
    vc = _file_vm(1.0, 1.0).vms[0].arrays.vc
    assert vc[C_FILE_OUT] > 1000
    assert vc[C_GSWOUT] == 0 and vc[C_GSWAPPED] == 0
    assert vc[C_GSWOUT_IOS] > 0


def test_ballooning_a_page_cache_guest_writes_nothing() -> None:
    """A host short of memory balloons a file server: its guest gives up clean page cache,
    without a write."""
    sc = small(duration="20s",
               host={"memory": "112MiB", "vmkernel": "8MiB"},
               vm=[{"name": "fs", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB", "swap": "64MiB", "kernel_refs": 0.0,
                              "swap_device": {"latency": "100us", "iops": "100k/s"}},
                    "process": [{"name": "p", "workload": "uniform", "size": "56MiB",
                                 "rate": "200k/s", "file_frac": 1.0, "write_frac": 0.0}]},
                   {"name": "hog", "memory": "64MiB", "overhead": "1MiB",
                    "guest": {"kernel": "2MiB", "swap": "64MiB"},
                    "process": [{"name": "p", "workload": "uniform", "size": "56MiB",
                                 "rate": "200k/s"}]}])
    sim = Simulation(sc, check=20)
    sim.run()
    vc = sim.vms[0].arrays.vc
    assert vc[C_BALLOON_EVICT] > 0
    assert vc[C_GSWOUT] == 0 and vc[C_GSWOUT_IOS] == 0
