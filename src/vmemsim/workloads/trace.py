"""Trace replay as a workload: a process whose references come from a trace file.

The file is streamed (bounded memory) through the trace readers; page ids are densified in order
of first use (PageMap) into the process's virtual pages, so `size` must cover the trace's distinct
pages. Before each tick the engine refills the process's window in the VM's trace buffer; the
compiled loop consumes it at the process's rate. With `pace = true` and a format that has
timestamps (csv with a time column, oracleGeneral), a reference is not handed to the process
before its timestamp (seconds, relative to the first) has come in simulated time: the process
idles when it is ahead of the trace, and falls behind it when memory pressure slows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vmemsim.traces import PageMap, open_trace

WINDOW = 1 << 16  # references per process buffered ahead of the compiled loop


class TraceWorkloadError(ValueError):
    """The trace cannot be replayed as configured (one line: file and problem)."""


class TraceFeed:
    def __init__(self, path: str, fmt: str | None, size_pages: int, loop: bool,
                 page_size: int = 4096, pace: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise TraceWorkloadError(f"{path}: trace file not found")
        self.fmt = fmt
        self.loop = loop
        self.page_size = page_size
        self.size = size_pages
        self.map = PageMap(limit=size_pages)
        self._open()
        self._pending = np.zeros(0, dtype=np.int64)
        self._ptimes: np.ndarray | None = None
        self.pace = pace
        self._t0: float | None = None
        self._offset = 0.0  # trace time already elapsed in earlier passes (looping)
        self._last = 0.0
        self.done = False
        self.passes = 0

    def _open(self) -> None:
        self._chunks = iter(open_trace(self.path, self.fmt, page_size=self.page_size))

    def _next_chunk(self) -> np.ndarray | None:
        for _ in range(2):
            try:
                ch = next(self._chunks)
            except StopIteration:
                self.passes += 1
                if not self.loop:
                    return None
                self._open()
                self._offset = self._last
                self._t0 = None
                continue
            if self.pace:
                if ch.times is None:
                    raise TraceWorkloadError(
                        f"{self.path}: pace = true, but this trace format has no timestamps")
                if self._t0 is None and ch.times.size:
                    self._t0 = float(ch.times[0])
                t = ch.times - (self._t0 or 0.0) + self._offset
                if t.size:
                    self._last = float(t[-1])
                self._ptimes = t
            try:
                dense = self.map(ch.pages).astype(np.int64)
            except OverflowError:
                raise TraceWorkloadError(
                    f"{self.path}: the trace touches more distinct pages than the process "
                    f"size ({self.size} pages): raise the process's size") from None
            return (dense << 1) | ch.is_write.astype(np.int64)
        return None

    def fill(self, window: np.ndarray, keep: np.ndarray, until: float = np.inf) -> int:
        """Write `keep` (unconsumed entries) then new entries into `window`; return the count.

        With pacing, only entries whose trace time is at most `until` (seconds since the
        process started) are handed over.
        """
        n = keep.size
        window[:n] = keep
        while n < window.size and not self.done:
            if self._pending.size == 0:
                nxt = self._next_chunk()
                if nxt is None:
                    self.done = True
                    break
                self._pending = nxt
            take = min(window.size - n, self._pending.size)
            if self.pace and self._ptimes is not None:
                due = int(np.searchsorted(self._ptimes[:take], until, side="right"))
                take = due
            window[n: n + take] = self._pending[:take]
            self._pending = self._pending[take:]
            if self.pace and self._ptimes is not None:
                self._ptimes = self._ptimes[take:]
                if self._pending.size:
                    n += take
                    break  # the rest is not due yet
            n += take
        return n
