"""``vmemsim trace stats|convert|simulate`` subcommands.

The main ``vmemsim`` parser calls :func:`add_trace_subcommands`; each subcommand sets
``func`` to a handler ``(args) -> exit code``. Bad input (missing file, unknown or
undetectable format, malformed trace, bad numbers) prints exactly one line
``vmemsim: error: <file>: <what and where>`` to stderr and returns 2 - never a traceback.
Also runnable on its own: ``python -m vmemsim.traces.cli trace stats FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from vmemsim.guest.policies.registry import NAMES

from .detect import detect_format, format_from_name
from .errors import TraceFormatError
from .pagemap import PageMap
from .readers import DEFAULT_PAGE_SIZE, FORMATS, TraceReader, normalize_format, open_trace
from .stats import trace_stats
from .writers import open_writer

POLICIES = NAMES


class CliError(Exception):
    """A user-facing error: ``name: message``."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")


def _err(line: str) -> None:
    print(f"vmemsim: error: {' '.join(line.splitlines())}", file=sys.stderr)


def _guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn every expected failure into one stderr line and exit code 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (CliError, TraceFormatError) as e:
            _err(str(e))
        except OSError as e:
            name = e.filename if e.filename is not None else getattr(args, "file", "?")
            _err(f"{name}: {e.strerror or e}")
        except KeyboardInterrupt:
            _err("interrupted")
            return 130
        return 2

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# --- argument helpers ------------------------------------------------------------------------

_SIZE_RE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'4096', '4k', '4KiB', '2M', '1G' -> bytes."""
    m = _SIZE_RE.fullmatch(str(text).strip())
    if not m:
        raise ValueError(f"not a size: {text!r}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def _col(text: str | None) -> str | int | None:
    return int(text) if text is not None and text.isdigit() else text


def _add_input_args(p: argparse.ArgumentParser, file_help: str) -> None:
    p.add_argument("file", metavar="FILE", help=file_help)
    _add_reader_args(p, "--format", "-f")


def _add_reader_args(p: argparse.ArgumentParser, *fmt_flags: str) -> None:
    p.add_argument(
        *fmt_flags,
        dest="format",
        metavar="F",
        help=f"input format: {', '.join(FORMATS)} (default: detect from name and content)",
    )
    p.add_argument(
        "--page-size",
        default=str(DEFAULT_PAGE_SIZE),
        metavar="N",
        help="page size in bytes, a power of two; suffixes k/M/G allowed (default 4096)",
    )
    p.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="skip malformed lines (counted and reported) instead of failing",
    )
    p.add_argument(
        "--no-instructions",
        dest="include_instructions",
        action="store_false",
        help="drop instruction fetches (lackey 'I', din label 2)",
    )
    p.add_argument(
        "--ids-are-addresses",
        action="store_true",
        help="txt/csv/oracleGeneral: ids are byte addresses (page = id >> log2(page size))",
    )
    p.add_argument("--obj-col", metavar="COL", help="csv: object id column (name or 0-based index)")
    p.add_argument("--time-col", metavar="COL", help="csv: time column (name or index)")
    p.add_argument("--op-col", metavar="COL", help="csv: op column (name or index)")
    p.add_argument("--chunk", type=int, default=1 << 20, help=argparse.SUPPRESS)


def _open_reader(args: argparse.Namespace, path: str) -> TraceReader:
    if not os.path.exists(path):
        raise CliError(path, "no such file")
    if os.path.isdir(path):
        raise CliError(path, "is a directory, not a trace file")
    try:
        page_size = parse_size(args.page_size)
        if page_size <= 0 or page_size & (page_size - 1):
            raise ValueError
    except ValueError:
        raise CliError(
            path, f"--page-size must be a power of two, got {args.page_size!r}"
        ) from None
    if args.chunk < 1:
        raise CliError(path, f"--chunk must be positive, got {args.chunk}")
    try:
        fmt = normalize_format(args.format) if args.format else detect_format(path)
    except ValueError as e:
        raise CliError(path, str(e)) from None
    return open_trace(
        path,
        fmt,
        chunk=args.chunk,
        page_size=page_size,
        skip_bad_lines=args.skip_bad_lines,
        include_instructions=args.include_instructions,
        ids_are_addresses=args.ids_are_addresses,
        obj_col=_col(args.obj_col),
        time_col=_col(args.time_col),
        op_col=_col(args.op_col),
    )


def _report_skipped(args: argparse.Namespace, reader: TraceReader) -> None:
    """With --skip-bad-lines: one stderr line saying how many lines were dropped."""
    if not args.skip_bad_lines:
        return
    unit = "records" if reader.binary else "lines"
    msg = f"vmemsim: {reader.name}: skipped {reader.skipped} malformed {unit}"
    if reader.skipped_examples:
        where, why = reader.skipped_examples[0]
        kind = "offset" if reader.binary else "line"
        msg += f" (first at {kind} {where}: {why})"
    print(msg, file=sys.stderr)


# --- handlers --------------------------------------------------------------------------------


@_guard
def cmd_stats(args: argparse.Namespace) -> int:
    """vmemsim trace stats FILE"""
    reader = _open_reader(args, args.file)
    t0 = time.perf_counter()
    st = trace_stats(reader)
    wall = time.perf_counter() - t0
    _report_skipped(args, reader)
    d = {"file": args.file, "format": reader.format, **st.to_dict()}
    d["skipped_lines"] = reader.skipped
    d["wall_s"] = wall
    if args.json:
        print(json.dumps(d))
        return 0
    w = 16
    print(f"{'file':<{w}}{args.file}")
    print(f"{'format':<{w}}{reader.format}")
    print(f"{'page size':<{w}}{st.page_size}")
    print(f"{'references':<{w}}{st.references:,}")
    print(f"{'distinct pages':<{w}}{st.distinct_pages:,}")
    print(f"{'reads':<{w}}{st.reads:,}")
    print(f"{'writes':<{w}}{st.writes:,}")
    print(f"{'write fraction':<{w}}{st.write_fraction:.4f}")
    print(f"{'cold misses':<{w}}{st.cold_misses:,}")
    if args.skip_bad_lines:
        print(f"{'skipped lines':<{w}}{reader.skipped:,}")
    print(f"{'time':<{w}}{wall:.3f} s ({st.references / max(wall, 1e-9):,.0f} refs/s)")
    if st.reuse_histogram:
        print("reuse (LRU stack) distance histogram:")
        for lo, hi, c in st.reuse_histogram:
            rng = f"{lo}" if lo == hi else f"{lo}-{hi}"
            print(f"  {rng:>24}  {c:>14,}")
    if st.mrc:
        print("LRU miss-ratio curve:")
        print(f"  {'frames':>12}  {'miss ratio':>10}")
        for frames, r in st.mrc:
            print(f"  {frames:>12,}  {r:>10.6f}")
    return 0


@_guard
def cmd_convert(args: argparse.Namespace) -> int:
    """vmemsim trace convert IN OUT"""
    out = args.out
    reader = _open_reader(args, args.file)
    try:
        to = normalize_format(args.to) if args.to else format_from_name(out)
    except ValueError as e:
        raise CliError(out, str(e)) from None
    if to is None:
        raise CliError(out, "cannot tell the output format from the file name; use --to F")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise CliError(out, f"output folder {folder} does not exist")
    if os.path.isdir(out):
        raise CliError(out, "is a directory")
    compress = out.lower().endswith((".zst", ".zstd"))
    # Write beside OUT and rename at the end: a failed convert leaves no partial file and
    # never clobbers an existing good one (rename within a folder is atomic on POSIX).
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(out)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with open_writer(f, to, page_size=reader.page_size, compress=compress) as w:
                    for c in reader:
                        w.write(c)
            except ValueError as e:  # e.g. an object id too large to be an address
                raise CliError(out, str(e)) from None
        os.chmod(tmp, _new_file_mode(out))
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _report_skipped(args, reader)
    print(f"{args.file} ({reader.format}) -> {out} ({to}): {w.refs:,} references")
    return 0


def _new_file_mode(path: str) -> int:
    """Mode a plain open() would give (mkstemp makes 0600 files)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@_guard
def cmd_simulate(args: argparse.Namespace) -> int:
    """vmemsim trace simulate FILE --policy P --frames N"""
    if args.frames <= 0:
        raise CliError(args.file, f"--frames must be positive, got {args.frames}")
    reader = _open_reader(args, args.file)
    try:
        from vmemsim.guest.replay import Replayer
    except ImportError as e:
        raise CliError(args.file, f"the replay engine is not available ({e})") from None
    try:
        r = Replayer(
            frames=args.frames,
            policy=args.policy,
            seed=args.seed,
            clock_insert_referenced=args.clock_insert_referenced,
        )
    except ValueError as e:
        raise CliError(args.file, str(e)) from None
    pm = PageMap()
    replay = 0.0
    t0 = time.perf_counter()
    for c in reader:
        dense = pm.map(c.pages)
        t1 = time.perf_counter()
        r.feed(dense, c.is_write)
        replay += time.perf_counter() - t1
    wall = time.perf_counter() - t0
    _report_skipped(args, reader)
    refs, misses = int(r.refs), int(r.misses)
    d = {
        "file": args.file,
        "format": reader.format,
        "policy": args.policy,
        "frames": args.frames,
        "seed": args.seed,
        "clock_insert_referenced": args.clock_insert_referenced,
        "page_size": reader.page_size,
        "references": refs,
        "distinct_pages": len(pm),
        "misses": misses,
        "miss_ratio": misses / refs if refs else 0.0,
        "wall_s": wall,
        "replay_s": replay,
        "refs_per_s": refs / wall if wall > 0 else 0.0,
        "skipped_lines": reader.skipped,
    }
    if args.json:
        print(json.dumps(d))
        return 0
    w = 16
    print(f"{'file':<{w}}{args.file} ({reader.format})")
    print(f"{'policy':<{w}}{args.policy}, {args.frames:,} frames, seed {args.seed}")
    print(f"{'references':<{w}}{refs:,}")
    print(f"{'distinct pages':<{w}}{len(pm):,}")
    print(f"{'misses':<{w}}{misses:,}")
    print(f"{'miss ratio':<{w}}{d['miss_ratio']:.6f}")
    print(f"{'wall time':<{w}}{wall:.3f} s (replay {replay:.3f} s, rest is parsing)")
    print(f"{'references/s':<{w}}{d['refs_per_s']:,.0f}")
    return 0


# --- wiring ----------------------------------------------------------------------------------


def add_trace_subcommands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``trace {stats,convert,simulate}`` to a main parser's subparsers action."""
    trace = subparsers.add_parser(
        "trace",
        help="inspect, convert and replay memory-reference traces",
        description="Memory-reference traces: lackey, din, pin, txt, csv, oracleGeneral "
        "(optionally .zst).",
    )
    tsub = trace.add_subparsers(dest="trace_command", metavar="{stats,convert,simulate}")
    tsub.required = True

    p = tsub.add_parser("stats", help="one-pass statistics, reuse histogram and LRU MRC")
    _add_input_args(p, "trace file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_stats)

    p = tsub.add_parser("convert", help="convert a trace to another format")
    p.add_argument("file", metavar="IN", help="input trace")
    p.add_argument("out", metavar="OUT", help="output trace (.zst suffix compresses)")
    _add_reader_args(p, "--from")
    p.add_argument("--to", metavar="F", help="output format (default: from OUT's extension)")
    p.set_defaults(func=cmd_convert)

    p = tsub.add_parser("simulate", help="replay a trace against one paging policy")
    _add_input_args(p, "trace file")
    p.add_argument("--policy", required=True, choices=POLICIES)
    p.add_argument("--frames", required=True, type=int, metavar="N", help="page frames")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (random policy)")
    p.add_argument(
        "--clock-insert-referenced",
        action="store_true",
        help="clock: set the reference bit of newly inserted pages",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_simulate)
    return trace


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point with the same ``vmemsim trace ...`` syntax."""
    parser = argparse.ArgumentParser(prog="vmemsim")
    sub = parser.add_subparsers(dest="command")
    add_trace_subcommands(sub)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        return 2
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
