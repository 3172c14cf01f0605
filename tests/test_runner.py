"""The runner: local worker processes give the same results as a run in this process, a job's
own error stops the run naming the job, and a worker that dies costs a retry, not a result."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

import vmemsim
from helpers import small
from vmemsim.jobs import SimJob, run_simulation
from vmemsim.runner import JobError, Runner, WorkerLost


def die_once(arg: tuple[str, int]) -> int:
    """Kills its own worker the first time it runs (a marker file remembers), then returns."""
    marker, value = arg
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return value * 10


def die_always(value: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return value


def fail(value: int) -> int:
    if value == 2:
        raise ValueError("bad value 2")
    return value


def test_local_workers_equal_a_run_here() -> None:
    scenarios = [small(duration="3s", seed=s) for s in (1, 2, 3)]
    with Runner(workers=2) as runner:
        got = dict(runner.map(run_simulation, [SimJob.of(sc, cache=False) for sc in scenarios]))
    assert sorted(got) == [0, 1, 2]
    for i, sc in enumerate(scenarios):
        here = vmemsim.simulate(sc, parallel=False, cache=False)
        pd.testing.assert_frame_equal(got[i].vms, here.vms)
        pd.testing.assert_frame_equal(got[i].host, here.host)


def test_a_killed_worker_is_retried_and_loses_nothing(tmp_path: Path) -> None:
    items = [(str(tmp_path / f"m{i}"), i) for i in range(4)]
    with Runner(workers=2) as runner:
        got = dict(runner.map(die_once, items))
    assert got == {i: i * 10 for i in range(4)}
    assert runner.lost >= 1


def test_a_worker_that_always_dies_is_given_up_on() -> None:
    with Runner(workers=1, retries=1) as runner, pytest.raises(WorkerLost, match="job 0"):
        dict(runner.map(die_always, [0]))


def test_a_jobs_own_error_names_it_and_is_not_retried() -> None:
    with Runner(workers=2) as runner, pytest.raises(JobError, match="job 2: ValueError") as e:
        dict(runner.map(fail, range(4)))
    assert e.value.index == 2
    assert runner.lost == 0


def test_the_environment_names_a_dask_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from vmemsim.runner import scheduler_address

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://example:8786")
    assert scheduler_address() == "tcp://example:8786"
    assert scheduler_address("tcp://other:1") == "tcp://other:1"
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert scheduler_address() is None


def _pid(_: object) -> int:
    return os.getpid()


def test_a_forked_worker_started_from_another_thread_lives() -> None:
    """The baseline's runner (fork method) may start a worker from a job's callback thread:
    the worker must outlive that thread (a parent-death signal from the kernel follows the
    forking thread, and killed such workers as soon as it ended)."""
    import threading

    from vmemsim.runner import Runner

    with Runner(workers=1, method="fork") as r:
        out = {}
        t = threading.Thread(target=lambda: out.setdefault("f", r.submit(_pid, 0)))
        t.start()
        t.join()
        assert out["f"].result(timeout=60) != os.getpid()
