"""Scenario schema: what a TOML scenario may say, validated by pydantic.

Every default here is ESX's where ESX has one (see docs/esx-model.md, which cites
esx-reference.md); defaults marked *unconfirmed* there are our choice, made parameters.
Quantities are stored in base units after validation: sizes in bytes, durations in seconds,
rates per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from vmemsim.config.units import parse_duration, parse_rate, parse_size
from vmemsim.guest.policies.registry import NAMES

Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Rate = Annotated[float, BeforeValidator(parse_rate), Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]

POLICIES = NAMES  # guest replacement policies (guest.policies.registry)
# The last six are presets (workloads.presets): named shapes whose fields the scenario may set.
WORKLOADS = ("uniform", "zipf", "hotcold", "scan", "phases", "toucher", "hog", "trace",
             "database", "web", "fileserver", "vdi", "idle", "batch")
DISTS = ("uniform", "zipf", "hotcold", "scan")
SHARE_LEVELS = {"high": 20, "normal": 10, "low": 5}  # shares per MB of configured memory


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)


class Device(Strict):
    """A block device: every I/O waits for latency, and the device serves at most iops I/Os/s."""

    latency: Duration = parse_duration("5ms")
    iops: Rate = Field(default=parse_rate("2k/s"), gt=0)


class Phase(Strict):
    at: Duration
    wss: Size
    offset: Size = 0


class ProcessConfig(Strict):
    name: str = "proc"
    workload: Literal[WORKLOADS] = "uniform"  # type: ignore[valid-type]
    size: Size = Field(gt=0, description="virtual memory of the process")
    wss: Size | None = Field(default=None, description="working set; default the whole size")
    rate: Rate = Field(default=parse_rate("1M/s"), gt=0,
                       description="page touches per CPU-second (sets the cost of a reference)")
    cpu: float | None = Field(default=None, ge=0, le=768,
                              description="vCPUs it keeps busy (2.0: two threads); idle: 0.02")
    write_frac: Fraction = 0.3
    file_frac: Fraction = Field(
        default=0.0, description="share of its pages that are file-backed page cache: read "
                                 "from the guest's disk on first touch, dropped clean")
    shared_frac: Fraction = Field(
        default=0.0, description="TPS: share of its pages whose content the same application "
                                 "(a process of the same name) has in other VMs: its code and "
                                 "read-only data, file-backed")
    dist: Literal[DISTS] | None = None  # type: ignore[valid-type]
    alpha: float = Field(default=1.0, gt=0, description="zipf skew")
    hot_frac: Fraction = 0.1
    hot_prob: Fraction = 0.9
    schedule: tuple[Phase, ...] = ()
    ramp: Duration = Field(default=60.0, description="hog: time to grow from wss to size")
    start: Duration = 0.0
    stop: Duration | None = None
    pt_updates: Rate = Field(
        default=0.0, description="guest page-table updates per CPU-second of its work "
                                 "(process creation, mmap/munmap): each traps under shadow "
                                 "paging")
    ctx_switches: Rate = Field(
        default=200.0, description="unconfirmed: context switches (CR3 writes) per CPU-second "
                                   "of its work; each traps under shadow paging")
    trace: str | None = Field(default=None, description="trace file (workload = 'trace')")
    trace_format: str | None = None
    loop: bool = Field(default=False, description="restart the trace at its end")
    pace: bool = Field(default=False, description="replay at the trace's own timestamps")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """A preset workload's fields (workloads.presets) where the scenario leaves them out."""
        if not isinstance(data, dict):
            return data
        from vmemsim.workloads.presets import apply  # imports only config.units

        return apply(data)

    @model_validator(mode="after")
    def _check(self) -> ProcessConfig:
        if (self.workload == "trace") != (self.trace is not None):
            raise ValueError("workload 'trace' and a trace file go together")
        wss = self.size if self.wss is None else self.wss
        if wss > self.size:
            raise ValueError(f"wss {wss} B is larger than the process size {self.size} B")
        for i, ph in enumerate(self.schedule):
            if ph.wss + ph.offset > self.size:
                raise ValueError(f"schedule[{i}]: wss + offset exceeds the process size")
            if i and ph.at <= self.schedule[i - 1].at:
                raise ValueError(f"schedule[{i}]: times must increase")
        if self.workload in ("phases", "toucher") and not self.schedule:
            raise ValueError(f"workload {self.workload!r} needs a schedule of phases")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError("stop must come after start")
        if self.workload == "trace" and self.cpu is not None and self.cpu > 1:
            raise ValueError("a trace is one stream of references, replayed by one thread: "
                             "cpu must be at most 1")
        return self


@dataclass(frozen=True)
class OSPreset:
    """What a guest OS does by default (docs/scenarios.md gives each number's source)."""

    boot_touch: bool  # zeroes all its memory at boot
    kernel_pct: float  # kernel memory, percent of guest memory ...
    kernel_min: int  # ... at least (bytes) ...
    kernel_max: int  # ... at most (bytes)
    free_min_pct: float  # free-page watermarks, percent of guest memory
    free_low_pct: float
    free_high_pct: float
    swap_cluster: int  # dirty pages written to guest swap per I/O


OS_PRESETS = {
    # Linux: kswapd's min/low/high watermarks, SWAP_CLUSTER_MAX = 32; kernel size unconfirmed.
    "linux": OSPreset(boot_touch=False, kernel_pct=3.0, kernel_min=8 << 20,
                      kernel_max=128 << 20, free_min_pct=1.0, free_low_pct=2.0,
                      free_high_pct=3.0, swap_cluster=32),
    # Windows zeroes all memory at boot [WP09]; the modified page writer writes 64 KiB (16
    # pages) per I/O; kernel size and watermarks unconfirmed.
    "windows": OSPreset(boot_touch=True, kernel_pct=5.0, kernel_min=32 << 20,
                        kernel_max=256 << 20, free_min_pct=1.0, free_low_pct=3.0,
                        free_high_pct=5.0, swap_cluster=16),
}
OS_FIELDS = ("boot_touch", "free_min_pct", "free_low_pct", "free_high_pct", "swap_cluster")


class GuestConfig(Strict):
    os: Literal["linux", "windows"] = Field(
        default="linux", description="OS preset: the defaults of the fields it names")
    policy: Literal[POLICIES] = "clock"  # type: ignore[valid-type]
    clock_insert_referenced: bool = Field(
        default=True, description="hardware sets the accessed bit on the faulting access")
    swap: Size | None = Field(default=None, description="guest swap size; default = memory")
    kernel: Size | None = Field(default=None,
                                description="guest kernel memory, never paged; default by os")
    kernel_active: Fraction = Field(
        default=0.5, description="unconfirmed: share of the kernel's frames in constant use "
                                 "(text, slab, page tables)")
    kernel_refs: Fraction = Field(
        default=0.05, description="unconfirmed: share of each thread's references that go to "
                                  "the kernel's active frames")
    # The OS preset fills these where the scenario does not set them (_preset).
    boot_touch: bool = Field(default=False, description="zero all memory at boot (Windows)")
    free_min_pct: float = Field(default=1.0, ge=0, le=50)
    free_low_pct: float = Field(default=2.0, ge=0, le=50)
    free_high_pct: float = Field(default=3.0, ge=0, le=50)
    swap_cluster: int = Field(default=32, ge=1, le=1024,
                              description="dirty pages written to guest swap per I/O "
                                          "(Linux: SWAP_CLUSTER_MAX)")
    swap_device: Device = Device()
    large_pages: Fraction = Field(
        default=0.0, description="share of process memory the guest maps with 2 MB pages")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        """The OS preset's values for the fields the scenario leaves out."""
        if not isinstance(data, dict):
            return data
        preset = OS_PRESETS.get(data.get("os", "linux"))
        if preset is None:
            return data  # the Literal reports the unknown OS
        return {**{k: getattr(preset, k) for k in OS_FIELDS}, **data}

    @model_validator(mode="after")
    def _check(self) -> GuestConfig:
        if not self.free_min_pct <= self.free_low_pct <= self.free_high_pct:
            raise ValueError(
                "watermarks must satisfy free_min_pct <= free_low_pct <= free_high_pct")
        return self


class VMConfig(Strict):
    name: str = Field(min_length=1)
    memory: Size = Field(gt=0)
    vcpus: int = Field(default=1, ge=1, le=768)
    reservation: Size = 0
    limit: Size | None = None
    shares: Literal["high", "normal", "low"] | int = "normal"
    overhead: Size | None = Field(default=None, description="default: 20MiB + 8MiB/vCPU + 1%")
    tools: bool = Field(default=True, description="VMware Tools, with the balloon driver")
    tools_start: Duration = Field(default=0.0, description="driver starts this long after boot")
    start: Duration = 0.0
    mmu: Literal["nested", "shadow", "off"] = Field(
        default="nested", description="hardware MMU (EPT/RVI), software MMU (shadow page "
                                      "tables), or no MMU cost model")
    compressible: Fraction = Field(
        default=0.5, description="content model: share of pages that compress to <= 2 KiB "
                                 "(hypervisor.zip_threshold: which of them are kept)")
    salt: int | None = Field(
        default=None, ge=0, lt=2**62,
        description="TPS salt (sched.mem.pshare.salt): with share_force_salting 1 or 2, pages "
                    "share only between VMs of the same salt; default: 0 under 1, the VM's "
                    "own under 2")
    guest: GuestConfig = GuestConfig()
    process: tuple[ProcessConfig, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> VMConfig:
        if self.reservation > self.memory:
            raise ValueError("reservation is larger than memory")
        if self.limit is not None and self.limit < self.reservation:
            raise ValueError("limit is smaller than reservation")
        if isinstance(self.shares, int) and self.shares <= 0:
            raise ValueError("shares must be positive")
        names = [p.name for p in self.process]
        if len(set(names)) != len(names):
            raise ValueError("process names must be unique within a VM")
        return self

    def share_count(self) -> int:
        if isinstance(self.shares, int):
            return self.shares
        return SHARE_LEVELS[self.shares] * max(1, self.memory >> 20)


class HostConfig(Strict):
    memory: Size = Field(gt=0)
    vmkernel: Size = Field(default=parse_size("256MiB"))
    swap_device: Device = Device(latency=parse_duration("5ms"), iops=parse_rate("1k/s"))

    @model_validator(mode="after")
    def _check(self) -> HostConfig:
        if self.vmkernel >= self.memory:
            raise ValueError("vmkernel memory must be smaller than host memory")
        return self


class HypervisorConfig(Strict):
    """ESX reclamation parameters; esx-reference.md gives each default's source."""

    thresholds: Literal["seed", "vsphere"] = "seed"
    soft_pct: float | None = Field(default=None, gt=0, le=100)
    hard_pct: float | None = Field(default=None, gt=0, le=100)
    low_pct: float | None = Field(default=None, gt=0, le=100)
    hysteresis: float = Field(default=0.25, ge=0, le=4,
                              description="unconfirmed: climb this fraction above a threshold")
    balance_period: Duration = Field(default=15.0, gt=0)
    idle_tax: float = Field(default=0.75, ge=0, lt=1)
    sample_period: Duration = Field(default=60.0, gt=0)
    sample_size: int = Field(default=100, ge=1, le=100000)
    fast_gain: Fraction = 0.5
    slow_gain: Fraction = 0.1
    balloon: bool = True
    ctl_max_pct: float = Field(default=65.0, ge=0, le=100)
    balloon_poll: Duration = Field(default=1.0, gt=0)
    balloon_rate_min: int = Field(default=512, ge=1,
                                  description="vmw_balloon RATE_ALLOC_MIN: pages a poll")
    balloon_rate_max: int = Field(default=2048, ge=1,
                                  description="vmw_balloon RATE_ALLOC_MAX, the starting rate")
    balloon_rate_nopressure: int = Field(
        default=16384, ge=1,
        description="vmw_balloon NOSLEEP_ALLOC_MAX (and RATE_FREE_MAX, deflating)")
    swap: bool = True
    swap_cluster: int = Field(default=16, ge=1, le=4096,
                              description="pages the host writes to a VM's swap file per I/O")
    swap_inflight: int = Field(default=4, ge=1, le=256,
                               description="unconfirmed: host swap writes outstanding per VM")
    compression: bool = True
    zip_max_pct: float = Field(default=10.0, ge=0, le=100)
    zip_threshold: float = Field(
        default=0.5, gt=0, le=1,
        description="keep a page compressed only if it fits in this part of a page; the "
                    "cache's slots are this large (floor(1 / zip_threshold) per page)")
    blocking: bool = True
    growth_pct: float = Field(default=5.0, ge=0, le=100,
                              description="unconfirmed: target headroom above consumption")
    page_sharing: bool = Field(default=True, description="transparent page sharing (TPS)")
    share_scan_time: Duration = Field(
        default=3600.0, gt=0, description="Mem.ShareScanTime: time to scan a VM's memory once")
    share_rate_max: Rate = Field(
        default=1024.0, gt=0, description="Mem.ShareRateMax: pages scanned per second per VM "
                                          "at most (and below clear, when ESX calls sharing)")
    share_force_salting: Literal[0, 1, 2] = Field(
        default=2, description="Mem.ShareForceSalting: 0 shares between all VMs; 1 and 2 only "
                               "between VMs of the same vm.salt (unset: 0 under 1, the VM's "
                               "own under 2, so within a VM only)")
    large_pages: bool = Field(
        default=True, description="back guest memory with 2 MB pages (a TLB entry covers "
                                  "one), never shared until broken (from high_pct of minFree "
                                  "down, vsphere; from soft, seed)")
    high_pct: float | None = Field(
        default=None, gt=0, le=10000,
        description="vsphere only: free memory, percent of minFree, below which large pages "
                    "are broken (the 'high' bound; default 400, some sources say 300)")

    @model_validator(mode="after")
    def _check(self) -> HypervisorConfig:
        lv = [v for v in (self.soft_pct, self.hard_pct, self.low_pct) if v is not None]
        if lv != sorted(lv, reverse=True):
            raise ValueError("thresholds must satisfy soft_pct > hard_pct > low_pct")
        if self.balloon_rate_min > self.balloon_rate_max:
            raise ValueError("balloon_rate_min is larger than balloon_rate_max")
        if self.high_pct is not None and self.thresholds != "vsphere":
            raise ValueError("high_pct applies to thresholds = 'vsphere' only (the seed "
                             "preset breaks large pages from soft)")
        return self


class CostConfig(Strict):
    """Simulated time each event costs. Unconfirmed latencies: see docs/esx-model.md."""

    guest_fault: Duration = parse_duration("2us")
    hv_first_touch: Duration = parse_duration("4us")
    hv_sample_fault: Duration = parse_duration("1us")
    decompress: Duration = parse_duration("25us")
    compress: Duration = Field(default=parse_duration("20us"),
                               description="host CPU to compress a page (the swapper's time)")
    balloon_page: Duration = parse_duration("0.5us")
    cow_fault: Duration = Field(
        default=parse_duration("4us"),
        description="unconfirmed: a write to a shared page: fault, new page, 4 KiB copy")
    lpage_break: Duration = Field(
        default=parse_duration("100us"),
        description="unconfirmed: the VM's time to break a 2 MB page (remap 512 entries, flush "
                    "the TLB)")
    walk_ref: Duration = Field(default=parse_duration("20ns"),
                               description="unconfirmed: a page walk's memory reference")
    walk_cache: Fraction = Field(
        default=0.5, description="unconfirmed: share of a walk's non-leaf references the "
                                 "page-walk caches serve")
    hidden_fault: Duration = Field(default=parse_duration("2us"),
                                   description="unconfirmed: shadow paging's hidden fault")
    pt_update_trap: Duration = Field(
        default=parse_duration("2us"),
        description="unconfirmed: a trapped guest page-table update (shadow paging)")
    ctx_switch_trap: Duration = Field(
        default=parse_duration("2us"),
        description="unconfirmed: a trapped context switch, CR3 write (shadow paging)")



class EventConfig(Strict):
    """Something that happens during the run, at `at` (config.events checks it against the
    whole scenario; docs/scenarios.md, "Events")."""

    at: Duration
    set: dict[str, Any] = Field(
        default_factory=dict, description="dotted keys (as in sweeps) and their new values")
    power_on: tuple[str, ...] = Field(default=(), description="VMs that power on (boot)")
    power_off: tuple[str, ...] = Field(default=(), description="VMs that power off")
    migrate_in: tuple[str, ...] = Field(
        default=(), description="VMs that arrive by vMotion, their memory already touched")
    migrate_out: tuple[str, ...] = Field(default=(), description="VMs that leave by vMotion")

class Scenario(Strict):
    name: str = Field(default="scenario", min_length=1)
    description: str = ""
    seed: int = Field(default=1, ge=0, lt=2**63)
    duration: Duration = Field(default=600.0, gt=0)
    tick: Duration = Field(default=0.1, gt=0, le=1)
    baseline: bool = Field(default=True, description="also run each VM alone for slowdown")
    host: HostConfig
    hypervisor: HypervisorConfig = HypervisorConfig()
    costs: CostConfig = CostConfig()
    vm: tuple[VMConfig, ...] = Field(min_length=1)
    event: tuple[EventConfig, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        names = [v.name for v in self.vm]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"VM names must be unique: {', '.join(sorted(dup))} repeated")
        if abs(round(1.0 / self.tick) * self.tick - 1.0) > 1e-9:
            raise ValueError("tick must divide one second evenly (e.g. 10ms, 50ms, 100ms)")
        return self

    def with_overrides(self, **kw: Any) -> Scenario:
        data = self.model_dump()
        data.update({k: v for k, v in kw.items() if v is not None})
        return Scenario.model_validate(data)
