"""A scenario's baseline: the same VMs on a host with memory to spare, for slowdown.

Slowdown is a VM's throughput in the scenario against its throughput unconstrained. The
baseline runs in groups of VMs (baseline_groups) beside the scenario's run, as jobs of the
project's runner (vmemsim.runner), or after it; a VM the hypervisor never acted on
(VM.acted_on) needs none, and each VM's whole baseline is kept in a cache (basecache).
`simulate` runs a scenario with its baseline.
"""

from __future__ import annotations

import functools
import json
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from vmemsim import _fork, basecache
from vmemsim.build import overhead_bytes
from vmemsim.config import events
from vmemsim.config.schema import Scenario, VMConfig
from vmemsim.config.units import MIB, pages
from vmemsim.engine import Simulation
from vmemsim.hypervisor import sharing as tps
from vmemsim.hypervisor import states
from vmemsim.metrics.result import Result
from vmemsim.workloads.generators import Workload

if TYPE_CHECKING:
    import pandas as pd

# Groups a baseline runs in. A simulation of fewer VMs keeps more of each VM's tables in the
# caches: the default scenario's baseline (300 s, one process) took 4.7-5.4 s of CPU whole,
# 4.4-4.8 s in two groups, 4.0-4.3 s in four. Each group's simulation costs its own per-tick
# work too, so not one group per VM of a host of a hundred VMs.
SERIAL_GROUPS = 4


def baseline_scenario(sc: Scenario, group: tuple[int, ...] | None = None,
                      until: float | None = None) -> Scenario:
    """The same VMs (those of `group`, indices into sc.vm) on a host with memory to spare:
    their unconstrained throughput."""
    vms = sc.vm if group is None else tuple(sc.vm[i] for i in group)
    need = sc.host.vmkernel + sum(v.memory + overhead_bytes(v) for v in vms)
    memory = int(need / 0.85) + 64 * MIB
    hv = sc.hypervisor
    if hv.page_sharing and hv.large_pages and hv.thresholds == "vsphere":
        # TPS: nor does an ample host break its large pages (below high_pct of minFree).
        pct = (400.0 if hv.high_pct is None else hv.high_pct) / 100.0
        while memory - need < pct * states.minfree_mb(memory / MIB) * MIB * 1.05:
            memory = int(memory * 1.1)
    host = sc.host.model_copy(update={"memory": memory})
    # The same events, as far as they concern these VMs (config.events.for_vms): the
    # baseline of a VM that powers on at 20 min starts at 20 min too. A shorter run (until)
    # drops the events after its end, and a VM that would arrive only then does not run.
    evs, late = events.for_vms(sc, (v.name for v in vms), until)
    vms = tuple(v.model_copy(update={"start": late[v.name]}) if v.name in late else v
                for v in vms)
    return sc.model_copy(update={"host": host, "vm": vms, "baseline": False, "event": evs})


def baseline_run(sc: Scenario, until: float,
                 group: tuple[int, ...] | None = None) -> Result | None:
    """Run the unconstrained baseline up to `until` simulated seconds (None if interrupted):
    the VMs of `group` (indices into sc.vm) in one simulation, or with no group all of them,
    one group after another (baseline_groups, SERIAL_GROUPS). The results are the same: on an
    ample host the VMs do not interact, and each draws the streams its name names (tested)."""
    if group is None:
        groups = baseline_groups(sc, SERIAL_GROUPS)
        if len(groups) > 1:
            return run_groups(sc, until, groups)
        group = groups[0]
    sim = baseline_sim(sc, until, group)
    try:
        while not sim.done:
            sim.step_second()
    except KeyboardInterrupt:
        return None
    return sim.result()


def baseline_sim(sc: Scenario, until: float, group: tuple[int, ...]) -> Simulation:
    """The baseline's simulation of the VMs of `group`, up to `until` simulated seconds."""
    bs = baseline_scenario(sc, group, until)
    return Simulation(bs.model_copy(update={"duration": max(until, bs.tick)}),
                      policies=[v.guest.policy for v in sc.vm])


def run_groups(sc: Scenario, until: float, groups: list[tuple[int, ...]]) -> Result | None:
    """The baseline of these groups, one simulation after another, merged."""
    parts = []
    for g in groups:
        part = baseline_run(sc, until, g)
        if part is None:
            return None
        parts.append(part)
    return merge_baselines(sc, parts)


def untouched(sim: Simulation) -> tuple[int, ...]:
    """The VMs (indices) whose run so far is their baseline, reference for reference: the
    hypervisor never acted on them (VM.acted_on), and the VMs are independent on an ample
    host (separable), so that nothing else of the host reaches a VM. Their baselines need not
    be run (Baseline.result); tested against the run ones."""
    sc = sim.scenario
    if not sc.baseline or not separable(sc):
        return ()
    evented = events.touched(sc)  # their runs changed by events: their baselines are run
    return tuple(i for i, v in enumerate(sim.vms)
                 if not v.acted_on and v.cfg.name not in evented)


def stays_high(bs: Scenario) -> bool:
    """Whether a (baseline) host can never leave the high state: its free memory with every
    VM's memory and overhead allocated stays at or above every state's threshold. A scenario
    may set thresholds so high (the seed preset's percentages go up to 100) that even the
    ample host reclaims, and its VMs then share memory by their targets."""
    th = states.Thresholds.build(bs.hypervisor, bs.host.memory)
    used = sum(pages(v.memory) + pages(overhead_bytes(v)) for v in bs.vm)
    free = pages(bs.host.memory - bs.host.vmkernel) - used
    return all(t is None or free >= t for t in th.enter[1:])


def separable(sc: Scenario) -> bool:
    """Whether the baseline's VMs run independently of each other, so that it can run as
    groups of VMs, each on its own host: on an ample host that stays in the high state the
    hypervisor reclaims nothing, except from a VM over its limit, and VMs over their limits
    would share the host's swap device."""
    return (all(v.limit is None or pages(v.limit) >= pages(v.memory) for v in sc.vm)
            and not events.sets_shared(sc) and stays_high(baseline_scenario(sc))
            and not tps.inter_vm(sc))  # TPS between VMs couples them


def expected_refs(sc: Scenario, vm: VMConfig) -> float:
    """References the VM makes when unconstrained, roughly: for balancing baseline groups."""
    cpus = [Workload(p).cpu for p in vm.process]
    scale = min(1.0, vm.vcpus / (sum(cpus) or 1.0))
    total = 0.0
    for p, cpu in zip(vm.process, cpus, strict=True):
        start = max(p.start, vm.start)
        stop = sc.duration if p.stop is None else min(p.stop, sc.duration)
        total += p.rate * cpu * scale * max(0.0, stop - start)
    return total


T = TypeVar("T")


def _deal(items: Iterable[T], work: Callable[[T], float], n: int) -> list[list[T]]:
    """Items into up to `n` non-empty bins of about equal work: largest first, each to the
    lightest bin so far (ties: the first)."""
    items = list(items)
    bins: list[list[T]] = [[] for _ in range(min(n, len(items)))]
    load = [0.0] * len(bins)
    for x in sorted(items, key=lambda x: -work(x)):
        k = load.index(min(load))
        bins[k].append(x)
        load[k] += work(x)
    return [b for b in bins if b]


def baseline_groups(sc: Scenario, n: int,
                    among: Iterable[int] | None = None) -> list[tuple[int, ...]]:
    """Up to `n` groups of VM indices (of those in `among`; default all) with about equal
    expected references (largest first, each to the lightest group), or one group when the
    VMs are not separable or a group's own host could leave the high state."""
    idx = tuple(sorted(range(len(sc.vm)) if among is None else among))
    whole = [idx]
    if not separable(sc):
        if len(idx) < len(sc.vm):  # their baselines would miss the others' effect on them
            raise ValueError("a baseline of some of the VMs needs VMs that run apart")
        return whole
    if n <= 1 or len(idx) < 2:
        return whole
    work = {i: expected_refs(sc, sc.vm[i]) for i in idx}
    out = [tuple(sorted(g)) for g in _deal(idx, work.__getitem__, n)]
    if not all(stays_high(baseline_scenario(sc, g)) for g in out):
        return whole
    return out


# What a run reads of its baseline (metrics.recorder): each VM's references per second.
BASE_COLUMNS = ["time_s", "vm", *basecache.COLUMNS[1:]]


def merge_baselines(sc: Scenario, parts: list[Result]) -> Result:
    """One baseline Result from its groups' runs. Only `vms` is meaningful (and of it, used:
    BASE_COLUMNS); each group ran on a host of its own."""
    import pandas as pd

    if len(parts) == 1:
        return parts[0]
    order = {v.name: i for i, v in enumerate(sc.vm)}
    vms = pd.concat([p.vms for p in parts], ignore_index=True)
    vms = vms.sort_values(["time_s", "vm"], key=lambda c: c.map(order) if c.name == "vm" else c,
                          kind="stable", ignore_index=True)
    summary = {"scenario": parts[0].summary.get("scenario"),
               "baseline_groups": [sorted(p.vms["vm"].unique().tolist()) for p in parts]}
    return Result(host=parts[0].host.iloc[0:0], vms=vms, summary=summary)


def worthwhile(sc: Scenario) -> bool:
    """Whether the baseline should run beside the scenario: a process that may fork a helper
    on a second core (`_fork.can_fork`: not a pool's daemonic worker, no other thread), and
    memory for a second simulation (about 40 B a simulated page)."""
    if not _fork.can_fork():
        return False
    bs = baseline_scenario(sc)
    need = 40 * (pages(bs.host.memory) + sum(pages(v.memory) for v in bs.vm))
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return True
    return need < avail // 2


@dataclass(frozen=True)
class GroupJob:
    """A baseline group for the runner: the scenario (as its fields), how far, which VMs."""

    scenario: dict[str, Any]
    until: float
    group: tuple[int, ...]


def run_group(job: GroupJob) -> pd.DataFrame:
    """A worker's side of a GroupJob: the group's baseline rows (BASE_COLUMNS)."""
    sc = Scenario.model_validate(job.scenario)
    part = baseline_run(sc, job.until, job.group)
    if part is None:
        raise KeyboardInterrupt
    return part.vms[BASE_COLUMNS]


def baseline_spec(sc: Scenario, i: int) -> str:
    """What VM i's whole baseline depends on, as JSON (basecache's key): its baseline scenario
    alone (its VM, whose name names its random streams, seed, tick, duration, hypervisor and
    costs). Not the scenario's name, the other VMs, the VM's place among them, or the host's
    memory, vmkernel and swap device: an ample host that stays high (cacheable) swaps nothing,
    whatever its size."""
    bs = baseline_scenario(sc, (i,))
    # A scenario without events has the keys it had before events existed (kept entries stay
    # valid); a cached VM has none anyway (cacheable).
    skip = {"name", "description"} | (set() if bs.event else {"event"})
    d = bs.model_dump(mode="json", exclude=skip)
    d["host"] = bs.host.model_dump(mode="json", exclude={"memory", "vmkernel", "swap_device"})
    return json.dumps({"scenario": d}, sort_keys=True)


def cacheable(sc: Scenario) -> tuple[int, ...]:
    """The VMs whose baselines can be kept and reused (basecache). None unless each VM's
    baseline is its own alone: separable, and each VM's own ample host stays high. Of those,
    not a VM that replays a trace: the key names the file, not what it holds."""
    if not (sc.baseline and separable(sc)
            and all(stays_high(baseline_scenario(sc, (i,))) for i in range(len(sc.vm)))):
        return ()
    evented = events.touched(sc)  # kept simple: no VM an event touches is cached
    return tuple(i for i, v in enumerate(sc.vm)
                 if not any(p.workload == "trace" for p in v.process)
                 and v.name not in evented)


def whole_run(sc: Scenario, until: float) -> bool:
    """Whether a run that reached `until` simulated seconds ran the scenario's whole duration."""
    return until >= sc.duration - sc.tick / 2


class Baseline:
    """A scenario's baseline for slowdown: the VMs whose baselines the cache holds from it
    (basecache), the others computed in groups (baseline_groups) beside the scenario's run,
    as jobs of the project's runner (vmemsim.runner: worker processes, one core's worth fewer
    than the machine's), or after it in this process.

    Only the groups with a VM the hypervisor acted on are needed: a VM it never acted on has
    its own run as its baseline (untouched). So while the scenario runs, groups are
    handed to the runner one per free worker, those of VMs the hypervisor has acted on first
    (each simulated second, `watch`); at the end the groups not needed are cancelled, or
    stopped where they run, and the needed ones not done are run: on the workers, and here.
    A worker that dies fails its group's future; that group runs here."""

    def __init__(self, sc: Scenario, parallel: bool | None = None,
                 cache: bool = True) -> None:
        self.scenario = sc
        self.cached: dict[int, pd.DataFrame] = {}  # VM index -> its rows
        # The VMs whose baselines are looked up, and stored once computed.
        self.keep = cacheable(sc) if cache and basecache.folder() is not None else ()
        for i in self.keep:
            rows = basecache.get(baseline_spec(sc, i), sc.vm[i].name)
            if rows is not None:
                self.cached[i] = rows
        self.missing = tuple(i for i in range(len(sc.vm)) if i not in self.cached)
        self.from_run: list[str] = []  # VMs whose baselines are their own runs (result)
        self.runner: Any = None
        self.groups: list[tuple[int, ...]] = []
        self.urgent: set[tuple[int, ...]] = set()
        self.running: dict[tuple[int, ...], Any] = {}  # group -> its future
        self.got: dict[tuple[int, ...], pd.DataFrame] = {}
        if not (sc.baseline and self.missing):
            return
        if parallel is None:
            parallel = worthwhile(sc)
        if not parallel:
            return
        from vmemsim.runner import Runner

        self.groups = sorted(baseline_groups(sc, SERIAL_GROUPS, self.missing),
                             key=lambda g: -sum(expected_refs(sc, sc.vm[i]) for i in g))
        self.runner = Runner(workers=max(1, _fork.cores() - 1), method="fork")
        self._job = functools.partial(GroupJob, sc.model_dump(mode="json"), sc.duration)
        self._feed()

    @property
    def cached_names(self) -> list[str]:
        return [self.scenario.vm[i].name for i in sorted(self.cached)]

    def _feed(self) -> None:
        """Collect what finished; hand the next groups to free workers, urgent ones first,
        then the largest expected work (baseline_groups' order)."""
        for g, f in list(self.running.items()):
            if f.done():
                del self.running[g]
                if f.exception() is None:
                    self.got[g] = f.result()
        free = self.runner.backend.workers - len(self.running)
        waiting = [g for g in self.groups if g not in self.running and g not in self.got]
        waiting.sort(key=lambda g: g not in self.urgent)  # stable: urgent first
        for g in waiting[:max(0, free)]:
            self.running[g] = self.runner.submit(run_group, self._job(g))

    def watch(self, sim: Simulation) -> None:
        """Follow the scenario's run: each simulated second, the groups of the VMs the
        hypervisor has acted on become urgent, and free workers get the next groups."""
        if self.runner is not None:
            sim.watchers.append(self._observe)

    def _observe(self, sim: Simulation) -> None:
        for g in self.groups:
            if g not in self.urgent and any(sim.vms[i].acted_on for i in g):
                self.urgent.add(g)
        self._feed()

    def result(self, until: float, stopped_early: bool = False,
               run: Simulation | None = None, ran: Result | None = None) -> Result | None:
        """The baseline up to `until` simulated seconds (None if interrupted). `run`: the
        scenario's simulation; the VMs it leaves untouched (untouched) have their
        own runs as baselines, not run again (`ran`: its result, if already built). The cache
        and the workers hold whole runs: for a run that stopped early, the baselines it needs
        run here, up to `until`."""
        import pandas as pd

        sc = self.scenario
        whole = not stopped_early and whole_run(sc, until)
        if not whole:  # the cache and the workers hold whole runs: what is needed runs here
            self.cancel()
            self.cached = {}
            self.missing = tuple(range(len(sc.vm)))
        own = set(untouched(run)) & set(self.missing) if run is not None else set()
        rows: dict[int, pd.DataFrame] = dict(self.cached)  # VM index -> its baseline's rows
        if self.missing:
            needed = tuple(i for i in self.missing if i not in own)
            parts = self._needed(until, needed) if needed else []
            if parts is None:
                return None  # interrupted
            base = merge_baselines(sc, parts) if parts else None
            computed = set() if base is None else set(base.vms["vm"])
            mine = None
            if own and run is not None:
                mine = (ran if ran is not None else run.result()).vms
            for i in self.missing:
                name = sc.vm[i].name
                if name in computed:
                    assert base is not None
                    rows[i] = base.vms[base.vms["vm"] == name][BASE_COLUMNS]
                else:
                    assert mine is not None and i in own
                    rows[i] = mine[mine["vm"] == name][BASE_COLUMNS]
                if whole and i in self.keep:
                    basecache.put(baseline_spec(sc, i), rows[i])
            self.from_run = [sc.vm[i].name for i in sorted(own) if sc.vm[i].name not in computed]
        parts = [Result(host=pd.DataFrame(), vms=rows[i], summary={}) for i in sorted(rows)]
        merged = merge_baselines(sc, parts)
        merged.summary["from_cache"] = self.cached_names
        merged.summary["from_run"] = list(self.from_run)
        return merged

    def _needed(self, until: float, needed: tuple[int, ...]) -> list[Result] | None:
        """The baselines of these VMs' groups: from the workers where they ran or run, the
        rest run here (None: interrupted)."""
        import pandas as pd

        sc = self.scenario
        if self.runner is None:
            part = run_groups(sc, until, baseline_groups(sc, SERIAL_GROUPS, needed))
            return None if part is None else [part]
        want = [g for g in self.groups if set(g) & set(needed)]
        try:
            for g, f in list(self.running.items()):  # not needed: stop it
                if g not in want:
                    self.runner.cancel(f)
                    del self.running[g]
            self._feed_only(want)
            parts: list[Result] = []
            for g in want:
                f = self.running.get(g)
                if g not in self.got and f is not None:
                    try:
                        self.got[g] = f.result()
                    except Exception as exc:  # noqa: BLE001 - a lost worker: run it here
                        warnings.warn(f"baseline group {[sc.vm[i].name for i in g]}: "
                                      f"{type(exc).__name__}; running it here", stacklevel=3)
                if g not in self.got:
                    part = baseline_run(sc, until, g)
                    if part is None:
                        return None
                    self.got[g] = part.vms[BASE_COLUMNS]
                parts.append(Result(host=pd.DataFrame(), vms=self.got[g], summary={}))
            return parts
        except KeyboardInterrupt:
            return None
        finally:
            self.cancel()

    def _feed_only(self, want: list[tuple[int, ...]]) -> None:
        """Hand the needed groups not started to the workers, but keep the last one for this
        process, whose core the scenario no longer uses."""
        start = [g for g in want if g not in self.running and g not in self.got]
        for g in start[:-1]:
            self.running[g] = self.runner.submit(run_group, self._job(g))

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.backend.abort(list(self.running.values()))
            self.running = {}
            self.runner.close()
            self.runner = None


def simulate(scenario: Scenario, *, progress: Any = None, check: bool | int = False,
             parallel: bool | None = None, cache: bool = True) -> Result:
    """Run a scenario and its unconstrained baseline for slowdown; return the Result.

    The baseline runs in a second process at the same time when the machine has a second core
    and the memory for it (parallel=None), always (True) or after the scenario (False); the
    results are identical. VMs whose baselines were kept by an earlier run take them from the
    cache (vmemsim.basecache; cache=False: neither read nor write it), with the same results.
    """
    baseline = Baseline(scenario, parallel, cache)
    try:
        sim = Simulation(scenario, check=check)
        baseline.watch(sim)
        result = sim.run(progress)
        if scenario.baseline and sim.time_s > 0:
            base = baseline.result(sim.time_s, stopped_early=sim.interrupted, run=sim,
                                   ran=result)
            if base is not None:
                result = sim.result(base=base)
    finally:
        baseline.cancel()
    return result
