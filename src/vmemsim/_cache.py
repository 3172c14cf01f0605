"""Where vmemsim keeps what it can reuse between runs, keyed on a hash of its own sources:
numba's compiled kernels, and the baselines of `vmemsim.basecache`.

Numba checks only the timestamp of the file that defines a function, not of the files whose
functions it inlines, so editing a policy or a layout constant could leave a stale kernel in
its cache. Keying the cache folder on every source file avoids that, at the cost of one
recompilation (16-20 s on a 2-core machine) after any change to the package.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path


@cache
def source_hash() -> str:
    """A hash of every source file of the package (read once per process)."""
    root = Path(__file__).parent
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_root() -> Path:
    """$XDG_CACHE_HOME/vmemsim, or ~/.cache/vmemsim."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vmemsim"


def configure() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    folder = cache_root() / f"numba-{source_hash()[:16]}"
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    try:  # numba imported first (a notebook): its config was already read
        import sys

        if "numba" in sys.modules:
            sys.modules["numba"].config.CACHE_DIR = str(folder)
    except AttributeError:
        pass
