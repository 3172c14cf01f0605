"""The `vmemsim` command: run, validate, top, compare, scenarios, trace, import, plan.

Every user error (bad scenario, bad option, missing file, a VM that cannot power on) is one
line on stderr, `vmemsim: error: <where>: <what>`, and exit status 2: never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from vmemsim import _args
from vmemsim.config.loader import (
    ScenarioError,
    builtin_names,
    check_events,
    load_scenario,
    scenario_notes,
)
from vmemsim.config.schema import Scenario
from vmemsim.config.units import UnitError

EXIT_USAGE = 2


class UserError(Exception):
    """Something the user can fix; printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        raise UserError(f"{self.prog}: {message}")


def _ticks(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of ticks, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of ticks >= 1, got {text}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"seed must be between 0 and 2**63-1, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, got {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"between 1 and 1000, got {text}")
    return value


def _speed(text: str) -> float | None:
    if text in ("max", "fast", "0"):
        return None
    try:
        value = float(text.rstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a number or 'max', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"speed must be positive, got {text!r}")
    return value


def _load(spec: str | None, duration: float | None = None, seed: int | None = None) -> Scenario:
    sc = load_scenario(spec)
    if duration is not None or seed is not None:
        sc = sc.with_overrides(duration=duration, seed=seed)
        check_events(sc, str(spec))  # an event after a shorter --duration's end, say
    return sc


def _engine_errors() -> tuple[type[BaseException], ...]:
    from vmemsim.build import AdmissionError

    return (AdmissionError,)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vmemsim.report.terminal import print_summary

    sc = _load(args.scenario, args.duration, args.seed)
    if not args.no_report:
        import importlib.util

        # The report's modules are imported after the run (they take ~0.9 s to load): find
        # a missing plotting library now, not after the whole simulation.
        if importlib.util.find_spec("matplotlib") is None:
            raise UserError("the report needs matplotlib, which is not installed "
                            "(install it, or pass --no-report)")
    out, fresh = _out_folder(sc, args.out, args.force, args.scenario)
    for note in scenario_notes(sc):
        print(f"vmemsim: {note}", file=sys.stderr)
    try:
        if args.seeds > 1:
            result, sim = _run_seeds_into(args, sc, out if fresh is None else fresh)
        else:
            result, sim = _run_into(args, sc, out if fresh is None else fresh)
    except BaseException:
        if fresh is not None:  # the run failed: its files go, the old folder stays as it was
            shutil.rmtree(fresh, ignore_errors=True)
        raise
    if fresh is not None:
        # Also after Ctrl-C: the run still wrote its results (marked incomplete), and they
        # replace the old ones as asked, whole.
        try:
            _swap_in(fresh, out)
        except OSError as exc:
            raise UserError(f"--out {out}: cannot replace it: {exc.strerror}; the new "
                            f"results are in {fresh}") from None
    result.files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    print_summary(result, Console(stderr=False, quiet=args.quiet), out_dir=out)
    if not result.summary["complete"]:
        print(f"vmemsim: interrupted at {sim.time_s:.1f} s; partial results in {out} "
              "(marked incomplete)", file=sys.stderr)
        return 130
    return 0


def _run_seeds_into(args: argparse.Namespace, sc: Scenario, out: Path) -> tuple[Any, Any]:
    """`--seeds N`: the scenario with N seeds on worker processes (vmemsim.replicates); the
    first seed's results written as a run's, its summary with each VM's intervals."""
    from types import SimpleNamespace

    from vmemsim.metrics.esxtop import write_esxtop_csv
    from vmemsim.metrics.result import atomic_write_text
    from vmemsim.replicates import run_seeds

    if not args.quiet:
        print(f"vmemsim: {args.seeds} runs, seeds {sc.seed} to {sc.seed + args.seeds - 1}",
              file=sys.stderr)
    try:
        result = run_seeds(sc, args.seeds, cache=not args.no_cache)
    except KeyboardInterrupt:
        raise
    atomic_write_text(out / "scenario.json", sc.model_dump_json(indent=2) + "\n")
    result.save(out)
    if not args.no_esxtop:
        write_esxtop_csv(result, out / "esxtop.csv")
    if not args.no_report:
        from vmemsim.report.html import write_report
        from vmemsim.report.plots import write_plots

        write_report(result, out, write_plots(result, out))
    return result, SimpleNamespace(time_s=result.summary["simulated_s"])


def _non_empty(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError as exc:
        raise UserError(f"--out {folder}: cannot read: {exc.strerror}") from None


def _out_folder(sc: Scenario, arg: str | None, force: bool,
                spec: str | None = None) -> tuple[Path, Path | None]:
    """The result folder, created if need be, and (--force over a non-empty folder) a new
    empty folder beside it to write into instead, swapped in at the end (_swap_in).

    A run never writes into a folder that holds files: the files of two runs would mix (a
    run without the report, or with fewer VMs, would leave the old figures or rows looking
    like its own). --force replaces the folder whole, and at the end rather than at the
    start: a run that fails, or is killed, then leaves the old results as they were (one
    killed outright leaves its partial results in the hidden new folder beside them), where
    clearing the folder first would lose them to a run that never finishes."""
    if arg is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = base = Path("results") / f"{sc.name}-{stamp}"
        n = 2
        while _non_empty(out):  # another run of it started within the same second
            out = base.with_name(f"{base.name}-{n}")
            n += 1
    else:
        out = Path(arg)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    fresh = None
    if _non_empty(out):
        if not force:
            raise UserError(f"--out {out}: folder exists and is not empty; pass --force to "
                            "replace it (its files are removed)")
        target = out.resolve()  # a link to a folder: the folder it points to is replaced
        lost = _inputs_inside(target, sc, spec)
        if lost is not None:
            raise UserError(f"--out {out}: --force would remove {lost}, which is in it; "
                            "choose another folder")
        fresh = target.parent / f".{target.name}.new-{secrets.token_hex(4)}"
    try:
        (out if fresh is None else fresh).mkdir(parents=True, exist_ok=fresh is None)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create: {exc.strerror}") from None
    return out, fresh


def _inputs_inside(folder: Path, sc: Scenario, spec: str | None) -> str | None:
    """What the run needs or the user is in that removing `folder` would take with it (a
    slip such as `--out . --force`): the current folder, the scenario file, a trace file."""
    def inside(p: Path) -> bool:
        p = p.resolve()
        return p == folder or folder in p.parents

    if inside(Path.cwd()):
        return "the current folder"
    files = [Path(spec)] if spec is not None and Path(spec).is_file() else []
    files += [Path(p.trace) for v in sc.vm for p in v.process if p.trace is not None]
    return next((str(f) for f in files if inside(f)), None)


def _swap_in(fresh: Path, out: Path) -> None:
    """Put the folder `fresh` where `out` is and remove the old one. Two renames: in between
    `out` is briefly absent (the old folder is beside it), never half old and half new."""
    target = out.resolve()
    old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.rename(target, old)
    try:
        os.rename(fresh, target)
    except BaseException:
        os.rename(old, target)  # the old results back, as they were
        raise
    shutil.rmtree(old, ignore_errors=True)


def _run_into(args: argparse.Namespace, sc: Scenario, out: Path) -> tuple[Any, Any]:
    """Run the scenario and write its results into the folder `out`: (result, simulation)."""
    from vmemsim.baseline import Baseline
    from vmemsim.engine import Simulation
    from vmemsim.metrics.esxtop import write_esxtop_csv
    from vmemsim.metrics.result import atomic_write_text

    show = not args.quiet and sys.stderr.isatty()
    # The baseline's workers are forks: started before the Simulation's arrays exist and
    # before the progress bar's thread does (see baseline.Baseline).
    baseline = Baseline(sc, False if args.serial else None, cache=not args.no_cache)
    figures = None
    try:
        try:
            sim = Simulation(sc, check=args.check_every or args.check)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        baseline.watch(sim)
        result = _run_with_progress(sim, show, "run", checkpoint=(out, args.checkpoint))
        if not args.no_report and not args.serial:
            # Imported only now: matplotlib and the templates take ~0.6 s to load. The figures
            # that need no baseline are drawn in a second process while it finishes here.
            from vmemsim.report.plots import FigureJob, figures_without_baseline

            figures = FigureJob(result, out, figures_without_baseline())
        if sc.baseline and sim.time_s > 0:
            result = sim.result(base=baseline.result(sim.time_s, run=sim, ran=result,
                                                     stopped_early=sim.interrupted))
        atomic_write_text(out / "scenario.json", sc.model_dump_json(indent=2) + "\n")
        result.save(out)
        if not args.no_esxtop:
            write_esxtop_csv(result, out / "esxtop.csv")
        if not args.no_report:
            from vmemsim.report.html import write_report
            from vmemsim.report.plots import write_plots

            write_report(result, out, write_plots(result, out, drawn=figures))
    finally:
        baseline.cancel()
        if figures is not None:
            figures.cancel()
    return result, sim


def _run_with_progress(sim: Any, show: bool, label: str,
                       checkpoint: tuple[Path, float] | None = None) -> Any:
    """Run to the end; a progress bar on a terminal. Every `checkpoint` wall seconds the
    results so far are saved (marked incomplete), so a crash or a kill loses little."""
    last = [time.perf_counter()]

    def save_partial(s: Any) -> None:
        if checkpoint is None or checkpoint[1] <= 0:
            return
        if time.perf_counter() - last[0] >= checkpoint[1]:
            s.result().save(checkpoint[0], parquet=False)
            last[0] = time.perf_counter()

    if not show:
        return sim.run(progress=save_partial)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cols = (TextColumn(f"[bold]{label}"), BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} simulated s"),
            TextColumn("{task.fields[speed]}"), TimeRemainingColumn())
    with Progress(*cols, transient=True, refresh_per_second=4) as bar:
        task = bar.add_task(label, total=sim.scenario.duration, speed="")
        t0 = time.perf_counter()

        def tick(s: Any) -> None:
            save_partial(s)
            wall = time.perf_counter() - t0
            speed = f"{s.time_s / wall:,.0f}x real time" if wall > 0 else ""
            bar.update(task, completed=s.time_s, speed=speed)

        return sim.run(progress=tick)


def cmd_validate(args: argparse.Namespace) -> int:
    from vmemsim.engine import Simulation

    sc = load_scenario(args.scenario)
    try:
        Simulation(sc)  # sizes, admission control: everything short of running it
    except ValueError as exc:
        raise UserError(str(exc)) from None
    mem = sum(v.memory for v in sc.vm) / (1 << 30)
    print(f"{args.scenario}: ok: scenario {sc.name!r}, {len(sc.vm)} VMs, {mem:.1f} GiB "
          f"configured on a {sc.host.memory / (1 << 30):.1f} GiB host, {sc.duration:g} s")
    for note in scenario_notes(sc):  # allowed, but worth knowing (a VM larger than the host)
        print(f"{args.scenario}: {note}")
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vmemsim.engine import Simulation
    from vmemsim.report.top import run_top

    sc = _load(args.scenario, args.duration, args.seed)
    try:
        sim = Simulation(sc)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return run_top(sim, speed=args.speed, console=Console(), title=sc.name)


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vmemsim.baseline import simulate
    from vmemsim.metrics.result import Result
    from vmemsim.report.compare import compare, print_compare, unique_names, write_compare

    results = []
    for spec in args.runs:
        p = Path(spec)
        if p.is_dir():
            if not (p / "summary.json").exists():
                raise UserError(f"{spec}: not a vmemsim result folder (no summary.json)")
            try:
                results.append(Result.load(p))
            except (ValueError, OSError, json.JSONDecodeError) as exc:
                raise UserError(f"{spec}: cannot read results: {exc}") from None
        else:
            results.append(simulate(_load(spec, args.duration, args.seed),
                                    cache=not args.no_cache))
    names = unique_names(results)
    out = Path(args.out) if args.out else None
    if out is not None:
        write_compare(results, out, names=names)
    print_compare(compare(results, names), Console())
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from vmemsim.runner import JobError, WorkerLost
    from vmemsim.sweeps import SweepError, default_out, load_plan, run_sweep

    try:
        plan = load_plan(args.sweep)  # every point validated before anything runs
    except SweepError as exc:
        raise UserError(str(exc)) from None
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: at least 1, got {args.workers}")
    out = Path(args.out) if args.out else default_out(args.sweep)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if _non_empty(out) and not (out / "sweep.json").is_file():
        # A sweep's folder is written into again (that is how it resumes); any other folder
        # with files is not, so that its files and the sweep's never mix.
        raise UserError(f"--out {out}: folder holds files and is not a sweep's; choose another")
    try:
        frame = run_sweep(plan, out, workers=args.workers, scheduler=args.scheduler,
                          cache=not args.no_cache,
                          progress=not args.quiet and sys.stderr.isatty())
    except SweepError as exc:
        raise UserError(str(exc)) from None
    except JobError as exc:
        # The points that finished are kept: running the sweep again resumes after them.
        point = plan.points[exc.index] if exc.index < len(plan.points) else None
        where = f"point {point.index} ({point.label()})" if point else f"job {exc.index}"
        what = str(exc.cause).splitlines()[0] if str(exc.cause) else type(exc.cause).__name__
        raise UserError(f"{args.sweep}: {where}: {what}") from None
    except WorkerLost as exc:
        raise UserError(f"{args.sweep}: {exc}; the points done are kept in {out}") from None
    except KeyboardInterrupt:
        print(f"vmemsim: interrupted; the points done are kept in {out}: run the same sweep "
              "again to resume", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"{len(plan.points)} points, {frame['vm'].nunique()} VMs: {out}/sweep.parquet, "
              f"{out}/sweep.html")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    for name in builtin_names():
        sc = load_scenario(name)
        print(f"{name:24s} {sc.description.splitlines()[0][:80] if sc.description else ''}")
    from vmemsim.workloads.presets import describe

    print("\nWorkload presets (workload = NAME in [[vm.process]]; docs/scenarios.md):")
    for name, line in describe():
        print(f"  {name:12s} {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vmemsim", description="Simulate hypervisor memory management (ESX).")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    r = sub.add_parser("run", help="run a scenario and write its results")
    r.add_argument("scenario", nargs="?", help="TOML file or built-in name (default: default)")
    r.add_argument("--duration", type=_args.duration, help="override simulated time, e.g. 5min")
    r.add_argument("--seed", type=_seed, help="override the scenario's seed")
    r.add_argument("--seeds", type=_count, default=1, metavar="N",
                   help="run N seeds (the scenario's, then the next ones) on worker processes: "
                        "each VM's slowdown and throughput with a 95%% interval; the files "
                        "are the first seed's")
    r.add_argument("--out", help="result folder (default results/<scenario>-<timestamp>/); "
                                 "one that holds files is refused without --force")
    r.add_argument("--force", action="store_true",
                   help="replace a result folder that holds files, whole: its files are "
                        "removed once the new results are all written")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    r.add_argument("--no-report", action="store_true", help="skip plots and report.html")
    r.add_argument("--no-esxtop", action="store_true", help="skip esxtop.csv")
    r.add_argument("--serial", action="store_true",
                   help="run the baseline after the scenario instead of beside it, and draw "
                        "the figures in the same process (one core)")
    r.add_argument("--no-cache", action="store_true",
                   help="compute every VM's baseline, neither reading nor writing the cache of "
                        "baselines kept by earlier runs")
    r.add_argument("--checkpoint", type=float, default=30.0, metavar="SECONDS",
                   help="save partial results every SECONDS of wall time (0: never)")
    r.add_argument("--check", action="store_true",
                   help="check page conservation every tick (slow: 0.2-0.5 s a check on an "
                        "8 GiB host; for debugging)")
    r.add_argument("--check-every", type=_ticks, metavar="TICKS",
                   help="check page conservation every TICKS ticks, and after the last")
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a scenario file without running it")
    v.add_argument("scenario")
    v.set_defaults(func=cmd_validate)

    t = sub.add_parser("top", help="watch a run live, like esxtop's memory screen")
    t.add_argument("scenario", nargs="?")
    t.add_argument("--speed", type=_speed, default=1.0,
                   help="simulated seconds per wall second (default 1 = real time; 'max')")
    t.add_argument("--duration", type=_args.duration)
    t.add_argument("--seed", type=_seed)
    t.set_defaults(func=cmd_top)

    c = sub.add_parser("compare", help="compare result folders or scenarios")
    c.add_argument("runs", nargs="+", help="result folders or scenarios")
    c.add_argument("--out", help="write compare.csv and compare.png here")
    c.add_argument("--duration", type=_args.duration)
    c.add_argument("--seed", type=_seed)
    c.add_argument("--no-cache", action="store_true",
                   help="compute every baseline of the scenarios run (see vmemsim run)")
    c.set_defaults(func=cmd_compare)

    w = sub.add_parser("sweep", help="run a scenario over axes of values (a sweep file)")
    w.add_argument("sweep", help="sweep TOML file (base scenario, axes, seeds)")
    w.add_argument("--out", help="result folder (default results/sweep-<file name>); a sweep "
                                 "run again into the same folder runs only the points missing")
    w.add_argument("--workers", type=int, help="local worker processes (default: one per core)")
    w.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on this Dask scheduler, e.g. tcp://host:8786 (default: "
                        "$DASK_SCHEDULER_ADDRESS, else local processes)")
    w.add_argument("--no-cache", action="store_true",
                   help="compute every baseline (see vmemsim run)")
    w.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    w.set_defaults(func=cmd_sweep)

    s = sub.add_parser("scenarios", help="list the built-in scenarios and workload presets")
    s.set_defaults(func=cmd_scenarios)

    try:
        from vmemsim.traces.cli import add_trace_subcommands
    except ImportError:  # pragma: no cover - the trace tools ship with the package
        pass
    else:
        add_trace_subcommands(sub)
    from vmemsim.planning.cli import add_subcommands as add_planning_subcommands

    add_planning_subcommands(sub)  # import rvtools, plan
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        if args.command == "run" and args.scenario is None:
            args.scenario = "default"
        return int(args.func(args) or 0)
    except (UserError, ScenarioError, UnitError) as exc:
        for line in str(exc).splitlines() or [""]:  # a scenario's problems: one line each
            print(f"vmemsim: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except _engine_errors() as exc:
        print(f"vmemsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vmemsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def entry() -> NoReturn:
    """The `vmemsim` command. Its imports (numba, pandas) make about 150,000 objects that live
    until the end, and the garbage collector would go over them again and again while they are
    made: it runs every 100,000 allocations instead of 700 (0.10-0.15 s off the start), and
    before the interpreter exits, the objects that exist are frozen (gc.freeze), since its last
    collection would go over all of them only to free what the exit frees anyway (0.4 s of a
    10 s default run). main() leaves the collector alone: tests and scripts call it in
    long-lived processes."""
    gc.set_threshold(100_000, 50, 100)
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
