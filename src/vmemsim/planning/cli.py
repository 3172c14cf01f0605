"""`vmemsim import rvtools` and `vmemsim plan`: their options and handlers. The main parser
(vmemsim.cli) calls add_subcommands. Every user error is one line on stderr, `vmemsim: error:
<where>: <what>`, and exit status 2 (as vmemsim.cli's; this module does not import it, so
that the two do not import each other)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmemsim import _args
from vmemsim.config.units import UnitError, parse_size

EXIT_USAGE = 2


class PlanningCliError(Exception):
    """Something the user can fix: one line, exit 2."""


def _user_error(msg: str) -> Exception:
    return PlanningCliError(msg)


def _guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every expected failure: its lines on stderr (a scenario's problems: one each), exit 2."""
    from vmemsim.config.loader import ScenarioError

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (PlanningCliError, ScenarioError, UnitError) as exc:
            for line in str(exc).splitlines() or [""]:
                print(f"vmemsim: error: {line}", file=sys.stderr)
            return EXIT_USAGE

    run.__name__ = handler.__name__
    return run


def _load(spec: str, seed: int | None = None) -> Any:  # noqa: ANN401
    from vmemsim.config.loader import load_scenario

    sc = load_scenario(spec)
    return sc if seed is None else sc.with_overrides(seed=seed)


def _non_empty(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError as exc:
        raise _user_error(f"--out {folder}: cannot read: {exc.strerror}") from None


def _limit_arg(text: str) -> float:
    try:
        v = float(text.rstrip("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a slowdown like 1.1, got {text!r}") from None
    if not v > 1.0 or v != v:
        raise argparse.ArgumentTypeError(f"a slowdown above 1.0, got {text!r}")
    return v


def cmd_import_rvtools(args: argparse.Namespace) -> int:
    from vmemsim.metrics.result import atomic_write_text
    from vmemsim.planning.rvtools import RVToolsError, import_rvtools

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise _user_error(f"--out {out}: exists; pass --force to replace it")
    if out is not None and out.is_dir():
        raise _user_error(f"--out {out}: is a folder; name the scenario file to write")
    try:
        imp = import_rvtools(args.file, host=args.host, cluster=args.cluster,
                             host_memory=args.host_memory, rate=args.rate,
                             duration=args.duration)
    except RVToolsError as exc:
        raise _user_error(str(exc)) from None
    for w in imp.warnings:
        print(f"vmemsim: warning: {w}", file=sys.stderr)
    # Only a whole, validated scenario is written (atomically): nothing on any error above.
    if out is None:
        sys.stdout.write(imp.toml)
    else:
        try:
            atomic_write_text(out, imp.toml)
        except OSError as exc:
            raise _user_error(f"--out {out}: cannot write: {exc.strerror}") from None
    sk = imp.skipped
    mem = sum(v.memory_mb for v in imp.vms) / 1024
    print(f"vmemsim: {len(imp.vms)} VMs ({mem:.1f} GiB configured) on a "
          f"{imp.scenario.host.memory / (1 << 30):.1f} GiB host; skipped {sk['powered off']} "
          f"powered off or suspended, {sk['templates']} templates"
          + (f"; wrote {out}" if out else ""), file=sys.stderr)
    return 0


def _axis(text: str) -> Any:  # noqa: ANN401
    """`host.memory=LO..HI` (searched) or `host.memory=A,B,C` (each run), sizes in MiB."""
    key, sep, val = text.partition("=")
    if not sep or key.strip() != "host.memory":
        raise argparse.ArgumentTypeError(
            f"host.memory=LO..HI or host.memory=A,B,...: got {text!r} (plan searches host "
            "memory; other axes: vmemsim sweep)")
    try:
        if ".." in val:
            lo, hi = (parse_size(x.strip()) / (1 << 20) for x in val.split("..", 1))
            if not 0 < lo < hi:
                raise argparse.ArgumentTypeError(f"LO..HI with 0 < LO < HI, got {val!r}")
            return (float(lo), float(hi))
        xs = [parse_size(x.strip()) / (1 << 20) for x in val.split(",") if x.strip()]
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not xs or min(xs) <= 0:
        raise argparse.ArgumentTypeError(f"sizes above zero, got {val!r}")
    return [float(x) for x in xs]


def cmd_plan(args: argparse.Namespace) -> int:
    from rich.console import Console

    from vmemsim.planning.plan import PlanError, plan
    from vmemsim.planning.report import print_tables, write_outputs

    sc = _load(args.scenario, args.seed)
    add = _load(args.add) if args.add else None
    out = Path(args.out) if args.out else Path("results") / f"plan-{sc.name}"
    if out.exists() and not out.is_dir():
        raise _user_error(f"--out {out}: exists and is not a folder")
    if _non_empty(out) and not (out / "plan.json").is_file() and not (out / "points").is_dir():
        raise _user_error(f"--out {out}: folder holds files and is not a plan's; choose another")
    if args.workers is not None and args.workers < 1:
        raise _user_error(f"--workers: at least 1, got {args.workers}")
    quiet = args.quiet

    def progress(msg: str) -> None:
        if not quiet:
            print(f"vmemsim: plan: {msg}", file=sys.stderr)

    try:
        res = plan(sc, limit=args.slowdown, seeds=args.seeds, duration=args.duration,
                   memory=args.axis, step_mb=args.step / (1 << 20), add=add, fit=args.fit,
                   out=out, workers=args.workers, cache=not args.no_cache, progress=progress)
    except PlanError as exc:
        raise _user_error(str(exc)) from None
    write_outputs(res, out)
    console = Console(file=open(os.devnull, "w") if quiet else sys.stdout)  # noqa: SIM115
    print_tables(res, console)
    if quiet:
        for text in res.sentences:
            print(text)
    else:
        print(f"vmemsim: plan: {out}/plan.html, plan.csv, figures", file=sys.stderr)
    return 0


def _import_without_kind(args: argparse.Namespace) -> int:
    raise _user_error("import: name the export's kind: vmemsim import rvtools FILE")


def add_subcommands(sub: Any) -> None:  # noqa: ANN401
    imp = sub.add_parser("import", help="build a scenario from an inventory export")
    isub = imp.add_subparsers(dest="source", parser_class=type(imp))
    r = isub.add_parser("rvtools", help="an RVTools export (.xlsx, or a folder of its CSV tabs)")
    r.add_argument("file", help="RVTools .xlsx workbook, or a folder of its CSV export")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--host", help="the host whose VMs to take (needed if several)")
    where.add_argument("--cluster", help="take a cluster's VMs, its hosts pooled as one")
    r.add_argument("--host-memory", type=_args.size, metavar="SIZE",
                   help="the host's memory, e.g. 256GiB (needed without a vHost tab)")
    r.add_argument("--rate", type=_args.rate, default=200_000.0,
                   help="page touches per CPU-second of each calibrated workload (RVTools "
                        "does not record it; default 200k/s)")
    r.add_argument("--duration", default="3min", help="the scenario's duration (default 3min)")
    r.add_argument("--out", help="scenario file to write (default: standard output)")
    r.add_argument("--force", action="store_true", help="replace --out if it exists")
    r.set_defaults(func=_guard(cmd_import_rvtools))
    imp.set_defaults(func=_guard(_import_without_kind))

    p = sub.add_parser("plan", help="the smallest host, N+1, the most VMs that fit")
    p.add_argument("scenario", help="TOML file or built-in name")
    p.add_argument("--slowdown", type=_limit_arg, default=1.1,
                   help="every VM's slowdown must stay within this (default 1.1)")
    p.add_argument("--axis", type=_axis, metavar="host.memory=LO..HI|A,B,...",
                   help="host sizes: a range to search (default: from admission control's "
                        "minimum to no overcommit) or a list to run")
    p.add_argument("--step", type=_args.size, default=64 << 20, metavar="SIZE",
                   help="stop the search when the answer is known to within this (64MiB)")
    p.add_argument("--add", metavar="OTHER.toml",
                   help="also: the same with another host's VMs added (N+1 failover)")
    p.add_argument("--fit", metavar="VM",
                   help="also: the most copies of this VM that fit on the scenario's host")
    p.add_argument("--seeds", type=_args.whole(1, 1000), default=3, metavar="N",
                   help="seeds per candidate (default 3: a 95%% interval)")
    p.add_argument("--duration", type=_args.duration, default=120.0,
                   help="simulated time per run (default 2min: runs are many)")
    p.add_argument("--seed", type=_args.whole(0, 2**63 - 1),
                   help="the first seed (default the scenario's)")
    p.add_argument("--out", help="result folder (default results/plan-<scenario>); asking "
                                 "again into it runs only what it lacks")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--no-cache", action="store_true",
                   help="compute every baseline (see vmemsim run)")
    p.add_argument("--quiet", "-q", action="store_true", help="only the answers")
    p.set_defaults(func=_guard(cmd_plan))
