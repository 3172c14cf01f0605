"""The time-series columns vmemsim writes, with their esxtop names and meaning.

This is the one place where an output column is defined: exporters (CSV, Parquet, esxtop batch),
plots, the HTML report and the live view all read it. `host.csv` has one row per simulated
second; `vms.csv` one row per VM per simulated second.
"""

from __future__ import annotations

from dataclasses import dataclass

# The memory states (hypervisor.states.STATES, which tests hold equal): a state column each.
STATES: tuple[str, ...] = ("high", "clear", "soft", "hard", "low")
STATE_COLUMNS: tuple[str, ...] = tuple(f"{s}_s" for s in STATES)
TARGET_MAX_COLUMNS: tuple[str, ...] = ("sztgt_max_mb", "mctltgt_max_mb", "swtgt_max_mb")


@dataclass(frozen=True)
class Column:
    name: str
    unit: str
    esxtop: str | None
    meaning: str
    perfmon: str | None = None  # counter name in esxtop batch (perfmon CSV) output


HOST_COLUMNS: tuple[Column, ...] = (
    Column("time_s", "s", None, "Simulated time at the end of the second."),
    Column("state", "", "VMKMEM state", "Memory state: high, clear, soft, hard or low.",
           "Kernel State"),
    Column("free_mb", "MB", "PMEM free", "Free machine memory.", "Free MBytes"),
    Column("free_pct", "%", None, "Free machine memory as a percentage of host memory."),
    Column("minfree_mb", "MB", "VMKMEM minfree", "vSphere minFree for this host size.",
           "Minimum Free MBytes"),
    Column("used_mb", "MB", None,
           "Machine memory in use: VM pages, compression caches, overheads, vmkernel."),
    Column("total_mb", "MB", "PMEM total", "Machine memory installed.", "Machine MBytes"),
    Column("vmk_mb", "MB", "PMEM vmk", "Memory the vmkernel keeps for itself.",
           "Kernel MBytes"),
    Column("overhead_mb", "MB", "OVHD (sum)", "Per-VM overhead memory, summed.",
           "Overhead MBytes"),
    Column("balloon_mb", "MB", "MEMCTL curr", "Memory reclaimed by balloon drivers.",
           "Memctl Current MBytes"),
    Column("mctltgt_mb", "MB", "MEMCTL target", "Sum of balloon targets.",
           "Memctl Target MBytes"),
    Column("swapped_mb", "MB", "SWAP curr", "Guest memory in host swap files.",
           "Swap Used MBytes"),
    Column("swtgt_mb", "MB", "SWAP target", "Sum of host swap targets.", "Swap Target MBytes"),
    Column("compressed_mb", "MB", "ZIP zipped", "Guest memory held compressed.",
           "Compressed MBytes"),
    Column("zip_saved_mb", "MB", "ZIP saved", "Memory saved by compression.",
           "Compression Saved MBytes"),
    Column("pshare_shared_mb", "MB", "PSHARE shared",
           "Guest memory mapped to shared machine pages (transparent page sharing), all VMs.",
           "Shared MBytes"),
    Column("pshare_common_mb", "MB", "PSHARE common",
           "Machine memory of the shared pages: each shared page once.",
           "Shared Common MBytes"),
    Column("pshare_saving_mb", "MB", "PSHARE saving", "Memory saved by sharing: shared - common.",
           "Shared Saved MBytes"),
    Column("swr_pages", "pages", "SWAP r/s", "Host swap-ins in this second.",
           "Swap MBytes Read/sec"),
    Column("sww_pages", "pages", "SWAP w/s", "Host swap-outs in this second.",
           "Swap MBytes Write/sec"),
    Column("transitions", "", None, "Memory state transitions in this second."),
    # One column per memory state of the state table (STATES below), filled tick by tick:
    # a 0.2 s soft window between two rows shows here, not in `state`.
    *(Column(f"{s}_s", "s", None,
             f"Seconds of this row's second spent in the {s} state, exact to the tick (the "
             "state columns add up to the second's length; clear only under the vsphere "
             "preset).")
      for s in STATES),
)

VM_COLUMNS: tuple[Column, ...] = (
    Column("time_s", "s", None, "Simulated time at the end of the second."),
    Column("vm", "", "NAME", "VM name."),
    Column("memsz_mb", "MB", "MEMSZ", "Configured memory size.", "Memory Size MBytes"),
    Column("grant_mb", "MB", "GRANT",
           "Guest-physical memory backed by machine memory (mapped in the pmap).",
           "Memory Granted Size MBytes"),
    Column("consumed_mb", "MB", "CONSUMED",
           "Machine memory charged to the VM: granted pages plus its compression cache, "
           "less its estimated sharing savings (a shared page counts once across the VMs).",
           "Memory Consumed MBytes"),
    Column("ovhd_mb", "MB", "OVHD", "Overhead memory of the VM.", "Memory Overhead MBytes"),
    Column("sztgt_mb", "MB", "SZTGT", "Allocation target set by the host.",
           "Target Size MBytes"),
    Column("active_true_mb", "MB", None,
           "Ground truth: distinct guest-physical pages touched in the last completed sampling "
           "period (no real hypervisor knows this)."),
    Column("active_est_mb", "MB", "TCHD / %ACTV",
           "Sampled active-memory estimate: max of the slow and fast averages.",
           "Touched MBytes"),
    Column("active_slow_mb", "MB", "%ACTVS", "Slow moving average of the sampled estimate."),
    Column("active_fast_mb", "MB", "%ACTVF", "Fast moving average of the sampled estimate."),
    Column("active_next_mb", "MB", "%ACTVN", "Most recent raw sample (prediction for next)."),
    Column("mctl", "", "MCTL?", "1 when the balloon driver is installed and running."),
    Column("mctlsz_mb", "MB", "MCTLSZ", "Balloon size (memory reclaimed by ballooning).",
           "Memctl MBytes"),
    Column("mctltgt_mb", "MB", "MCTLTGT", "Balloon target.", "Memctl Target MBytes"),
    Column("mctlmax_mb", "MB", "MCTLMAX", "Largest balloon the driver may reach.",
           "Memctl Max MBytes"),
    Column("swcur_mb", "MB", "SWCUR", "Guest memory in the VM's host swap file.",
           "Swapped MBytes"),
    Column("swtgt_mb", "MB", "SWTGT", "Host swap target.", "Swap Target MBytes"),
    Column("sztgt_max_mb", "MB", None,
           "Largest allocation target (SZTGT) at any tick's end within this second."),
    Column("mctltgt_max_mb", "MB", None,
           "Largest balloon target (MCTLTGT) at any tick's end within this second."),
    Column("swtgt_max_mb", "MB", None,
           "Largest host swap target (SWTGT) at any tick's end within this second: a swap "
           "target that rose and fell between two rows shows here."),
    Column("swin_pages", "pages", "SWR/s", "Host swap-ins in this second.",
           "Swap In Pages/sec"),
    Column("swout_pages", "pages", "SWW/s", "Host swap-outs in this second.",
           "Swap Out Pages/sec"),
    Column("shrd_mb", "MB", "SHRD", "Guest memory mapped to shared machine pages (TPS).",
           "Shared MBytes"),
    Column("zero_mb", "MB", "ZERO", "Of that, pages of zeroes.", "Zero MBytes"),
    Column("shrdsvd_mb", "MB", "SHRDSVD",
           "Estimated memory saved by sharing: SHRD x (1 - common / shared), host-wide ratio.",
           "Shared Saved MBytes"),
    Column("cowh_mb", "MB", "COWH",
           "Copy-on-write hints: pages hashed by the scanner, unchanged since and not shared.",
           "Copy-On-Write Hint MBytes"),
    Column("cow_faults", "faults", None,
           "Copy-on-write faults in this second: writes to shared pages (a private copy)."),
    Column("cachesz_mb", "MB", "CACHESZ", "Compression cache capacity.",
           "Compression Cache Size MBytes"),
    Column("zip_mb", "MB", "CACHEUSD", "Compression cache in use (compressed pages).",
           "Compression Cache Used MBytes"),
    Column("zip_pages", "pages", "ZIP/s", "Pages compressed in this second.",
           "Compressed Pages/sec"),
    Column("unzip_pages", "pages", "UNZIP/s", "Pages decompressed in this second.",
           "Decompressed Pages/sec"),
    Column("refs", "refs", None, "Guest page references completed in this second."),
    Column("throughput", "refs/s", None, "Same as refs: work done per simulated second."),
    Column("base_throughput", "refs/s", None,
           "Throughput of the same VM, same seed, on a host with ample memory."),
    Column("guest_faults", "faults", None, "Guest page faults (GVPN not mapped)."),
    Column("hv_faults", "faults", None,
           "Hypervisor faults of every kind (first touch, sample, swap-in, decompress)."),
    Column("hv_first_touch", "faults", None, "First-touch faults: a machine page allocated."),
    Column("hv_sample_faults", "faults", None, "Soft faults on pages invalidated for sampling."),
    Column("guest_swap_in", "pages", None, "Pages the guest read back from its own swap."),
    Column("guest_swap_out", "pages", None, "Pages the guest wrote to its own swap."),
    Column("guest_swapped_mb", "MB", None, "Guest memory in the guest's own swap device."),
    Column("double_paging", "pages", None,
           "Guest evictions of pages the host had swapped or compressed: read back only to be "
           "written out again."),
    Column("vcpu_s", "vCPU-s", None,
           "The VM's vCPU time in this second (vCPUs x time powered on): the sum of the next "
           "five columns."),
    Column("run_s", "vCPU-s", None, "vCPU time spent running the workload's references."),
    Column("fault_s", "vCPU-s", None,
           "vCPU time spent on faults and other guest or hypervisor work outside the "
           "references (boot zeroing, balloon inflation)."),
    Column("io_wait_s", "vCPU-s", None,
           "vCPU time spent waiting on a device: guest swap-ins, host swap-ins."),
    Column("blocked_s", "vCPU-s", None,
           "vCPU time blocked waiting for machine memory (by the host in the low state, or "
           "none free)."),
    Column("idle_s", "vCPU-s", None,
           "vCPU time with no work: no thread to run (a process idle, stopped, or using less "
           "than the VM's vCPUs)."),
    Column("stall_s", "vCPU-s", None,
           "fault_s + io_wait_s: time the VM's vCPUs spent on faults and device waits."),
    Column("tlb_misses", "misses", None,
           "TLB misses of the workload's references in this second: page walks."),
    Column("walk_s", "vCPU-s", None,
           "vCPU time walking page tables after TLB misses (a part of run_s): a native "
           "walk under shadow paging, a two-dimensional one under nested paging."),
    Column("mmu_traps", "traps", None,
           "Shadow paging's traps to the hypervisor: guest page-table updates, context "
           "switches, hidden faults (0 under nested paging)."),
    Column("mmu_s", "vCPU-s", None,
           "vCPU time in those traps (a part of fault_s): MMU virtualization."),
)

HOST_NAMES: tuple[str, ...] = tuple(c.name for c in HOST_COLUMNS)
VM_NAMES: tuple[str, ...] = tuple(c.name for c in VM_COLUMNS)

