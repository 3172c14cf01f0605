"""Forked helper processes: the baseline's workers (`baseline.Baseline`, through the runner)
and the report's figures (`report.plots.FigureJob`). A fork inherits everything already
loaded (kernels, matplotlib, the result itself) with no start-up; these are the rules both
follow.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def can_fork() -> bool:
    """A second core, and a process that may fork: the platform has fork, the process is not a
    daemonic one (a multiprocessing pool's worker), and no other thread runs (a notebook's: a
    fork copies their locks as they are)."""
    return (cores() >= 2 and "fork" in mp.get_all_start_methods()
            and not mp.current_process().daemon and threading.active_count() == 1)


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Ctrl-C is the parent's to handle: block it across the forks, so that no child runs
    Python's handler before `child_start` ignores it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def child_start(parent: int, deathsig: int = signal.SIGKILL) -> None:
    """First thing in a forked child: ignore Ctrl-C (the parent decides), and die with the
    parent, even if it is killed by SIGKILL (Linux's PR_SET_PDEATHSIG sends `deathsig`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such call
        ctypes.CDLL(None, use_errno=True).prctl(1, int(deathsig))
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def worker_start(parent: int) -> None:
    """A pool worker's start (vmemsim.runner, fork method). Ctrl-C is blocked rather than
    ignored, and the worker watches for its parent's death rather than asking the kernel
    (PR_SET_PDEATHSIG): the pool may fork it from a thread other than the main one (a
    finished job's callback starts the next worker), and the kernel's signal follows the
    thread that forked, not the process, so it would kill the worker when that thread ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if os.getppid() != parent:  # the parent died already
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="vmemsim-parent-watch").start()
