"""Whole simulations as jobs for the runner (vmemsim.runner): what sweeps and replicates
submit. A job holds the scenario as the dict of its fields, so that any worker with the same
vmemsim installed rebuilds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vmemsim.baseline import simulate
from vmemsim.config.loader import scenario_from_dict

if TYPE_CHECKING:
    from vmemsim.config.schema import Scenario
    from vmemsim.metrics.result import Result


@dataclass(frozen=True)
class SimJob:
    """One simulation: a scenario (as the dict of its fields, so that any worker with the same
    vmemsim rebuilds it) and the options of `vmemsim.simulate` that a worker may take."""

    scenario: dict[str, Any]
    cache: bool = True
    check: bool | int = False

    @classmethod
    def of(cls, scenario: Scenario | dict[str, Any], **options: Any) -> SimJob:  # noqa: ANN401
        data = scenario if isinstance(scenario, dict) else scenario.model_dump(mode="json")
        return cls(scenario=data, **options)


def run_simulation(job: SimJob) -> Result:
    """A worker's side of a SimJob: run it in this process (parallel=False: a worker is one
    core's worth, and forking from inside a pool's worker is not safe)."""
    return simulate(scenario_from_dict(job.scenario), parallel=False, cache=job.cache,
                    check=job.check)
