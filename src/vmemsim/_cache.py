"""Where numba keeps compiled kernels: a folder named by a hash of vmemsim's own sources.

Numba checks only the timestamp of the file that defines a function, not of the files whose
functions it inlines, so editing a policy or a layout constant could leave a stale kernel in
its cache. Keying the cache folder on every source file avoids that, at the cost of one
recompilation (about a minute) after any change to the package.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def configure() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    root = Path(__file__).parent
    h = hashlib.sha1()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "vmemsim" / f"numba-{h.hexdigest()[:16]}"
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    try:  # numba imported first (a notebook): its config was already read
        import sys

        if "numba" in sys.modules:
            sys.modules["numba"].config.CACHE_DIR = str(folder)
    except AttributeError:
        pass
