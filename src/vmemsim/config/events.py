"""Events during a run (`[[event]]`): checked against the whole scenario before anything runs,
and planned: what each one changes, from the scenario alone (hypervisor.events applies them).

    [[event]]
    at = "20min"
    set = { "hypervisor.idle_tax" = 0.75, "vm.db.limit" = "2GiB" }
    [[event]]
    at = "30min"
    power_off = ["web"]

A `set` key is a dotted path as in sweeps (config.paths; a VM by its name). Only the keys in
SETTABLE_HV and SETTABLE_VM can change during a run: the others are baked into the state at
build time (a VM's memory size, its arrays, the costs): setting one is refused, never ignored.
A VM that a power_on or migrate_in names starts at that event only (its own `start` must be
left at 0, unset); a VM powers on at most once in a run, and stays off once powered off or migrated
out. Every problem is one line naming the event: `event[2] (at 30min): ...`.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vmemsim.config.paths import PathError, set_path
from vmemsim.config.schema import EventConfig, Scenario

# What a `set` may change mid-run (hypervisor.events says how each takes effect).
SETTABLE_HV = frozenset({
    "thresholds", "soft_pct", "hard_pct", "low_pct", "hysteresis", "balance_period",
    "idle_tax", "sample_period", "fast_gain", "slow_gain", "balloon", "ctl_max_pct",
    "balloon_poll", "balloon_rate_min", "balloon_rate_max", "balloon_rate_nopressure", "swap",
    "swap_cluster", "blocking", "growth_pct"})
SETTABLE_VM = frozenset({"limit", "reservation", "shares", "tools"})
POWER = ("power_on", "power_off", "migrate_in", "migrate_out")
ARRIVE = ("power_on", "migrate_in")  # a VM that these name starts there, not at `start`
LEAVE = ("power_off", "migrate_out")


class EventError(ValueError):
    """An event that cannot run: one line, `event[i] (at t): what`."""


@dataclass(frozen=True)
class Step:
    """One event, planned: when, and what it changes."""

    index: int
    at: float
    tick: int  # the tick it takes effect at: the first that starts at or after `at`
    cfg: EventConfig
    after: Scenario | None  # the settings after its `set` (None: it sets nothing)
    hv: tuple[str, ...] = ()  # hypervisor fields it changes
    vms: dict[str, tuple[str, ...]] = field(default_factory=dict)  # VM -> fields it changes

    @property
    def label(self) -> str:
        return label(self.index, self.at)


def _time(t: float) -> str:
    if t >= 60 and t % 60 == 0:
        return f"{t / 60:g}min"
    return f"{t:g}s"


def label(i: int, at: float) -> str:
    return f"event[{i}] (at {_time(at)})"


def tick_of(t: float, dt: float) -> int:
    """The first tick that starts at or after time t (what begin_tick's `now >= t` gives)."""
    return max(0, math.ceil(t / dt - 1e-9))


def arriving(sc: Scenario) -> set[str]:
    """The VMs that a power_on or migrate_in event starts (not their own `start`)."""
    return {n for e in sc.event for k in ARRIVE for n in getattr(e, k)}


def _settings(sc: Scenario) -> dict[str, Any]:
    """The scenario's settings as a dict a `set` edits: every field written out."""
    d = sc.model_dump(mode="json")
    d["event"] = []
    return d


def _invalid(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-"))
    msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _apply_set(cur: Scenario, sets: dict[str, Any], names: list[str]) -> tuple[Scenario, str]:
    """The settings after a `set`, or an error ('' if none)."""
    data = _settings(cur)
    for key, value in sets.items():
        parts = key.split(".")
        if parts[0] == "vm" and len(parts) > 1 and parts[1] not in names:
            return cur, (f"set: no vm named {parts[1]!r} (the scenario's: "
                         f"{', '.join(names)})")
        try:
            set_path(data, key, value)
        except PathError as exc:
            return cur, f"set: {exc}"
        ok = ((parts[0] == "hypervisor" and len(parts) == 2 and parts[1] in SETTABLE_HV)
              or (parts[0] == "vm" and len(parts) == 3 and parts[2] in SETTABLE_VM))
        if not ok:
            return cur, (f"set: {key} cannot change during a run (settable: "
                         f"hypervisor.{{{', '.join(sorted(SETTABLE_HV))}}}, "
                         f"vm.<name>.{{{', '.join(sorted(SETTABLE_VM))}}})")
    try:
        return Scenario.model_validate(data), ""
    except ValidationError as exc:
        shown = ", ".join(f"{k} = {json.dumps(v)}" for k, v in sets.items())
        return cur, f"set {shown}: {_invalid(exc)}"


def _diff(a: Any, b: Any, keys: Iterable[str]) -> tuple[str, ...]:
    return tuple(k for k in keys if getattr(a, k) != getattr(b, k))


def plan(sc: Scenario) -> list[Step]:
    """The scenario's events in order, each checked and with what it changes. Raises
    EventError (one line naming the event) for the first one that cannot run."""
    names = [v.name for v in sc.vm]
    by_name = {v.name: v for v in sc.vm}
    starts = arriving(sc)
    # When each VM is on: from its tick on (None: not yet), until it leaves (inf: never).
    on_from: dict[str, int | None] = {
        v.name: None if v.name in starts else tick_of(v.start, sc.tick) for v in sc.vm}
    left: dict[str, str] = {}  # VM -> the event that powered it off or moved it out
    arrived: dict[str, str] = {}
    steps: list[Step] = []
    cur = sc
    prev = -1.0
    for i, e in enumerate(sc.event):
        where = label(i, e.at)

        def fail(what: str, where: str = where) -> EventError:
            return EventError(f"{where}: {what}")

        if e.at >= sc.duration:
            raise fail(f"after the end of the run (duration {_time(sc.duration)})")
        if e.at < prev:
            raise fail(f"out of order: events must be in time order (the one before is at "
                       f"{_time(prev)})")
        prev = e.at
        if not e.set and not any(getattr(e, k) for k in POWER):
            raise fail("does nothing: give set, power_on, power_off, migrate_in or "
                       "migrate_out")
        tick = tick_of(e.at, sc.tick)
        seen: set[str] = set()
        for kind in POWER:
            for n in getattr(e, kind):
                if n not in by_name:
                    raise fail(f"{kind}: no vm named {n!r} (the scenario's: "
                               f"{', '.join(names)})")
                if n in seen:
                    raise fail(f"{kind}: vm {n!r} is named twice in this event")
                seen.add(n)
                if n in left:
                    raise fail(f"{kind}: vm {n!r} already left at {left[n]}: a VM powers "
                               "on once in a run")
                if kind in ARRIVE:
                    if n in arrived:
                        raise fail(f"{kind}: vm {n!r} already arrives at {arrived[n]}")
                    if by_name[n].start != 0:  # (a dumped scenario writes start = 0 out)
                        raise fail(f"{kind}: vm {n!r} sets its own start; a VM that an "
                                   "event starts has none")
                    arrived[n] = where
                    on_from[n] = tick
                else:
                    t0 = on_from[n]
                    if t0 is None or t0 >= tick:
                        raise fail(f"{kind}: vm {n!r} is not running at that time")
                    left[n] = where
        after: Scenario | None = None
        hv: tuple[str, ...] = ()
        vms: dict[str, tuple[str, ...]] = {}
        if e.set:
            after, err = _apply_set(cur, dict(e.set), names)
            if err:
                raise fail(err)
            hv = _diff(cur.hypervisor, after.hypervisor, SETTABLE_HV)
            for old, new in zip(cur.vm, after.vm, strict=True):
                ch = _diff(old, new, SETTABLE_VM)
                if ch:
                    vms[old.name] = ch
            cur = after
        steps.append(Step(index=i, at=e.at, tick=tick, cfg=e, after=after, hv=hv, vms=vms))
    return steps


def check(sc: Scenario) -> None:
    """Raise EventError if an event cannot run."""
    plan(sc)


def lowest_reservation(sc: Scenario, steps: list[Step], name: str) -> int:
    """The least reservation VM `name` has during the run: its host swap file is sized for
    it (memory - reservation), so that lowering it mid-run leaves room to swap."""
    return min(v.reservation for s in [sc, *(st.after for st in steps if st.after)]
               for v in s.vm if v.name == name)


def touched(sc: Scenario) -> set[str]:
    """The VMs the events do something to (all of them when an event sets a hypervisor key:
    sampling, targets and the balloon are every VM's)."""
    out: set[str] = set()
    for e in sc.event:
        for k in POWER:
            out.update(getattr(e, k))
        for key in e.set:
            parts = key.split(".")
            if parts[0] == "vm" and len(parts) > 1:
                out.add(parts[1])
            else:
                return {v.name for v in sc.vm}
    return out


def sets_shared(sc: Scenario) -> bool:
    """Whether an event sets what makes VMs interact on an ample host: a hypervisor key (the
    thresholds, say) or a limit (VMs over their limits share the host's swap device)."""
    return any(not k.startswith("vm.") or k.endswith(".limit") for e in sc.event for k in e.set)


def for_vms(sc: Scenario, keep: Iterable[str],
            until: float | None = None) -> tuple[tuple[EventConfig, ...], dict[str, float]]:
    """The events as they concern only the VMs `keep` (a baseline group): their power
    events and sets, and the hypervisor's sets; events left empty are dropped, and (until)
    those at or after the end of a shorter run. Also the VMs whose arrival was so dropped,
    with a start at that end: they do not run."""
    keep = set(keep)
    out = []
    late: dict[str, float] = {}
    for e in sc.event:
        d = copy.deepcopy(e.model_dump(mode="json"))
        d["set"] = {k: v for k, v in d["set"].items()
                    if not k.startswith("vm.") or k.split(".")[1] in keep}
        for k in POWER:
            d[k] = [n for n in d[k] if n in keep]
        if until is not None and e.at >= until:
            late.update({n: until for k in ARRIVE for n in d[k]})
            continue
        if d["set"] or any(d[k] for k in POWER):
            out.append(EventConfig.model_validate(d))
    return tuple(out), late
