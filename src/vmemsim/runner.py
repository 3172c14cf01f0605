"""One runner for many independent simulations: submit picklable jobs, gather their results.

On one machine it is a `concurrent.futures.ProcessPoolExecutor` (one worker process per core,
or `workers`); given a Dask scheduler (`scheduler="tcp://host:8786"`, or the environment's
`DASK_SCHEDULER_ADDRESS`) it is that cluster, through the same code: `Runner.map` submits
every job, yields each result as it finishes, and cancels what is left when the caller stops
early. A worker that dies (killed, out of memory) fails its futures; those jobs are submitted
again, at most `retries` times each. An error raised by the job itself is not retried (it
would fail the same way): it stops the run as a `JobError` naming the job.

    from vmemsim.jobs import SimJob, run_simulation
    from vmemsim.runner import Runner
    with Runner(workers=2) as r:
        for i, result in r.map(run_simulation, [SimJob(sc1), SimJob(sc2)]):
            ...

Dask is imported only when a scheduler is named, so that `vmemsim run` does not load it.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vmemsim import _fork

if TYPE_CHECKING:
    pass

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
RETRIES = 2
POLL_S = 0.5  # a wait returns this often with nothing done, so that Ctrl-C is seen


class JobError(RuntimeError):
    """A job raised (not a worker death): `index` is its place in the jobs given to map."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"job {index}: {type(cause).__name__}: {cause}")
        self.index = index
        self.cause = cause


class WorkerLost(RuntimeError):
    """A job whose worker died more than `retries` times."""


@dataclass
class _Task:
    index: int
    item: Any
    attempts: int = 0
    future: Any = field(default=None, repr=False)


class _Local:
    """Backend on this machine: one single-process pool per worker, each given one job at a
    time from a queue here. A dead worker breaks its ProcessPoolExecutor and fails every
    future in it; with one job per pool that is exactly the job it was running, which alone
    is retried (the others are not charged for it), and that pool alone is made anew."""

    def __init__(self, workers: int | None, method: str = "forkserver") -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        # forkserver: workers start from a clean process (no threads, such as a progress
        # bar's, copied mid-lock by fork) that has already imported the engine, so each
        # starts in milliseconds instead of importing numba and pandas again. fork (the
        # baseline's): no re-import of the caller's main module, so a script that calls
        # simulate() at its top level needs no `if __name__ == "__main__"` guard; the
        # caller starts the runner before any thread of its own.
        self.method = method
        self.ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            self.ctx.set_forkserver_preload(["vmemsim.baseline"])
        self.slots: list[cf.ProcessPoolExecutor | None] = [None] * self.workers
        self.busy = [False] * self.workers
        self.where: dict[cf.Future[Any], int] = {}  # a running job's slot
        self.queue: deque[tuple[cf.Future[Any], Callable[[Any], Any], Any]] = deque()
        self.lock = threading.RLock()  # a done callback may run in the submitting thread

    def submit(self, fn: Callable[[Any], Any], item: Any) -> cf.Future[Any]:  # noqa: ANN401
        outer: cf.Future[Any] = cf.Future()
        with self.lock:
            self.queue.append((outer, fn, item))
            self._dispatch()
        return outer

    def _dispatch(self) -> None:
        with self.lock:
            while self.queue and not all(self.busy):
                outer, fn, item = self.queue.popleft()
                if not outer.set_running_or_notify_cancel():
                    continue  # cancelled while it waited
                k = self.busy.index(False)
                self.busy[k] = True
                try:
                    inner = self._slot(k).submit(fn, item)
                except cf.process.BrokenProcessPool:  # its worker died while idle
                    self.slots[k] = None
                    inner = self._slot(k).submit(fn, item)
                self.where[outer] = k
                inner.add_done_callback(functools.partial(self._finished, k, outer))

    def _slot(self, k: int) -> cf.ProcessPoolExecutor:
        slot = self.slots[k]
        if slot is None:
            # A forked worker ignores Ctrl-C (the caller decides) and dies with its parent.
            init = (_fork.worker_start, (os.getpid(),)) if self.method == "fork" else (None, ())
            slot = self.slots[k] = cf.ProcessPoolExecutor(1, mp_context=self.ctx,
                                                          initializer=init[0],
                                                          initargs=init[1])
        return slot

    def _finished(self, k: int, outer: cf.Future[Any], inner: cf.Future[Any]) -> None:
        with self.lock:
            self.busy[k] = False
            self.where.pop(outer, None)
            exc = inner.exception() if not inner.cancelled() else cf.CancelledError()
            if isinstance(exc, cf.process.BrokenProcessPool):
                broken, self.slots[k] = self.slots[k], None
                if broken is not None:
                    broken.shutdown(wait=False)
            if exc is None:
                outer.set_result(inner.result())
            else:
                outer.set_exception(exc)
            self._dispatch()

    def wait(self, futures: set[Any]) -> set[Any]:
        done, _ = cf.wait(futures, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
        return done

    def lost(self, exc: BaseException) -> bool:
        return isinstance(exc, cf.process.BrokenProcessPool)

    def abort(self, futures: list[Any]) -> None:
        with self.lock:
            for f in futures:
                f.cancel()  # the ones still queued here
            self.queue.clear()
            for k, slot in enumerate(self.slots):
                if slot is not None and self.busy[k]:
                    # A job still running that nobody will read: stop its worker rather than
                    # wait for it (shutdown(wait=True) would finish the simulation first).
                    for proc in list(getattr(slot, "_processes", {}).values()):
                        proc.terminate()
                    slot.shutdown(wait=False, cancel_futures=True)
                    self.slots[k] = None

    def stop(self, future: Any) -> None:  # noqa: ANN401
        """Cancel one job: if it waits, drop it; if it runs, stop its worker alone (the other
        workers' jobs go on)."""
        with self.lock:
            if future.cancel():
                return
            k = self.where.get(future)
            slot = self.slots[k] if k is not None else None
            if slot is None:
                return
            for proc in list(getattr(slot, "_processes", {}).values()):
                proc.terminate()
            slot.shutdown(wait=False, cancel_futures=True)
            self.slots[k] = None

    def pids(self) -> list[int]:
        with self.lock:
            return sorted(pid for slot in self.slots if slot is not None
                          for pid in getattr(slot, "_processes", None) or {})

    def close(self) -> None:
        with self.lock:
            slots, self.slots = self.slots, [None] * self.workers
        for slot in slots:
            if slot is not None:
                slot.shutdown(wait=True, cancel_futures=True)


class _Dask:
    """Backend on a Dask distributed cluster. The scheduler itself reruns a task whose worker
    died (up to distributed.scheduler.allowed-failures) before failing it with KilledWorker;
    that failure is then one of our retries too."""

    def __init__(self, scheduler: Any) -> None:  # noqa: ANN401
        from distributed import Client

        # An address, or a cluster object (a LocalCluster in tests).
        self.client = Client(scheduler)

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:  # noqa: ANN401
        return self.client.submit(fn, item, pure=False)

    def wait(self, futures: set[Any]) -> set[Any]:
        from distributed import wait

        try:
            done, _ = wait(list(futures), timeout=POLL_S, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def lost(self, exc: BaseException) -> bool:
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        return isinstance(exc, KilledWorker | CommClosedError)

    def abort(self, futures: list[Any]) -> None:
        if futures:
            self.client.cancel(futures)

    def stop(self, future: Any) -> None:  # noqa: ANN401
        self.client.cancel([future])

    def pids(self) -> list[int]:
        return sorted(self.client.run(os.getpid).values())

    def close(self) -> None:
        self.client.close()


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The Dask scheduler named by the caller, else by DASK_SCHEDULER_ADDRESS; None: local."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


class Runner:
    """Runs independent jobs on local worker processes, or on a Dask cluster when one is named
    (an address, a `distributed` cluster object, or DASK_SCHEDULER_ADDRESS)."""

    def __init__(self, workers: int | None = None, scheduler: Any = None,  # noqa: ANN401
                 retries: int = RETRIES, method: str = "forkserver") -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        address = scheduler if scheduler is not None and not isinstance(scheduler, str) \
            else scheduler_address(scheduler)
        self.backend: _Local | _Dask = _Dask(address) if address else _Local(workers, method)
        self.where = f"Dask scheduler {address}" if isinstance(address, str) else (
            "a Dask cluster" if address else f"{self.backend.workers} local processes")
        self.retries = retries
        self.lost = 0  # workers lost (jobs submitted again), for the caller to report

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Any:  # noqa: ANN401
        """One job, now: its future (a worker's death fails it; what that means is the
        caller's: the baseline runs a lost group in its own process)."""
        return self.backend.submit(fn, item)

    def cancel(self, future: Any) -> None:  # noqa: ANN401
        """Stop one job submitted with `submit`, whether it waits or runs; the others go on."""
        self.backend.stop(future)

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (local ones, or the Dask workers')."""
        return self.backend.pids()

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """Run fn(item) for every item; yield (index, result) as each finishes. Closing the
        iterator early (break, an exception, Ctrl-C) cancels the jobs not finished, and stops
        the local workers still running one."""
        tasks = [_Task(i, item) for i, item in enumerate(items)]
        pending: dict[Any, _Task] = {}
        try:
            for t in tasks:
                t.future = self.backend.submit(fn, t.item)
                pending[t.future] = t
            while pending:
                done = self.backend.wait(set(pending))
                failed = []
                for f in done:
                    t = pending.pop(f)
                    if self._lost(f):
                        failed.append(t)
                    elif f.exception() is not None:
                        raise JobError(t.index, f.exception()) from f.exception()
                    else:
                        yield t.index, f.result()
                if failed:
                    self._resubmit(fn, failed, pending)
        finally:
            if pending:
                self.backend.abort(list(pending))

    def _lost(self, f: Any) -> bool:  # noqa: ANN401
        exc = f.exception()
        return exc is not None and self.backend.lost(exc)

    def _resubmit(self, fn: Callable[[Any], Any], failed: list[_Task],
                  pending: dict[Any, _Task]) -> None:
        self.lost += 1
        for t in failed:
            t.attempts += 1
            if t.attempts > self.retries:
                raise WorkerLost(f"job {t.index}: its worker died {t.attempts} times")
        for t in failed:
            t.future = self.backend.submit(fn, t.item)
            pending[t.future] = t


def kill_worker(pid: int) -> None:
    """Kill one worker outright (what the out-of-memory killer does); for tests and drills."""
    os.kill(pid, signal.SIGKILL)
