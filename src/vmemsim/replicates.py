"""Replicates: one scenario run with several seeds, for a mean and a confidence interval.

One seed gives one sample of a random process: a VM 1.0x slower with one seed may be 12x
with the next. `run_seeds` runs the scenario with seeds s, s + 1, ..., s + n - 1 through the
project's runner (vmemsim.runner, forked workers, one per core) and returns the first seed's
Result, its summary extended with, per VM, the mean and 95% interval of slowdown and
throughput over the seeds (metrics.stats.mean_ci), and the seeds themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmemsim.metrics.stats import mean_ci

if TYPE_CHECKING:
    from vmemsim.config.schema import Scenario
    from vmemsim.metrics.result import Result


def seeds_of(sc: Scenario, n: int) -> list[int]:
    return [(sc.seed + k) % 2**63 for k in range(n)]


def run_seeds(sc: Scenario, n: int, *, cache: bool = True,
              workers: int | None = None) -> Result:
    """The scenario with n seeds; the first seed's Result with the intervals (add_intervals).
    The runs go to forked workers when this process may fork one (`_fork.can_fork`), else
    run here one after another; the numbers are the same."""
    from vmemsim import _fork
    from vmemsim.jobs import SimJob, run_simulation
    from vmemsim.runner import Runner

    if n < 1:
        raise ValueError(f"seeds must be at least 1, got {n}")
    jobs = [SimJob.of(sc.with_overrides(seed=s), cache=cache) for s in seeds_of(sc, n)]
    results: list[Result | None] = [None] * n
    if n > 1 and _fork.can_fork():
        with Runner(workers=workers or _fork.cores(), method="fork") as r:
            for i, res in r.map(run_simulation, jobs):
                results[i] = res
    else:
        for i, job in enumerate(jobs):
            results[i] = run_simulation(job)
    done = [r for r in results if r is not None]
    add_intervals(done)
    return done[0]


def add_intervals(results: list[Result]) -> None:
    """Into the first result's summary: `seeds`, and per VM `slowdown_mean`,
    `slowdown_ci` [low, high], `throughput_mean`, `throughput_ci`, over all the results."""
    first = results[0].summary
    first["seeds"] = [r.summary["seed"] for r in results]
    for k, vm in enumerate(first["vms"]):
        per = [r.summary["vms"][k] for r in results]
        assert all(p["name"] == vm["name"] for p in per)
        for key in ("slowdown", "throughput"):
            m, lo, hi = mean_ci([p[key] for p in per])
            vm[f"{key}_mean"] = m
            vm[f"{key}_ci"] = [lo, hi]
