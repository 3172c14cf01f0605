"""vmemsim: a page-level simulator of hypervisor memory management, modelled on VMware ESX.

    import vmemsim
    result = vmemsim.simulate("default")          # a built-in, a TOML path, a dict or a Scenario
    result.host, result.vms                        # pandas DataFrames, one row per second
    result.summary["vms"][0]["slowdown"]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmemsim import _cache

_cache.configure()  # before numba is imported anywhere below

from vmemsim.config.loader import (  # noqa: E402
    ScenarioError,
    load_scenario,
    scenario_from_dict,
)
from vmemsim.config.schema import Scenario  # noqa: E402

if TYPE_CHECKING:
    from vmemsim.metrics.result import Result


def __getattr__(name: str) -> Any:  # noqa: ANN401
    # Result brings pandas (half a second): only load it when asked, so that commands that
    # never make one (`vmemsim trace ...`) start faster.
    if name == "Result":
        from vmemsim.metrics.result import Result

        return Result
    raise AttributeError(f"module 'vmemsim' has no attribute {name!r}")

__version__ = "0.1.0"


def simulate(scenario: Scenario | str | Path | dict[str, Any] | None = None, *,
             duration: float | str | None = None, seed: int | None = None,
             check: bool | int = False, parallel: bool | None = None,
             cache: bool = True, seeds: int = 1) -> Result:
    """Run a scenario and return its Result (time series as DataFrames, and the summary).

    `check` verifies the invariants (vmemsim.invariants) every tick (True) or every `check`
    ticks, and after the last; slow, for debugging.

    The baseline run (for slowdown) goes to a second process beside the scenario's when the
    machine has a spare core and memory (parallel=None); True or False force either way.
    VMs whose baselines an earlier run kept (the same VM in the same place in the list, seed,
    tick, duration, hypervisor and costs; any host) take them from the cache, with the same
    results (vmemsim.basecache; not a VM that replays a trace; cache=False neither reads nor
    writes it).

    `seeds` > 1 runs the scenario with that many seeds (its own, then the next ones) on
    worker processes and returns the first seed's Result, its summary giving per VM the mean
    and 95% interval of slowdown and throughput over the seeds (vmemsim.replicates).
    """
    from vmemsim import baseline

    if isinstance(scenario, dict):
        sc = scenario_from_dict(scenario)
    elif isinstance(scenario, Scenario):
        sc = scenario
    else:
        sc = load_scenario(scenario)
    if duration is not None or seed is not None:
        sc = sc.with_overrides(duration=duration, seed=seed)
    if seeds != 1:
        from vmemsim.replicates import run_seeds

        return run_seeds(sc, seeds, cache=cache)
    return baseline.simulate(sc, check=check, parallel=parallel, cache=cache)


def sweep(spec: str | Path | dict[str, Any], out: str | Path | None = None, *,
          workers: int | None = None, scheduler: Any = None,  # noqa: ANN401
          cache: bool = True, progress: bool = False) -> Any:  # noqa: ANN401
    """Run a sweep (a sweep TOML file, or its contents as a dict; vmemsim.sweeps) and return
    its DataFrame: one row per point and VM.

    Each point's result is kept in `out` (default: results/sweep-<file name>) as it finishes;
    run again into the same folder, only the points missing are run. Points run on `workers`
    local processes (default: one per core), or on a Dask cluster: `scheduler` is its address
    (or a distributed cluster object); DASK_SCHEDULER_ADDRESS names one too.
    """
    from vmemsim import sweeps

    plan = sweeps.load_plan(spec)
    folder = Path(out) if out is not None else sweeps.default_out(spec)
    return sweeps.run_sweep(plan, folder, workers=workers, scheduler=scheduler, cache=cache,
                            progress=progress)


__all__ = ["Result", "Scenario", "ScenarioError", "load_scenario", "scenario_from_dict",
           "simulate", "sweep"]
