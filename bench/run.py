"""vmemsim benchmark suite: `make bench` / `make bench ARGS=--quick`.

    .venv/bin/python bench/run.py [--quick] [--only NAME ...] [--out bench/out/results.json]

Prints one table and writes the same numbers as JSON. Benchmarks report; they assert nothing
about wall time. Cases meant to be compared run interleaved in one process (rep 1 of each,
then rep 2, ...) and are reported as medians and as ratios of paired reps, because this
machine is shared and noisy. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ROOT,
    Config,
    Row,
    Sample,
    interleave,
    machine_info,
    median,
    paired_ratio,
    prime_cache,
    rate_spread,
    src_hash,
)

GROUPS = ("refpath", "floor", "ceiling", "faults", "oracle", "default", "memory", "hostsize",
          "vmcount", "control", "startup")
Log = Callable[[str], None]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _med(samples: list[Sample]) -> float:
    return median([s.rate for s in samples])


# ---- 1, 4, 5: hits, side by side with the floor and the ceiling -----------------------------

def bench_throughput(cfg: Config, only: set[str]) -> list[Row]:
    from bench.baselines import Ceiling, DictSim
    from bench.throughput import hit_sizes, refpath_bench
    from vmemsim.config.units import pages

    rows: list[Row] = []
    for size_name, size in hit_sizes(cfg).items():
        far = size_name == "far"
        log(f"[refpath/floor/ceiling] {size_name}: {size['label']}")
        cases: dict[str, Callable[[], Sample]] = {}
        n_gvpn, n_gppn = pages(size["proc_mib"] << 20), pages(size["vm_mib"] << 20)
        sb = None
        if "refpath" in only:
            sb, warm = refpath_bench(size)
            log(f"  built in {sb.build_s:.1f} s; warm-up touched {warm['faults']:,} pages in "
                f"{warm['seconds']:.1f} s")
            cases["sim"] = sb.rep
            if far:
                rows.append(Row("faults.first_touch", "faults",
                                "first touch: guest fault + hypervisor first touch "
                                f"({size['label']})",
                                warm["faults"] / warm["seconds"], "faults/s",
                                f"{warm['seconds'] / warm['faults'] * 1e9:.0f} ns per fault "
                                "(sequential scan; the warm-up of the hit benchmark)", warm))
        ceiling = None
        if "ceiling" in only:
            ceiling = Ceiling(n_gvpn, n_gppn)
            n_ceil = (3_000_000 if cfg.quick else 5_000_000) if far else 20_000_000
            cases["ceiling 2-level"] = lambda c=ceiling, n=n_ceil: c.rep_two_level(n)
            cases["ceiling sim layout"] = lambda c=ceiling, n=n_ceil: c.rep_sim_layout(n)
        floor = None
        floor_gvpn = min(n_gvpn, 4 << 20)  # a dict of 16 M entries would need ~5 GB
        if "floor" in only:
            floor = DictSim(floor_gvpn, max(n_gppn * floor_gvpn // n_gvpn, floor_gvpn))
            n_floor = 300_000 if far else 1_000_000
            cases["floor"] = lambda f=floor, n=n_floor: f.rep(n)
        res = interleave(cases, cfg.reps, log)
        tables = f"{n_gvpn:,} GVPNs, {n_gppn:,} GPPNs"
        if "sim" in res:
            s = res["sim"]
            refs = sum(x.work for x in s)
            non_hit = sum(x.extra["non_hit"] for x in s)
            note = f"hits {1 - non_hit / refs:.4%} of {refs / 1e6:.0f} M refs; {rate_spread(s)}"
            rows.append(Row(f"refpath.{size_name}", "refpath",
                            f"full simulator, {size['label']} ({tables})", _med(s), "refs/s",
                            note, {"reps": [x.__dict__ for x in s]}))
        for name in ("ceiling 2-level", "ceiling sim layout"):
            if name in res:
                what = ("pt[gv] -> pmap[g]" if name == "ceiling 2-level"
                        else "pt[gv] -> pstate, aux (the sim's hit path only)")
                note = rate_spread(res[name])
                if "sim" in res:
                    note = f"sim = {paired_ratio(res['sim'], res[name]):.2f} x this; " + note
                rows.append(Row(f"{name.replace(' ', '_')}.{size_name}", "ceiling",
                                f"numba {what}, same sizes", _med(res[name]), "refs/s", note))
        if "floor" in res:
            note = f"{floor_gvpn:,} GVPNs; " + rate_spread(res["floor"])
            if "sim" in res:
                note = f"sim = {paired_ratio(res['sim'], res['floor']):.1f} x this; " + note
            rows.append(Row(f"floor.{size_name}", "floor",
                            "plain Python: dict pt + dict pmap + OrderedDict LRU",
                            _med(res["floor"]), "refs/s", note))
        del sb, ceiling, floor, cases, res
        gc.collect()
    return rows


# ---- 2: faults -----------------------------------------------------------------------------

def bench_faults(cfg: Config) -> list[Row]:
    from bench.throughput import fault_bench, fault_scenarios

    specs = fault_scenarios(cfg)
    benches = {name: fault_bench(spec) for name, spec in specs.items()}
    log("[faults] " + ", ".join(specs))
    res = interleave({k: b.rep for k, b in benches.items()}, cfg.reps, log)
    rows = []
    for name, samples in res.items():
        secs = sum(x.seconds for x in samples)
        faults = sum(x.extra["faults"] for x in samples)
        refs = sum(x.work for x in samples)
        d = {k: sum(x.extra[k] for x in samples) for k in samples[0].extra}
        key = name.split()[1] if " " in name else name
        rows.append(Row(f"faults.{key}", "faults", f"{name}: {specs[name]['label']}",
                        _med(samples), "refs/s",
                        f"{faults / secs:,.0f} faults/s ({secs / max(faults, 1) * 1e9:.0f} ns "
                        f"wall per fault); faults are {faults / refs:.0%} of refs; guest swap "
                        f"in/out {d['C_GSWIN']:,}/{d['C_GSWOUT']:,}, host swap in/out "
                        f"{d['C_SWIN']:,}/{d['C_SWOUT']:,}; blocked "
                        f"{d['blocked_us'] / 1e6:.1f} vCPU-s", d))
    return rows


# ---- 3: libCacheSim ------------------------------------------------------------------------

def bench_oracle(cfg: Config) -> list[Row]:
    from bench.oracle import POLICIES, Oracle, make_trace, trace_spec

    spec = trace_spec(cfg)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="vmemsim-bench-") as tmp:
        path = Path(tmp) / "trace.oracleGeneral.bin"
        ids = make_trace(path, spec["refs"], spec["pages"])
        log(f"[oracle] {spec['refs']:,} refs over {spec['pages']:,} pages, "
            f"{spec['frames']:,} frames")
        oracles = {p: Oracle(path, ids, spec["frames"], p) for p in POLICIES}
        cases: dict[str, Callable[[], Sample]] = {}
        for p, o in oracles.items():
            cases[f"{p} libcachesim"] = o.rep_libcachesim
            cases[f"{p} replay"] = o.rep_replay
            cases[f"{p} file"] = o.rep_file
        # 3 reps even in a full run: one rep of the nine cases takes ~30 s at full size.
        res = interleave(cases, 3, log)
        for p, o in oracles.items():
            lcs, rep, fil = res[f"{p} libcachesim"], res[f"{p} replay"], res[f"{p} file"]
            cli = o.cli()
            log(f"  cli {p}: {cli.get('process_wall_s', cli.get('error'))}")
            misses = {x.extra["misses"] for x in lcs + rep + fil}
            if "misses" in cli:
                misses.add(cli["misses"])
            same = len(misses) == 1
            check = (f"misses identical: {next(iter(misses)):,}" if same
                     else f"MISSES DIFFER: {sorted(misses)}")
            label = f"{p.upper()}, {spec['frames']:,} frames"
            rows.append(Row(f"oracle.{p}.libcachesim", "oracle",
                            f"{label}: libCacheSim process_trace (C reader, hashpower "
                            f"{o.hashpower})", _med(lcs), "refs/s", check,
                            {"misses_identical": same, "misses": sorted(misses)}))
            r_rep, r_fil = paired_ratio(rep, lcs), paired_ratio(fil, lcs)
            rows.append(Row(f"oracle.{p}.replay", "oracle",
                            f"{label}: vmemsim Replayer, ids in memory", _med(rep), "refs/s",
                            f"{r_rep:.2f} x libCacheSim", {"vs_libcachesim": r_rep}))
            rows.append(Row(f"oracle.{p}.file", "oracle",
                            f"{label}: vmemsim reader + PageMap + Replayer", _med(fil),
                            "refs/s", f"{r_fil:.2f} x libCacheSim", {"vs_libcachesim": r_fil}))
            if "error" in cli:
                rows.append(Row(f"oracle.{p}.cli", "oracle", f"{label}: vmemsim trace simulate",
                                math.nan, "refs/s", cli["error"]))
            else:
                whole = cli["references"] / cli["process_wall_s"]
                rows.append(Row(f"oracle.{p}.cli", "oracle",
                                f"{label}: `vmemsim trace simulate` (1 run)", whole, "refs/s",
                                f"whole process {cli['process_wall_s']:.2f} s; its own timer "
                                f"says {cli['refs_per_s'] / 1e6:.2f} M refs/s; "
                                f"{whole / _med(lcs):.2f} x libCacheSim", cli))
    return rows


# ---- targets -------------------------------------------------------------------------------

def evaluate_targets(rows: list[Row], quick: bool) -> list[dict[str, Any]]:
    by = {r.key: r for r in rows}

    def v(key: str) -> float:
        return by[key].value if key in by else math.nan

    def ratio(key: str, ref: str) -> float:
        """The paired ratio the row reports (median of per-rep ratios), else of medians."""
        paired = by[key].extra.get("vs_libcachesim") if key in by else None
        return float(paired) if paired is not None else v(key) / v(ref)

    out: list[dict[str, Any]] = []

    def add(name: str, value: str, met: bool | None) -> None:
        out.append({"target": name, "measured": value,
                    "met": "n/a" if met is None else ("yes" if met else "NO")})

    for key, goal, what in (("refpath.cache", 50e6, "tables in cache"),
                            ("refpath.far", 25e6, "far larger than cache")):
        if key in by:
            x = v(key)
            add(f">= {goal / 1e6:.0f} M refs/s per core, {what}", f"{x / 1e6:.1f} M/s",
                None if math.isnan(x) else x >= goal)
    ratios = []
    same = True
    for p in ("lru", "fifo", "clock"):
        if f"oracle.{p}.libcachesim" in by:
            same &= bool(by[f"oracle.{p}.libcachesim"].extra.get("misses_identical"))
            ratios.append((p, ratio(f"oracle.{p}.replay", f"oracle.{p}.libcachesim"),
                           ratio(f"oracle.{p}.file", f"oracle.{p}.libcachesim")))
    if ratios:
        txt = "; ".join(f"{p} {a:.2f}x ({b:.2f}x from file)" for p, a, b in ratios)
        add(">= 5x libCacheSim, identical misses",
            txt + ("; misses identical" if same else "; MISSES DIFFER"),
            same and all(a >= 5 for _, a, _ in ratios))
    if "memory.bytes_per_page" in by:
        # A simulated page is each 4 KiB page the simulator keeps: guest-physical or machine.
        x = v("memory.bytes_per_page")
        y = v("memory.bytes_per_any_page")
        add("<= 24 bytes per simulated page", f"{y:.1f} B per VM or machine page (all "
            f"arrays); {x:.1f} B per VM page", None if math.isnan(y) else y <= 24)
    sizes = [r for r in rows if r.bench == "hostsize"]
    if sizes:
        done = [r for r in sizes if not math.isnan(r.value)]
        big = max(done, key=lambda r: r.extra.get("n_mpn", 0), default=None)
        has_tib = any(r.key == "hostsize.1024" and not math.isnan(r.value) for r in sizes)
        tib = [r for r in sizes if r.key == "hostsize.1024"]
        need = f"; 1 TiB: {tib[0].note}" if tib and math.isnan(tib[0].value) else ""
        add("1 TiB host + 1.5 TiB of VMs on this machine",
            f"largest run: {big.case if big else 'none'}{need}",
            None if quick else has_tib)
    for key in ("default.api.speed", "default.cli.speed"):
        x = v(key)
        if key in by:
            add(f">= 60x real time ({'API' if 'api' in key else 'CLI'})", f"{x:.1f}x",
                None if math.isnan(x) else x >= 60)
    ctl = [r for r in rows if r.bench == "control" and not math.isnan(r.value)
           and r.extra.get("n_vms") == 1]
    if len(ctl) >= 2:
        growth = ctl[-1].value / ctl[0].value
        add("control plane per tick does not grow with pages",
            f"x{growth:.2f} from {ctl[0].case.split(',')[0]} to {ctl[-1].case.split(',')[0]}"
            " (median tick)", growth < 2)
    return out


# ---- output --------------------------------------------------------------------------------

def fmt(value: float, unit: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if unit.endswith("/s") and abs(value) >= 1e5:
        return f"{value / 1e6:,.2f} M"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_table(rows: list[Row], targets: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        for r in rows:
            print(f"{r.bench:<9} {r.case:<70} {fmt(r.value, r.unit):>10} {r.unit:<12} {r.note}")
        for t in targets:
            print(f"target {t['target']:<50} {t['met']:<4} {t['measured']}")
        return
    con = Console(width=max(160, Console().width))
    t = Table(title="vmemsim benchmarks", show_lines=False)
    for col, just in (("bench", "left"), ("case", "left"), ("value", "right"),
                      ("unit", "left"), ("notes", "left")):
        t.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        t.add_row(r.bench, escape(r.case), fmt(r.value, r.unit), r.unit, escape(r.note))
    con.print(t)
    tt = Table(title="targets (issue: Performance)")
    for col in ("target", "met", "measured"):
        tt.add_column(col, overflow="fold")
    for x in targets:
        tt.add_row(escape(x["target"]), x["met"], escape(x["measured"]))
    con.print(tt)


def markdown(rows: list[Row], targets: list[dict[str, Any]]) -> str:
    """The two tables as Markdown, for docs/performance.md."""
    out = ["| bench | case | value | unit | notes |", "|---|---|--:|---|---|"]
    for r in rows:
        note = r.note.replace("|", "/")
        out.append(f"| {r.bench} | {r.case} | {fmt(r.value, r.unit)} | {r.unit} | {note} |")
    out += ["", "| target | met | measured |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['met']} | {t['measured']} |" for t in targets]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, ~3 minutes")
    ap.add_argument("--only", nargs="+", choices=GROUPS, metavar="NAME",
                    help=f"run only these: {', '.join(GROUPS)}")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "results.json"),
                    help="JSON results (default bench/out/results.json)")
    ap.add_argument("--markdown", metavar="JSON",
                    help="print the tables of an earlier run's JSON as Markdown, and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        doc = json.loads(Path(args.markdown).read_text())
        print(markdown([Row(**r) for r in doc["rows"]], doc["targets"]), end="")
        return 0
    cfg = Config(quick=args.quick)
    only = set(args.only or GROUPS)
    # Every run computes its baselines: a cache of them (vmemsim.basecache) kept by an earlier
    # run would time the lookup instead. The one row that times a cached run sets its own.
    os.environ["VMEMSIM_BASELINE_CACHE"] = "off"
    t_start = time.perf_counter()
    info = machine_info()
    log(f"machine: {info}")
    log("priming the numba cache in a child (compiles only after an edit to src/) ...")
    primed = prime_cache()
    log(f"  {primed}")
    from bench import scaling

    rows: list[Row] = []
    steps: list[tuple[set[str], Callable[[], list[Row]]]] = [
        ({"refpath", "floor", "ceiling"}, lambda: bench_throughput(cfg, only)),
        ({"faults"}, lambda: bench_faults(cfg)),
        ({"oracle"}, lambda: bench_oracle(cfg)),
        ({"default"}, lambda: scaling.bench_default(cfg, log)),
        ({"memory"}, lambda: scaling.bench_memory(cfg, log)),
        ({"hostsize"}, lambda: scaling.bench_hostsize(cfg, log)),
        ({"vmcount"}, lambda: scaling.bench_vmcount(cfg, log)),
        ({"control"}, lambda: scaling.bench_control(cfg, log)),
        ({"startup"}, lambda: scaling.bench_startup(cfg, log)),
    ]
    for names, step in steps:
        if names & only:
            t0 = time.perf_counter()
            if names & {"default", "memory", "hostsize", "vmcount", "control", "startup"}:
                log(f"[{'/'.join(sorted(names))}]")
            rows.extend(step())
            log(f"  ({time.perf_counter() - t0:.0f} s)")
            gc.collect()
    targets = evaluate_targets(rows, cfg.quick)
    print_table(rows, targets)
    total = time.perf_counter() - t_start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    end_hash = src_hash()
    if end_hash != info["src_hash"]:
        log(f"warning: src/ changed during the run ({info['src_hash']} -> {end_hash}); "
            "children started after the change recompiled kernels")
    doc = {"meta": {**info, "src_hash_end": end_hash, "quick": cfg.quick,
                    "only": sorted(only), "total_s": total,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"), "prime": primed},
           "rows": [r.to_dict() for r in rows], "targets": targets}
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    log(f"wrote {out} ({total:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
