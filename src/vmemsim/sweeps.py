"""Sweeps: one base scenario, axes of values for any of its keys, every point run by the runner.

A sweep file (TOML):

    scenario = "default"          # a built-in, a scenario file (beside the sweep file), or
                                  # a [scenario] table holding the scenario itself
    mode = "grid"                 # every combination (default), or "zip": the i-th values
    seeds = 3                     # the scenario's seed and the next 2; or a list of seeds
    duration = "2min"             # optional: overrides the scenario's
    [axes]
    host.memory = ["8GiB", "12GiB", "16GiB"]
    hypervisor.idle_tax = [0, 0.75]
    vm.batch.memory = ["2GiB", "4GiB"]         # `batch`: a VM's name (or its index)
    vm.batch.process.benchmark.rate = ["100k/s", "200k/s"]

Every point is validated before anything runs. Each point's result is kept as it finishes
(points/<key>/: host.parquet, vms.parquet, summary.json; the key hashes the point's scenario),
so a sweep run again into the same folder runs only the points it lacks. Then sweep.parquet
(one row per point and VM), a figure per metric against the first axis, and sweep.html.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import secrets
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmemsim.config.loader import ScenarioError, load_scenario, scenario_from_dict
from vmemsim.config.paths import PathError, set_path
from vmemsim.config.schema import Scenario

MODES = ("grid", "zip")
SWEEP_KEYS = {"scenario", "mode", "seeds", "duration", "axes", "description"}
STATES = ("high", "clear", "soft", "hard", "low")
METRICS = ["throughput", "slowdown", "max_balloon_mb", "max_swapped_mb", "max_compressed_mb",
           "min_free_mb", *[f"time_{s}_s" for s in STATES]]
HOST_METRICS = {"min_free_mb", *[f"time_{s}_s" for s in STATES]}  # one value per point
LISTS_BY_NAME = ("vm", "process", "phases")  # scenario lists whose items a path names


class SweepError(ValueError):
    """A sweep that cannot run: one line, `where: what`."""


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]  # axis path -> value
    seed: int
    scenario: Scenario

    @property
    def key(self) -> str:
        """Names the point's files: the scenario it runs, whatever the sweep file says."""
        text = self.scenario.model_dump_json()
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def label(self) -> str:
        parts = [f"{k} = {json.dumps(v)}" for k, v in self.values.items()]
        return ", ".join([*parts, f"seed = {self.seed}"])


@dataclass
class Plan:
    source: str
    name: str
    axes: dict[str, list[Any]]
    seeds: list[int]
    mode: str
    points: list[Point]


def _flatten(table: dict[str, Any], source: str, prefix: str = "") -> dict[str, list[Any]]:
    """axes.host.memory = [...] (nested tables) or "host.memory" = [...] (quoted): both give
    the dotted path host.memory."""
    out: dict[str, list[Any]] = {}
    for k, v in table.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, source, path + "."))
        elif isinstance(v, list):
            if not v:
                raise SweepError(f"{source}: axes.{path}: an axis needs at least one value")
            out[path] = v
        else:
            raise SweepError(f"{source}: axes.{path}: an axis is a list of values, got "
                             f"{json.dumps(v)}")
    return out


def _base(doc: dict[str, Any], folder: Path, source: str) -> tuple[dict[str, Any], str]:
    spec = doc.get("scenario", "default")
    try:
        if isinstance(spec, dict):
            sc = scenario_from_dict(spec, f"{source}: scenario")
        elif isinstance(spec, str):
            beside = folder / spec
            sc = load_scenario(beside if beside.is_file() else spec)
        else:
            raise SweepError(f"{source}: scenario: a built-in name, a file, or a table")
    except ScenarioError as exc:
        raise SweepError(exc.problems[0]) from None
    # Every field written out, so that a path to any key (set or default) exists in it.
    return sc.model_dump(mode="json"), sc.name


def _seeds(doc: dict[str, Any], base_seed: int, source: str) -> list[int]:
    seeds = doc.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int | list):
        raise SweepError(f"{source}: seeds: a count or a list of seeds, got {json.dumps(seeds)}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise SweepError(f"{source}: seeds: at least 1, got {seeds}")
        return [base_seed + i for i in range(seeds)]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63
                            for s in seeds):
        raise SweepError(f"{source}: seeds: a list of whole numbers >= 0, got "
                         f"{json.dumps(seeds)}")
    return list(seeds)


def _admit(sc: Scenario, where: str) -> None:
    """What the engine refuses short of running (a guest whose processes do not fit, a VM
    that cannot power on): found here, not in a worker after other points have run. Building
    the arrays costs ~15 ms for the default scenario."""
    from vmemsim.engine import Simulation

    try:
        Simulation(sc)
    except ValueError as exc:
        raise SweepError(f"{where}: {str(exc).splitlines()[0]}") from None


def load_plan(path: str | Path | dict[str, Any], source: str | None = None, *,
              admit: bool = True) -> Plan:
    """Read a sweep (a file, or its contents as a dict) and validate every point (with the
    engine's own checks too, unless admit=False)."""
    if isinstance(path, dict):
        doc, folder, source = path, Path.cwd(), source or "sweep"
    else:
        p = Path(path)
        source = source or str(p)
        try:
            doc = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SweepError(f"{source}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SweepError(f"{source}: cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SweepError(f"{source}: invalid TOML: {exc}") from None
        folder = p.parent
    unknown = [k for k in doc if k not in SWEEP_KEYS]
    if unknown:
        raise SweepError(f"{source}: unknown key {unknown[0]!r} (a sweep has "
                         f"{', '.join(sorted(SWEEP_KEYS))})")
    mode = doc.get("mode", "grid")
    if mode not in MODES:
        raise SweepError(f"{source}: mode: 'grid' or 'zip', got {json.dumps(mode)}")
    axes_doc = doc.get("axes", {})
    if not isinstance(axes_doc, dict):
        raise SweepError(f"{source}: axes: a table of dotted keys and lists of values")
    axes = _flatten(axes_doc, source)
    base, name = _base(doc, folder, source)
    if "duration" in doc:
        base["duration"] = doc["duration"]
    seeds = _seeds(doc, int(base["seed"]), source)
    if mode == "zip" and len({len(v) for v in axes.values()}) > 1:
        sizes = ", ".join(f"{k} has {len(v)}" for k, v in axes.items())
        raise SweepError(f"{source}: mode = \"zip\" needs axes of one length: {sizes}")
    names = list(axes)
    combos = (list(zip(*axes.values(), strict=True)) if mode == "zip"
              else list(itertools.product(*axes.values())))
    points = []
    for combo in combos:
        values = dict(zip(names, combo, strict=True))
        for seed in seeds:
            index = len(points)
            data = copy.deepcopy(base)
            for axis, value in values.items():
                try:
                    set_path(data, axis, value)
                except PathError as exc:
                    raise SweepError(f"{source}: axes.{axis}: {exc}") from None
            data["seed"] = seed
            where = f"{source}: point {index} ({', '.join(f'{k} = {json.dumps(v)}' for k, v in values.items()) or 'base'})"  # noqa: E501
            try:
                sc = scenario_from_dict(data, where)
            except ScenarioError as exc:
                raise SweepError(exc.problems[0]) from None
            if admit:
                _admit(sc, where)
            points.append(Point(index, values, seed, sc))
    return Plan(source, name, axes, seeds, mode, points)


def default_out(spec: str | Path | dict[str, Any]) -> Path:
    """results/sweep-<file name>: the same folder for the same file, so that running it again
    resumes it."""
    stem = "inline" if isinstance(spec, dict) else Path(spec).stem
    return Path("results") / f"sweep-{stem}"


# --- keeping each point's result -------------------------------------------------------------

def _point_dir(out: Path, point: Point) -> Path:
    return out / "points" / point.key


def save_point(out: Path, point: Point, result: Any) -> None:  # noqa: ANN401
    """The point's result, whole or not at all: written beside, then renamed into place."""
    final = _point_dir(out, point)
    tmp = final.parent / f".{point.key}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        result.host.to_parquet(tmp / "host.parquet", index=False)
        result.vms.to_parquet(tmp / "vms.parquet", index=False)
        meta = {"point": point.index, "values": point.values, "seed": point.seed}
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=1) + "\n")
        (tmp / "point.json").write_text(json.dumps(meta) + "\n")
        (tmp / "scenario.json").write_text(point.scenario.model_dump_json(indent=1) + "\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_point(out: Path, point: Point) -> Any | None:  # noqa: ANN401
    """The point's kept Result, or None if it has not run."""
    import pandas as pd

    from vmemsim.metrics.result import Result

    folder = _point_dir(out, point)
    if not (folder / "point.json").is_file():
        return None
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return Result(host=pd.read_parquet(folder / "host.parquet"),
                  vms=pd.read_parquet(folder / "vms.parquet"), summary=summary)


def rows(point: Point, result: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    """sweep.parquet's rows for one point: one per VM."""
    host = result.summary["host"]
    free = result.host["free_mb"]
    common: dict[str, Any] = {"point": point.index, **point.values, "seed": point.seed}
    common["min_free_mb"] = float(free.min()) if len(free) else float("nan")
    for s in STATES:
        common[f"time_{s}_s"] = float(host["time_in_state_s"].get(s, 0.0))
    out = []
    for v in result.summary["vms"]:
        out.append({**common, "vm": v["name"], "throughput": v["throughput"],
                    "slowdown": v["slowdown"], "max_balloon_mb": v["max_balloon_mb"],
                    "max_swapped_mb": v["max_swapped_mb"],
                    "max_compressed_mb": v["max_compressed_mb"]})
    return out


def _frame(plan: Plan, results: dict[int, Any]) -> Any:  # noqa: ANN401
    import pandas as pd

    table = [r for p in plan.points if p.index in results for r in rows(p, results[p.index])]
    cols = ["point", *plan.axes, "seed", "vm", *[m for m in METRICS if m not in HOST_METRICS],
            *[m for m in METRICS if m in HOST_METRICS]]
    frame = pd.DataFrame(table, columns=cols)
    for axis in plan.axes:  # a column of mixed numbers and text cannot go to Parquet
        if frame[axis].map(type).nunique() > 1:
            frame[axis] = frame[axis].map(str)
    return frame


def run_sweep(plan: Plan, out: Path, *, workers: int | None = None,
              scheduler: Any = None, cache: bool = True,  # noqa: ANN401
              progress: bool = False, runner: Any = None,  # noqa: ANN401
              on_point: Callable[[Point, Any], None] | None = None) -> Any:  # noqa: ANN401
    """Run the points not yet kept in `out`, keep each as it finishes, write the outputs;
    return the sweep's DataFrame. `on_point(point, result)` is called after each is kept."""
    from vmemsim.runner import Runner, scheduler_address

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"{out}: cannot create: {exc.strerror}") from None
    (out / "sweep.json").write_text(json.dumps(
        {"source": plan.source, "mode": plan.mode, "axes": plan.axes, "seeds": plan.seeds,
         "points": [{"point": p.index, "key": p.key, "values": p.values, "seed": p.seed}
                    for p in plan.points]}, indent=1) + "\n")
    results: dict[int, Any] = {}
    todo = []
    for p in plan.points:
        r = load_point(out, p)
        if r is None:
            todo.append(p)
        else:
            results[p.index] = r
    if todo:
        own = runner is None
        if runner is None:
            try:
                runner = Runner(workers=workers, scheduler=scheduler)
            except OSError as exc:  # a Dask scheduler that does not answer
                raise SweepError(f"scheduler {scheduler_address(scheduler) or scheduler}: "
                                 f"cannot reach it: {exc}") from None
        try:
            _run_points(runner, todo, out, results, cache, progress, on_point, len(plan.points))
        finally:
            if own:
                runner.close()
    frame = _frame(plan, results)
    from vmemsim.metrics.result import atomic_write

    atomic_write(out / "sweep.parquet", lambda p: frame.to_parquet(p, index=False))
    from vmemsim.report.sweep import write_sweep_report

    write_sweep_report(plan, frame, out, METRICS, HOST_METRICS)
    return frame


def _run_points(runner: Any, todo: list[Point], out: Path, results: dict[int, Any],  # noqa: ANN401
                cache: bool, progress: bool,
                on_point: Callable[[Point, Any], None] | None, total: int) -> None:
    from contextlib import nullcontext

    from vmemsim.jobs import SimJob, run_simulation

    jobs = [SimJob.of(p.scenario, cache=cache) for p in todo]
    bar_cm: Any = nullcontext()
    if progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar_cm = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                          TextColumn(runner.where), TimeRemainingColumn(), transient=True)
    with bar_cm as bar:
        task = bar.add_task("sweep", total=total, completed=total - len(todo)) if bar else None
        for i, result in runner.map(run_simulation, jobs):
            p = todo[i]
            save_point(out, p, result)
            results[p.index] = result
            if bar is not None:
                bar.advance(task)
            if on_point is not None:
                on_point(p, result)
