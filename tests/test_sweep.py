"""Sweeps: each point is the scenario run alone, bit for bit; a Dask cluster gives what local
workers give; a killed worker and an interrupted sweep lose nothing; bad axes are one line
and exit 2 before anything runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import tomli_w

import vmemsim
from helpers import BASE
from vmemsim.cli import main
from vmemsim.config.loader import scenario_from_dict
from vmemsim.runner import Runner, kill_worker
from vmemsim.sweeps import Point, load_plan, load_point, run_sweep

BASE_SC = {**copy.deepcopy(BASE), "duration": "3s"}
SWEEP: dict[str, Any] = {
    "scenario": BASE_SC,
    "axes": {"host": {"memory": ["150MiB", "200MiB"]},
             "vm": {"b": {"process": {"p": {"rate": ["20k/s", "50k/s"]}}}}},
}


def by_hand(memory: str, rate: str, seed: int = 7, **over: Any) -> vmemsim.Scenario:
    """The point's scenario, written out without the sweep's path code."""
    data = copy.deepcopy(BASE_SC)
    data["host"]["memory"] = memory
    data["vm"][1]["process"][0]["rate"] = rate
    data["seed"] = seed
    data.update(over)
    return scenario_from_dict(data)


def test_points_are_the_scenarios_run_one_by_one(tmp_path: Path) -> None:
    sweep = {**SWEEP, "scenario": {**BASE_SC, "baseline": True}}
    plan = load_plan(sweep)
    frame = run_sweep(plan, tmp_path, workers=2, cache=False)
    assert [p.values for p in plan.points] == [
        {"host.memory": m, "vm.b.process.p.rate": r}
        for m in ("150MiB", "200MiB") for r in ("20k/s", "50k/s")]
    assert len(frame) == 4 * 3  # points x VMs
    for p in plan.points:
        alone = vmemsim.simulate(by_hand(p.values["host.memory"], p.values["vm.b.process.p.rate"],
                                         baseline=True), parallel=False, cache=False)
        kept = load_point(tmp_path, p)
        pd.testing.assert_frame_equal(kept.vms, alone.vms)
        pd.testing.assert_frame_equal(kept.host, alone.host)
        rows = frame[frame["point"] == p.index].set_index("vm")
        for v in alone.summary["vms"]:
            for col in ("throughput", "slowdown", "max_balloon_mb", "max_swapped_mb",
                        "max_compressed_mb"):
                assert rows.loc[v["name"], col] == v[col], (p.index, v["name"], col)
        assert (rows["min_free_mb"] == alone.host["free_mb"].min()).all()
        assert (rows["host.memory"] == p.values["host.memory"]).all()
    assert (tmp_path / "sweep.parquet").is_file() and (tmp_path / "sweep.html").is_file()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sweep.parquet"), frame)
    assert (tmp_path / "sweep-throughput.png").is_file()
    assert (tmp_path / "sweep-slowdown.png").is_file()


def test_seeds_and_zip(tmp_path: Path) -> None:
    sweep = {**SWEEP, "mode": "zip", "seeds": 2}
    plan = load_plan(sweep)
    assert [(p.values["host.memory"], p.values["vm.b.process.p.rate"], p.seed)
            for p in plan.points] == [("150MiB", "20k/s", 7), ("150MiB", "20k/s", 8),
                                      ("200MiB", "50k/s", 7), ("200MiB", "50k/s", 8)]
    assert load_plan({**SWEEP, "seeds": [3, 11]}).points[1].scenario.seed == 11
    assert plan.points[1].scenario == by_hand("150MiB", "20k/s", seed=8)


def test_a_dask_cluster_gives_what_local_workers_give(tmp_path: Path) -> None:
    from distributed import LocalCluster

    plan = load_plan(SWEEP)
    local = run_sweep(plan, tmp_path / "local", workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        dask = run_sweep(plan, tmp_path / "dask", scheduler=cluster)
    pd.testing.assert_frame_equal(local.sort_values(["point", "vm"]).reset_index(drop=True),
                                  dask.sort_values(["point", "vm"]).reset_index(drop=True))
    for p in plan.points:
        pd.testing.assert_frame_equal(load_point(tmp_path / "local", p).vms,
                                      load_point(tmp_path / "dask", p).vms)


def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    plan = load_plan({**SWEEP, "seeds": 2})
    reference = run_sweep(plan, tmp_path / "ref", workers=2)
    seen: list[int] = []
    with Runner(workers=2) as runner:
        def kill_one(point: Point, result: Any) -> None:
            seen.append(point.index)
            if len(seen) == 1:  # with points queued, both workers are mid-point: kill them
                victims = runner.worker_pids()
                assert victims
                for pid in victims:
                    kill_worker(pid)

        frame = run_sweep(plan, tmp_path / "killed", runner=runner, on_point=kill_one)
        assert runner.lost >= 1
    assert sorted(seen) == list(range(len(plan.points)))  # each point kept once
    pd.testing.assert_frame_equal(frame, reference)


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path: Path) -> None:
    plan = load_plan({**SWEEP, "seeds": 2})
    reference = run_sweep(plan, tmp_path / "ref", workers=1)
    first: list[int] = []

    def stop_after_three(point: Point, result: Any) -> None:
        first.append(point.index)
        if len(first) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(plan, tmp_path / "out", workers=1, on_point=stop_after_three)
    kept = [p.index for p in plan.points if load_point(tmp_path / "out", p) is not None]
    assert sorted(kept) == sorted(first)
    second: list[int] = []
    frame = run_sweep(load_plan({**SWEEP, "seeds": 2}), tmp_path / "out", workers=1,
                      on_point=lambda p, r: second.append(p.index))
    assert sorted(first + second) == list(range(len(plan.points)))  # none run twice
    pd.testing.assert_frame_equal(frame, reference)


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


@pytest.mark.parametrize(("axes", "extra", "expect"), [
    ({"host": {"memroy": ["150MiB"]}}, {}, "axes.host.memroy: unknown key 'host.memroy'"),
    ({"vm": {"zzz": {"memory": ["64MiB"]}}}, {}, "axes.vm.zzz.memory: no vm named 'zzz'"),
    ({"host": {"memory": ["150MiB", "lots"]}}, {},
     'point 1 (host.memory = "lots"): host.memory'),
    ({"hypervisor": {"idle_tax": [0.5, 2.0]}}, {},
     "point 1 (hypervisor.idle_tax = 2.0): hypervisor.idle_tax"),
    ({"host": {"memory": ["150MiB", "200MiB"]}, "hypervisor": {"idle_tax": [0.5]}},
     {"mode": "zip"}, "host.memory has 2, hypervisor.idle_tax has 1"),
    ({"host": {"memory": "150MiB"}}, {}, "axes.host.memory: an axis is a list of values"),
    ({"vm": {"a": {"process": {"p": {"size": ["48MiB", "200MiB"]}}}}}, {},
     "point 1 (vm.a.process.p.size = \"200MiB\"): vm 'a': processes need"),  # the engine's check
    ({"host": {"memory": ["150MiB"]}}, {"seeds": 0}, "seeds: at least 1"),
    ({"host": {"memory": ["150MiB"]}}, {"mode": "cross"}, "mode: 'grid' or 'zip'"),
])
def test_bad_axes_are_one_line_and_exit_2_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], axes: dict[str, Any],
        extra: dict[str, Any], expect: str) -> None:
    path = _write(tmp_path, {"scenario": BASE_SC, "axes": axes, **extra})
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vmemsim: error: "), err
    assert expect in err, err
    assert not out.exists()  # nothing ran


def test_the_command_runs_a_sweep_and_resumes_into_its_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "small.toml").write_bytes(tomli_w.dumps(BASE_SC).encode())
    path = _write(tmp_path, {"scenario": "small.toml", "axes": {"hypervisor": {
        "idle_tax": [0, 0.5]}}})  # the scenario file is found beside the sweep file
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "-q"]) == 0
    frame = pd.read_parquet(out / "sweep.parquet")
    assert frame["hypervisor.idle_tax"].tolist() == [0, 0, 0, 0.5, 0.5, 0.5]
    assert main(["sweep", str(path), "--out", str(out), "-q"]) == 0  # its own folder: resumed
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet"), frame)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["sweep", str(path), "--out", str(other), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a sweep's" in err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
