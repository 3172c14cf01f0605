"""Shared pieces: sizes, result rows, interleaved timing, child processes, scenario builders."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MIB = 1 << 20
GIB = 1 << 30
PAGE = 4096


@dataclass(frozen=True)
class Config:
    """Sizes and repetition counts; --quick shrinks sizes, never the method."""

    quick: bool

    @property
    def reps(self) -> int:
        return 3 if self.quick else 5


@dataclass
class Row:
    """One reported number. `key` is stable (the targets and the JSON refer to it)."""

    key: str
    bench: str
    case: str
    value: float
    unit: str
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Sample:
    """One repetition: `work` units done in `seconds` of wall time, plus counters."""

    work: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.work / self.seconds if self.seconds > 0 else float("nan")


@contextmanager
def base_worktree(rev: str) -> Iterator[tuple[Path, Path]]:
    """A git revision of this repository checked out in a temporary worktree, removed after:
    yields (its folder, a scratch folder beside it) for benchmarks of two builds side by side."""
    with tempfile.TemporaryDirectory(prefix="vmemsim-base-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), rev],
                       check=True, capture_output=True)
        try:
            yield base, Path(tmp)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def interleave(cases: dict[str, Callable[[], Sample]], reps: int,
               log: Callable[[str], None] | None = None) -> dict[str, list[Sample]]:
    """Run rep 1 of every case, then rep 2, ...; the order flips each rep so that a slow drift
    of the machine (another job starting) does not always land on the same case."""
    out: dict[str, list[Sample]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(reps):
        for name in names if r % 2 == 0 else names[::-1]:
            s = cases[name]()
            out[name].append(s)
            if log:
                log(f"  rep {r + 1}/{reps} {name}: {s.rate:,.0f}/s")
    return out


def paired_ratio(a: list[Sample], b: list[Sample]) -> float:
    """Median over reps of rate(a) / rate(b): each pair ran back to back, so it shares noise."""
    return median([x.rate / y.rate for x, y in zip(a, b, strict=False) if y.rate > 0])


def rate_spread(samples: list[Sample]) -> str:
    rates = [s.rate for s in samples]
    if len(rates) < 2:
        return ""
    return f"min {min(rates) / 1e6:.2f}M max {max(rates) / 1e6:.2f}M over {len(rates)} reps"


# ---- children ------------------------------------------------------------------------------

def run_child(job: str, args: dict[str, Any], timeout: float,
              env: dict[str, str] | None = None,
              max_bytes: int | None = None) -> dict[str, Any]:
    """Run bench.child JOB in a fresh interpreter; its memory is its own. With max_bytes, the
    child's address space is capped (RLIMIT_AS), so a size that does not fit ends in a
    MemoryError in that child instead of the kernel's OOM killer. Returns the job's JSON, or
    {"error": ...} on failure or timeout."""
    import resource

    cmd = [PY, "-m", "bench.child", job, json.dumps(args)]
    full_env = {**os.environ, **(env or {})}

    def cap() -> None:
        if max_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))

    try:
        p = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=cap if max_bytes else None)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {p.returncode}: {' | '.join(tail)}"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": "no output"}


def hwm_mb(pid: int | str = "self") -> float:
    """Peak RSS of a process's current address space (VmHWM). Not ru_maxrss: Linux carries
    ru_maxrss across fork+exec, so a child of a 2 GB parent would report >= 2 GB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_command(cmd: list[str], timeout: float,
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a command: wall time, and its peak RSS sampled from /proc every 10 ms (VmHWM only
    grows, so the last sample misses at most the final 10 ms). Output goes to temporary files:
    a pipe could fill and stall the child while we poll."""
    import tempfile

    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=fout, stderr=ferr, text=True)
        peak = 0.0
        while True:
            peak = max(peak, hwm_mb(p.pid))
            code = p.poll()
            if code is not None:
                break
            if time.perf_counter() - t0 > timeout:
                p.kill()
                p.wait()
                return {"error": f"timeout after {timeout:.0f} s"}
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    res: dict[str, Any] = {"wall_s": wall, "maxrss_mb": peak, "stdout": out, "exit": code}
    if code != 0:
        res["error"] = f"exit {code}: {err.strip().splitlines()[-1:] or ''}"
    return res


def prime_cache(timeout: float = 900) -> dict[str, Any]:
    """Compile (or load) every kernel once in a child, so that timed children and CLI runs
    load them from numba's cache. The cache is keyed on vmemsim's sources: an edit to src/
    while the suite runs makes the next child recompile."""
    return run_child("prime", {}, timeout)


# ---- machine -------------------------------------------------------------------------------

def meminfo_mb(field_name: str = "MemAvailable") -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def src_hash() -> str:
    """Hash of vmemsim's sources, as vmemsim._cache keys numba's cache: if it differs between
    the start and the end of a run, src/ changed meanwhile and some child recompiled."""
    import hashlib

    root = ROOT / "src" / "vmemsim"
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["mem_total_gb"] = round(meminfo_mb("MemTotal") / 1024, 1)
    info["mem_available_gb"] = round(meminfo_mb() / 1024, 1)
    info["loadavg"] = os.getloadavg()
    info["src_hash"] = src_hash()
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT,
                               capture_output=True, text=True).stdout
        info["src_modified_files"] = len(dirty.splitlines())
    except OSError:
        pass
    for mod in ("numpy", "numba", "libcachesim"):
        try:
            info[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            info[mod] = None
    return info


# ---- scenarios -----------------------------------------------------------------------------

def one_vm_scenario(vm_mib: int, proc_mib: int, *, rate: str, wss_mib: int | None = None,
                    host_mib: int | None = None, **extra: Any) -> dict[str, Any]:
    """One VM, one uniform process, a host with memory to spare, and no sampling boundary
    during the run (sample_period 10 h): the steady state is hits only."""
    host = host_mib or int(vm_mib * 1.25) + 2048
    proc: dict[str, Any] = {"name": "p", "workload": "uniform", "size": f"{proc_mib}MiB",
                            "rate": rate, "write_frac": 0.3}
    if wss_mib is not None:
        proc["wss"] = f"{wss_mib}MiB"
    sc: dict[str, Any] = {
        "name": "bench", "duration": "100h", "baseline": False,
        "host": {"memory": f"{host}MiB"},
        "hypervisor": {"sample_period": "10h"},
        "vm": [{"name": "v", "memory": f"{vm_mib}MiB", "process": [proc]}],
    }
    for k, v in extra.items():
        sc[k] = v
    return sc


def array_bytes(sim: Any) -> dict[str, int]:
    """Bytes of every per-page array of a Simulation, grouped by what they are indexed by."""
    import numpy as np

    groups = {"host": 0, "vm": 0, "policy": 0}
    for a in sim.host:
        if isinstance(a, np.ndarray):
            groups["host"] += a.nbytes
    for v in sim.vms:
        for a in v.arrays:
            if isinstance(a, np.ndarray):
                groups["vm"] += a.nbytes
        for a in v.arrays.pol:
            groups["policy"] += a.nbytes
    groups["total"] = groups["host"] + groups["vm"] + groups["policy"]
    return groups


def per_array_bytes(sim: Any) -> dict[str, int]:
    """nbytes by array name, summed over VMs (where the bytes go)."""
    import numpy as np

    out: dict[str, int] = {}
    for name, a in zip(sim.host._fields, sim.host, strict=True):
        if isinstance(a, np.ndarray):
            out[f"host.{name}"] = out.get(f"host.{name}", 0) + a.nbytes
    for v in sim.vms:
        for name, a in zip(v.arrays._fields, v.arrays, strict=True):
            if isinstance(a, np.ndarray):
                out[f"vm.{name}"] = out.get(f"vm.{name}", 0) + a.nbytes
        for name, a in zip(v.arrays.pol._fields, v.arrays.pol, strict=True):
            out[f"pol.{name}"] = out.get(f"pol.{name}", 0) + a.nbytes
    return out
