"""Baselines kept between runs, so that a what-if reruns only what it changed.

Slowdown divides each VM's throughput by its baseline: the same VM alone on a host with memory
to spare. When the baseline's VMs do not interact (baseline.cacheable), a VM's baseline depends
only on that VM, its place in the scenario (which names its random streams), the scenario's
seed, tick, duration, hypervisor and cost settings, and vmemsim's own code; not on the host
(its memory, vmkernel or swap device) or on the other VMs. A sweep over host sizes, or a
what-if that changes one VM, therefore needs the baseline of nothing or of that VM only (the
default scenario's baseline is more references than the scenario itself). A VM that replays a
trace is not kept: the scenario names the file, not what it holds.

Each entry is one VM's per-second `time_s`, `refs` and `throughput` (all that slowdown reads)
in a `.npz` file named by a SHA-256 of its spec (baseline.baseline_spec: that VM's baseline
scenario as JSON) and of `fingerprint()`: vmemsim's source hash, numpy's, numba's and
llvmlite's versions, Python's and the machine's architecture. The file also holds the spec,
which a read compares, so a file that is not what its name says is never used. Entries are
written atomically; a damaged one is removed and recomputed (one this process may not read
is left alone); the folder keeps the `MAX_ENTRIES` most recently used.

Where: `$VMEMSIM_BASELINE_CACHE` if set (`off` turns the cache off), else
`$XDG_CACHE_HOME/vmemsim/baselines` (`~/.cache/vmemsim/baselines`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import zipfile
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from vmemsim._cache import cache_root, source_hash
from vmemsim.metrics.result import atomic_write

ENV = "VMEMSIM_BASELINE_CACHE"
OFF = ("", "0", "off", "no", "false")
MAX_ENTRIES = 4096  # 17 KB each for the default scenario (10 min): 70 MB at most
COLUMNS = ("time_s", "refs", "throughput")  # besides `vm`: what the run's slowdown reads


def folder() -> Path | None:
    """The cache's folder, or None when the cache is off."""
    value = os.environ.get(ENV)
    if value is None:
        return cache_root() / "baselines"
    if value.strip().lower() in OFF:
        return None
    return Path(value).expanduser()


@cache
def fingerprint() -> str:
    """What besides the spec decides a baseline's numbers: the code that computes them."""
    import llvmlite
    import numba

    return (f"vmemsim {source_hash()}; numpy {np.__version__}; numba {numba.__version__}; "
            f"llvmlite {llvmlite.__version__}; python {sys.version_info[0]}."
            f"{sys.version_info[1]}; {platform.machine()}")


def _path(where: Path, spec: str) -> Path:
    h = hashlib.sha256(f"{fingerprint()}\n{spec}".encode()).hexdigest()
    return where / f"{h[:40]}.npz"


def get(spec: str, name: str) -> pd.DataFrame | None:
    """The baseline rows (time_s, vm, refs, throughput) of VM `name` stored for `spec`, or
    None if there are none (or the cache is off)."""
    where = folder()
    if where is None:
        return None
    path = _path(where, spec)
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable here (permissions, a disk error): leave it to its owner
        return None
    except (ValueError, EOFError, zipfile.BadZipFile):  # not a numpy file: recompute
        _remove(path)
        return None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a single array under an entry's name
        _remove(path)
        return None
    try:
        with z:
            ok = (z["spec"].tobytes() == spec.encode()
                  and z["fingerprint"].tobytes() == fingerprint().encode())
            cols = {c: z[c] for c in COLUMNS}
    except OSError:
        return None
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # damaged
        _remove(path)
        return None
    if not ok or len({a.shape for a in cols.values()}) != 1 or cols["time_s"].ndim != 1:
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used: pruned last
    df = pd.DataFrame({"time_s": cols["time_s"], "vm": name})
    for c in COLUMNS[1:]:
        df[c] = cols[c]
    return df


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8)


def put(spec: str, rows: pd.DataFrame) -> None:
    """Store one VM's baseline rows for `spec`. A cache that cannot be written (read-only,
    full) is skipped: the run's own results do not depend on it."""
    where = folder()
    if where is None:
        return

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: savez adds no ".npz" to its name
            np.savez(f, spec=_bytes(spec), fingerprint=_bytes(fingerprint()),
                     **{c: rows[c].to_numpy() for c in COLUMNS})

    try:
        atomic_write(_path(where, spec), write)  # readable by whom the umask allows
        _prune(where)
    except OSError:
        pass


def _prune(where: Path, keep: int = MAX_ENTRIES) -> None:
    """Down to three quarters of `keep` entries, least recently used first, once over it."""
    entries = [e for e in os.scandir(where) if e.name.endswith(".npz")]
    if len(entries) <= keep:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for e in entries[: len(entries) - keep * 3 // 4]:
        with contextlib.suppress(OSError):
            os.unlink(e.path)
