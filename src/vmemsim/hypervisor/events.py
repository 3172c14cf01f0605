"""Events during a run, applied at the start of their tick, before the control plane's
(engine.Simulation.step_tick): settings that change, VMs that power on or off, arrive or leave
by vMotion. What each event changes was planned from the scenario (config.events); here it
takes effect on the running state, each key where the state holds it:

- hypervisor.*: the control plane's settings (Hypervisor.cfg), and what derives from them:
  the state thresholds (and the scarce mark of kernels.refpath, and where TPS breaks large
  pages), each VM's balloon driver
  (installed, rates, most pages) and active-memory estimate (gains);
- vm.<name>.limit: the VM's most pages (VM.max_pages, and the reservation under it);
- vm.<name>.reservation: its least pages (VM.min_pages), if admission control admits it;
- vm.<name>.shares: its shares (VM.shares);
- vm.<name>.tools: its balloon driver installed or not.

A VM that cannot be admitted (power_on, migrate_in, a larger reservation) is refused: it
stays off (or keeps its reservation), and the event's record says why (summary.json, the
terminal). Each event's record is in `log`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from vmemsim.build import driver_settings, page_bounds
from vmemsim.config.events import Step, plan
from vmemsim.config.units import mb
from vmemsim.hypervisor.sharing import break_free_pages
from vmemsim.kernels.layout import C_BALLOON_N

if TYPE_CHECKING:
    from vmemsim.build import VM
    from vmemsim.engine import Simulation

THRESHOLD_KEYS = {"thresholds", "soft_pct", "hard_pct", "low_pct", "hysteresis"}
DRIVER_KEYS = {"balloon", "ctl_max_pct", "balloon_rate_min", "balloon_rate_max",
               "balloon_rate_nopressure"}


class Events:
    """A run's events, applied in order (`due` each tick)."""

    def __init__(self, sim: Simulation) -> None:
        self.steps: list[Step] = plan(sim.scenario)
        self.next = 0
        self.log: list[dict[str, Any]] = []
        self.by_name = {v.cfg.name: v for v in sim.vms}

    @property
    def next_tick(self) -> int:
        """The tick the next event takes effect at (none left: never)."""
        return self.steps[self.next].tick if self.next < len(self.steps) else -1

    def due(self, sim: Simulation, now: float) -> None:
        """Apply the events whose tick this is."""
        while self.next < len(self.steps) and self.steps[self.next].tick <= sim.tick:
            self.apply(sim, self.steps[self.next], now)
            self.next += 1

    def apply(self, sim: Simulation, st: Step, now: float) -> None:
        hv = sim.hv
        e = st.cfg
        rec: dict[str, Any] = {"index": st.index, "at_s": st.at, "time_s": round(now, 6)}
        refused: list[dict[str, str]] = []
        if e.set:
            rec["set"] = dict(e.set)
        if st.after is not None:
            if st.hv:
                self._hypervisor(sim, st)
            for name, keys in sorted(st.vms.items()):
                v = self.by_name[name]
                new = next(c for c in st.after.vm if c.name == name)
                why = self._vm(sim, v, new, keys)
                if why:
                    refused.append({"vm": name, "what": "reservation", "why": why})
        for name in sorted(e.power_off + e.migrate_out):  # by name, not by place in the list
            hv.power_off(self.by_name[name])
        arrived: dict[str, float] = {}
        for kind in ("power_on", "migrate_in"):
            for name in getattr(e, kind):  # in the order listed: admission, HA's priority
                v = self.by_name[name]
                why = hv.refusal(v, v.min_pages)
                if why:
                    v.gone = True  # not admitted: it does not run
                    refused.append({"vm": name, "what": kind, "why": why})
                    continue
                v.start = now
                if kind == "power_on":
                    hv.act(v)
                    hv.power_on(v, now)
                else:
                    arrived[name] = mb(hv.migrate_in(v, now))
        for kind in ("power_on", "power_off", "migrate_in", "migrate_out"):
            names = getattr(e, kind)
            if names:
                rec[kind] = list(names)
        if arrived:
            rec["migrated_in_mb"] = arrived
        if refused:
            rec["refused"] = refused
        self.log.append(rec)

    def _hypervisor(self, sim: Simulation, st: Step) -> None:
        hv = sim.hv
        assert st.after is not None
        cfg = hv.cfg = st.after.hypervisor
        keys = set(st.hv)
        sim.sharing.hv = cfg  # (TPS's own keys cannot change: config.events)
        if keys & THRESHOLD_KEYS:
            hv.set_thresholds()
            # TPS: where large pages break follows the thresholds (vsphere: high_pct of minFree)
            sim.sharing.break_below = break_free_pages(hv.thresholds, cfg)
        for v in hv.vms:
            v.estimate.fast_gain = cfg.fast_gain
            v.estimate.slow_gain = cfg.slow_gain
            if keys & DRIVER_KEYS:
                d = v.driver
                for k, val in driver_settings(v.cfg, cfg, v.n_gppn).items():
                    setattr(d, k, val)
                d.rate_alloc = min(max(d.rate_alloc, d.rate_min), d.rate_max)
                if not d.installed:
                    d.target = int(v.arrays.vc[C_BALLOON_N])

    def _vm(self, sim: Simulation, v: VM, new: Any, keys: tuple[str, ...]) -> str:  # noqa: ANN401
        """Apply a VM's changed keys; returns why a larger reservation was refused, or ''."""
        hv = sim.hv
        hv.act(v)
        why = ""
        update: dict[str, Any] = {k: getattr(new, k) for k in keys}
        min_pages, max_pages = page_bounds(v.cfg.model_copy(update=update), v.n_gppn)
        if "reservation" in keys and min_pages > v.min_pages and (v.powered_on or (
                not v.gone and v.start < math.inf)):
            why = hv.refusal(v, min_pages)
            if why:  # ESX refuses the reconfiguration: the old reservation stays
                del update["reservation"]
                min_pages, max_pages = page_bounds(v.cfg.model_copy(update=update), v.n_gppn)
        v.cfg = v.cfg.model_copy(update=update)
        v.max_pages, v.min_pages = max_pages, min_pages
        if "shares" in keys:
            v.shares = float(v.cfg.share_count())
        if "tools" in keys:
            v.driver.installed = v.cfg.tools and hv.cfg.balloon
            if not v.driver.installed:
                v.driver.target = int(v.arrays.vc[C_BALLOON_N])
        return why

