"""Benchmarks 6-8, each in child processes: the default scenario end to end, memory per page
and growth with host size and VM count, control-plane time per tick, and start-up."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    GIB,
    MIB,
    PAGE,
    PY,
    Config,
    Row,
    median,
    meminfo_mb,
    run_child,
    run_command,
)

Log = Callable[[str], None]
VMEMSIM = str(Path(PY).parent / "vmemsim")
DEFAULT_DURATION = 600.0  # the default scenario's own duration


# ---- 6: the default scenario ---------------------------------------------------------------

def bench_default(cfg: Config, log: Log) -> list[Row]:
    duration = 60.0 if cfg.quick else DEFAULT_DURATION
    reps = 1 if cfg.quick else 3
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for r in range(reps):  # interleaved: beside, after; then after, beside; ...
        for parallel in ((True, False) if r % 2 == 0 else (False, True)):
            res = run_child("default", {"duration": duration, "parallel": parallel},
                            timeout=3600)
            log(f"  api rep {r + 1}/{reps} parallel={parallel}: "
                f"{res.get('wall_s', res.get('error'))}")
            runs[parallel].append(res)
    rows: list[Row] = []
    par = [x for x in runs[True] if "error" not in x]
    ser = [x for x in runs[False] if "error" not in x]
    if par and ser:
        wall = median([x["wall_s"] for x in par])
        wall_s = median([x["wall_s"] for x in ser])
        refs = par[0]["refs"] + par[0]["base_refs"]
        ran = refs - par[0].get("base_refs_from_run", 0)  # the references simulated
        need = ran / duration * 60  # refs per wall second that 60x real time takes
        rows.append(Row("default.api.speed", "default", f"vmemsim.simulate('default'), "
                        f"{duration:.0f} s + baseline beside it "
                        f"({par[0].get('baseline_procs', 1)} more processes)",
                        duration / wall, "x real time",
                        f"{wall:.1f} s wall, median of {len(par)}; "
                        f"{refs / 1e6:.0f} M refs (scenario {par[0]['refs'] / 1e6:.0f} M + "
                        f"baseline), of which the baselines of "
                        f"{', '.join(par[0].get('base_from_run', [])) or 'no VM'} "
                        f"({par[0].get('base_refs_from_run', 0) / 1e6:.0f} M) are the "
                        f"VMs' own runs, not run again; faults "
                        f"{par[0].get('faults', 0) / par[0]['refs']:.2%} "
                        f"of the scenario's refs; {wall_s / wall:.2f} x the serial run; "
                        f"60x would take {need / 1e6:.0f} M refs/s on one core",
                        {"runs": par}))
        rows.append(Row("default.api.serial", "default", "the same, baseline after the "
                        "scenario (one core, parallel=False)", duration / wall_s,
                        "x real time", f"{wall_s:.1f} s wall, median of {len(ser)}; "
                        f"{ran / wall_s / 1e6:.1f} M refs/s simulated",
                        {"runs": ser}))
        rows.append(Row("default.api.rss", "default", "peak RSS, simulate('default')",
                        max(x["maxrss_mb"] for x in par), "MB",
                        f"{par[0]['rss_import_mb']:.0f} MB of it is imports; the largest "
                        f"baseline process peaks at {max(x['child_maxrss_mb'] for x in par):.0f}"
                        " MB (forked: shares the parent's pages at first)"))
    else:
        bad = (runs[True] + runs[False])[0]
        rows.append(Row("default.api.speed", "default", "vmemsim.simulate('default')",
                        math.nan, "x real time", bad.get("error", "")))
    out = Path(tempfile.mkdtemp(prefix="vmemsim-bench-"))
    try:
        def cmd(name: str, report: bool = False) -> list[str]:
            return [VMEMSIM, "run", "--quiet", *([] if report else ["--no-report"]),
                    "--out", str(out / name),
                    *(["--duration", f"{duration:.0f}s"] if cfg.quick else [])]

        res = run_command(cmd("run"), timeout=3600)
        # What `make run` does: the same with the five figures and report.html.
        report = run_command(cmd("report", report=True), timeout=3600)
        # A second run of the same scenario with the baselines the first one kept (a what-if
        # that changes only the host is the same): the scenario's run alone.
        env = {"VMEMSIM_BASELINE_CACHE": str(out / "cache")}
        fill = run_command(cmd("fill"), timeout=3600, env=env)
        cached = (fill if "error" in fill else
                  run_command(cmd("cached"), timeout=3600, env=env))
        if "error" not in cached:
            with open(out / "cached" / "summary.json") as f:
                cached["baseline_cached"] = json.load(f)["baseline_cached"]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    def speed(key: str, case: str, r: dict[str, Any],
              note: Callable[[], tuple[str, dict[str, Any]]]) -> Row:
        """A CLI run's speed row; `note` reads the run's numbers, which a failed run lacks."""
        if "error" in r:
            return Row(key, "default", case, math.nan, "x real time", r["error"])
        return Row(key, "default", case, duration / r["wall_s"], "x real time", *note())

    log(f"  cli: {res.get('wall_s', res.get('error'))}")
    rows.append(speed("default.cli.speed", "vmemsim run --quiet --no-report (whole process)", res,
                      lambda: (f"{res['wall_s']:.1f} s wall incl. start-up, results and "
                               "esxtop.csv", {"wall_s": res["wall_s"]})))
    log(f"  cli with the report: {report.get('wall_s', report.get('error'))}")
    rows.append(speed("default.cli.report", "vmemsim run --quiet (with the figures and "
                      "report.html, as make run)", report,
                      lambda: (f"{report['wall_s']:.1f} s wall; without the report "
                               f"{res.get('wall_s', math.nan):.1f} s",
                               {"wall_s": report["wall_s"]})))
    if "error" not in res:
        rows.append(Row("default.cli.rss", "default", "peak RSS, vmemsim run",
                        res["maxrss_mb"], "MB", "VmHWM of the process, sampled every 10 ms"))
    log(f"  cli, baselines from the cache: {cached.get('wall_s', cached.get('error'))}")
    rows.append(speed("default.cli.cached", "vmemsim run, a second time: baselines from the cache",
                      cached,
                      lambda: (f"{cached['wall_s']:.1f} s wall incl. start-up; from the cache: "
                               f"{', '.join(cached['baseline_cached']) or 'none'}; the first "
                               f"run (which fills it) took {fill['wall_s']:.1f} s",
                               {"wall_s": cached["wall_s"], "fill_wall_s": fill["wall_s"],
                                "baseline_cached": cached["baseline_cached"]})))
    return rows


# ---- 7: memory and growth ------------------------------------------------------------------

def _host_size_args(host_gib: float) -> dict[str, Any]:
    """A host of host_gib with 1.5x as much VM memory, in VMs of at most 64 GiB."""
    vm_total = host_gib * 1.5 * 1024
    n = max(1, math.ceil(vm_total / (64 * 1024)))
    return {"host_mib": int(host_gib * 1024), "vm_mib": int(vm_total / n), "n_vms": n}


def _bytes_per_page(res: dict[str, Any]) -> tuple[float, float, float]:
    """(all arrays per VM page, per-GPPN arrays per GPPN, host arrays per MPN)."""
    b = res["bytes"]
    return (b["total"] / res["n_gppn"], (b["vm"] + b["policy"]) / res["n_gppn"],
            b["host"] / res["n_mpn"])


def bench_memory(cfg: Config, log: Log) -> list[Row]:
    """Bytes of state per simulated 4 KiB page, from the arrays and from RSS growth."""
    args = {**_host_size_args(4 if cfg.quick else 16), "warm_s": 1, "measure_s": 2}
    res = run_child("scale", args, timeout=900)
    if "error" in res:
        return [Row("memory.bytes_per_page", "memory", "arrays per VM page", math.nan, "B",
                    res["error"])]
    per_vm_page, per_gppn, per_mpn = _bytes_per_page(res)
    pages_all = res["n_gppn"] + res["n_mpn"]
    rss = (res["rss_end_mb"] - res["rss_import_mb"]) * MIB
    top = sorted(res["per_array"].items(), key=lambda kv: -kv[1])[:8]
    where = ", ".join(f"{k} {v / res['n_gppn']:.1f}" for k, v in top)
    host_gib = args["host_mib"] / 1024
    label = f"{host_gib:.0f} GiB host, {args['n_vms']} VM(s), {res['n_gppn'] * PAGE / GIB:.0f} GiB"
    log(f"  {label}: {per_vm_page:.1f} B per VM page")
    return [
        Row("memory.bytes_per_page", "memory", f"arrays / VM pages ({label})", per_vm_page, "B",
            f"per GPPN {per_gppn:.1f} B + per MPN {per_mpn:.1f} B; largest (B per VM page): "
            f"{where}", res),
        Row("memory.bytes_per_any_page", "memory", "arrays / (VM pages + machine pages)",
            res["bytes"]["total"] / pages_all, "B", "counting every simulated 4 KiB page once"),
        Row("memory.rss_per_page", "memory", "RSS growth / VM pages", rss / res["n_gppn"], "B",
            "np.zeros arrays are not resident until touched: RSS is below nbytes"),
    ]


def bench_hostsize(cfg: Config, log: Log) -> list[Row]:
    """Time and memory against host size, 1 GiB up to 1 TiB (1.5x as much VM memory), one
    child per size. The arrays of the next size are predicted from the last one's bytes per
    page; a size that would not fit in 90% of the memory free now is skipped and reported
    with the bytes per page it would need. Children run with RLIMIT_AS at 95% of free memory:
    on a shared machine, a MemoryError in the child is better than the OOM killer."""
    sizes = [1, 4, 16] if cfg.quick else [1, 4, 16, 64, 256, 512, 768, 1024]
    rows: list[Row] = []
    base: dict[str, Any] | None = None
    per_gppn = per_mpn = math.nan
    for gib in sizes:
        args = {**_host_size_args(gib), "warm_s": 2, "measure_s": 3}
        n_gppn = args["n_vms"] * args["vm_mib"] * MIB // PAGE
        n_mpn = gib * GIB // PAGE
        predicted = n_gppn * per_gppn + n_mpn * per_mpn
        avail = meminfo_mb() * MIB
        label = f"{gib} GiB host, {1.5 * gib:g} GiB in {args['n_vms']} VM(s)"
        budget = 0.9 * avail - 512 * MIB  # the interpreter and imports take ~250 MB
        if predicted > budget:
            need = budget / (n_gppn + n_mpn)
            need_vm = (budget - n_mpn * per_mpn) / n_gppn
            log(f"  {label}: skipped, needs {predicted / GIB:.1f} GiB")
            rows.append(Row(f"hostsize.{gib}", "hostsize", label, math.nan, "s/sim-s",
                            f"skipped: arrays would need {predicted / GIB:.1f} GiB, "
                            f"{avail / GIB:.1f} GiB free now; would fit at <= {need:.1f} B "
                            f"per (VM + machine) page, or {need_vm:.1f} B per VM page with "
                            f"the host arrays as they are",
                            {"predicted_bytes": predicted, "fits_bytes_per_page": need}))
            continue
        res = run_child("scale", args, timeout=1800, max_bytes=int(0.95 * avail))
        if "error" in res:
            log(f"  {label}: {res['error']}")
            rows.append(Row(f"hostsize.{gib}", "hostsize", label, math.nan, "s/sim-s",
                            res["error"]))
            continue
        _, per_gppn, per_mpn = _bytes_per_page(res)
        base = base or res
        log(f"  {label}: build {res['build_s']:.1f} s, {res['sec_wall_median'] * 1e3:.1f} ms "
            f"per simulated second, peak {res['maxrss_mb']:.0f} MB")
        rows.append(Row(
            f"hostsize.{gib}", "hostsize", label, res["sec_wall_median"], "s/sim-s",
            f"x{res['sec_wall_median'] / base['sec_wall_median']:.2f} vs smallest; build "
            f"{res['build_s']:.1f} s; arrays {res['bytes']['total'] / GIB:.2f} GiB; peak RSS "
            f"{res['maxrss_mb'] / 1024:.2f} GiB", res))
    return rows


def bench_vmcount(cfg: Config, log: Log) -> list[Row]:
    """Time and memory against the number of VMs at fixed total VM memory and references."""
    total_mib = 8 * 1024 if cfg.quick else 64 * 1024
    counts = [1, 8, 128] if cfg.quick else [1, 2, 8, 32, 128]
    rows: list[Row] = []
    base: dict[str, Any] | None = None
    for n in counts:
        vm_mib = total_mib // n
        host_mib = int(total_mib * 1.25 + n * (30 + vm_mib / 100) + 1024)
        args = {"host_mib": host_mib, "vm_mib": vm_mib, "n_vms": n, "warm_s": 2,
                "measure_s": 3 if cfg.quick else 5}
        res = run_child("scale", args, timeout=1800)
        label = f"{n} VM(s) x {vm_mib} MiB, 2 M refs per simulated s in all"
        if "error" in res:
            rows.append(Row(f"vmcount.{n}", "vmcount", label, math.nan, "s/sim-s",
                            res["error"]))
            continue
        base = base or res
        log(f"  {label}: {res['sec_wall_median'] * 1e3:.1f} ms per simulated second")
        rows.append(Row(
            f"vmcount.{n}", "vmcount", label, res["sec_wall_median"], "s/sim-s",
            f"x{res['sec_wall_median'] / base['sec_wall_median']:.2f} vs 1 VM; "
            f"{res['sec_wall_median'] / res['refs_per_s'] * 1e9:.0f} ns per ref; "
            f"arrays {res['bytes']['total'] / GIB:.2f} GiB; peak {res['maxrss_mb']:.0f} MB",
            res))
    return rows


def bench_control(cfg: Config, log: Log) -> list[Row]:
    """Control-plane time per tick (no references) against pages simulated, and with 128 VMs.
    One child per case and rep, the cases interleaved, medians of 3 reps."""
    sizes = [1, 16] if cfg.quick else [1, 16, 256]
    cases: dict[str, dict[str, Any]] = {}
    for gib in sizes:
        cases[f"{gib}.1"] = {**_host_size_args(gib), "n_vms": 1,
                             "vm_mib": int(gib * 1.5 * 1024)}
    cases["16.128"] = {"host_mib": 16 * 1024, "vm_mib": 16 * 1536 // 128, "n_vms": 128}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in cases}
    for r in range(3):
        for key in cases if r % 2 == 0 else list(cases)[::-1]:
            res = run_child("control", {**cases[key], "seconds": 122}, timeout=1800)
            runs[key].append(res)
    rows: list[Row] = []
    base: dict[str, Any] | None = None
    for key, args in cases.items():
        ok = [x for x in runs[key] if "error" not in x]
        gib = args["host_mib"] / 1024
        label = (f"{gib:g} GiB host, {args['vm_mib'] * args['n_vms'] / 1024:g} GiB in "
                 f"{args['n_vms']} VM(s), no references")
        if not ok:
            rows.append(Row(f"control.{key}", "control", label, math.nan, "us/tick",
                            runs[key][0]["error"]))
            continue
        res = {k: median([x[k] for x in ok]) for k in ("tick_median_s", "boundary_second_s",
                                                       "first_second_s", "build_s")}
        res["n_gppn"], res["n_vms"] = ok[0]["n_gppn"], args["n_vms"]
        base = base or res
        log(f"  {label}: {res['tick_median_s'] * 1e6:.0f} us/tick, sampling boundary "
            f"{res['boundary_second_s'] * 1e3:.1f} ms")
        rows.append(Row(
            f"control.{key}", "control", label, res["tick_median_s"] * 1e6, "us/tick",
            f"x{res['tick_median_s'] / base['tick_median_s']:.2f} vs first; second with a "
            f"sampling boundary: {res['boundary_second_s'] * 1e3:.1f} ms "
            f"({res['boundary_second_s'] / res['n_gppn'] * 1e9:.2f} ns per VM page, once a "
            f"minute); first second (power-on) {res['first_second_s'] * 1e3:.0f} ms; "
            f"build {res['build_s'] * 1e3:.0f} ms", {**res, "runs": ok}))
    return rows


# ---- 8: start-up ---------------------------------------------------------------------------

def bench_startup(cfg: Config, log: Log) -> list[Row]:
    """First run with an empty numba cache (everything compiles) against cached runs."""
    colds, warms = [], []
    n_cold = 1 if cfg.quick else 2
    for r in range(max(n_cold, 3)):
        cache = tempfile.mkdtemp(prefix="vmemsim-numba-")
        out = tempfile.mkdtemp(prefix="vmemsim-bench-")
        cmd = [VMEMSIM, "run", "--duration", "2s", "--quiet", "--no-report", "--no-esxtop",
               "--out", out]
        try:
            if r < n_cold:
                res = run_command(cmd, timeout=1800, env={"NUMBA_CACHE_DIR": cache})
                colds.append(res)
                log(f"  cold {r + 1}: {res.get('wall_s', res.get('error'))}")
                res = run_command(cmd, timeout=1800, env={"NUMBA_CACHE_DIR": cache})
                warms.append(res)
            else:  # the user's own cache, already filled by prime_cache
                res = run_command(cmd, timeout=1800)
                warms.append(res)
            log(f"  warm: {res.get('wall_s', res.get('error'))}")
        finally:
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    imp = [run_command([PY, "-c", "import vmemsim.engine, vmemsim.cli"], 300) for _ in range(3)]
    cold = median([x["wall_s"] for x in colds if "error" not in x])
    warm = median([x["wall_s"] for x in warms if "error" not in x])
    return [
        Row("startup.cold", "startup", "vmemsim run --duration 2s, empty numba cache", cold,
            "s", f"compile = cold - cached = {cold - warm:.1f} s; peak "
            f"{max(x.get('maxrss_mb', 0) for x in colds):.0f} MB", {"runs": colds}),
        Row("startup.warm", "startup", "the same, cached kernels", warm, "s",
            f"median of {len(warms)}", {"runs": warms}),
        Row("startup.import", "startup", "python -c 'import vmemsim.engine, vmemsim.cli'",
            median([x["wall_s"] for x in imp]), "s", "interpreter + numpy/numba/pydantic"),
    ]
