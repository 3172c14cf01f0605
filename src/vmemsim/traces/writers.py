"""Trace writers: the inverse of the readers, chunk by chunk (used by ``trace convert``).

A reference is only (page, is_write, time), so writing loses what that does not hold:
lackey/din/pin get page-aligned addresses (``page << shift``) and a fixed size of 4 bytes,
instruction fetches become reads, and formats without time drop it. Formats that need a time
(csv, oracleGeneral) write the 0-based reference index when the input has none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, Any, ClassVar

import numpy as np
import zstandard

from .oracle import ORACLE_DTYPE
from .readers import (
    DEFAULT_PAGE_SIZE,
    Chunk,
    normalize_format,
    page_shift,
)

_U64 = np.uint64


class TraceWriter:
    """Write references to a path (``.zst`` suffix = zstd) or a binary file object.

    Use as a context manager, or call :meth:`close`; ``refs`` counts references written.
    """

    format: ClassVar[str] = ""

    def __init__(
        self,
        dest: str | os.PathLike[str] | IO[bytes],
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        compress: bool | None = None,
        level: int = 3,
    ) -> None:
        self.page_size = page_size
        self.shift = page_shift(page_size)
        self.refs = 0
        self._own = isinstance(dest, str | os.PathLike)
        if compress is None:
            compress = self._own and os.fspath(dest).lower().endswith((".zst", ".zstd"))
        self._file: IO[bytes] = open(dest, "wb") if self._own else dest  # type: ignore[assignment,arg-type]  # noqa: SIM115
        self._zw: Any = None
        self._out: Any = self._file
        if compress:
            self._zw = zstandard.ZstdCompressor(level=level).stream_writer(
                self._file, closefd=False
            )
            self._out = self._zw
        self._closed = False
        self._begin()

    # subclass hooks ------------------------------------------------------------------------
    def _begin(self) -> None:
        pass

    def _end(self) -> None:
        pass

    def _encode(self, pages: np.ndarray, is_write: np.ndarray, times: np.ndarray | None) -> bytes:
        raise NotImplementedError

    # public --------------------------------------------------------------------------------
    def write(
        self,
        pages: np.ndarray | Chunk,
        is_write: np.ndarray | None = None,
        times: np.ndarray | None = None,
    ) -> None:
        """Append references; accepts a :class:`Chunk` or its three arrays."""
        if isinstance(pages, Chunk):
            pages, is_write, times = pages
        pages = np.asarray(pages, dtype=np.int64)
        n = len(pages)
        is_write = np.zeros(n, np.bool_) if is_write is None else np.asarray(is_write, np.bool_)
        if len(is_write) != n or (times is not None and len(times) != n):
            raise ValueError("pages, is_write and times must have the same length")
        if n:
            self._out.write(self._encode(pages, is_write, times))
            self.refs += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._end()
            if self._zw is not None:
                self._zw.close()  # writes the frame epilogue; leaves the file open
        finally:
            if self._own:
                self._file.close()
            else:
                self._file.flush()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # helpers -------------------------------------------------------------------------------
    def _addresses(self, pages: np.ndarray) -> list[int]:
        """page << shift as Python ints; refuses pages that do not fit a 64-bit address."""
        if self.shift == 0:
            return pages.view(_U64).tolist()  # ids >= 2**63 are stored as negative int64
        bad = (pages < 0) | (pages >= 1 << (64 - self.shift))
        if bad.any():
            raise ValueError(
                f"page {int(pages[bad][0]) & 0xFFFFFFFFFFFFFFFF} does not fit a 64-bit address "
                f"with {self.page_size}-byte pages ({self.format} stores addresses)"
            )
        return (pages.astype(_U64) << _U64(self.shift)).tolist()

    def _times(self, n: int, times: np.ndarray | None) -> np.ndarray:
        if times is None:  # virtual time: the reference index
            return np.arange(self.refs, self.refs + n, dtype=np.float64)
        return np.asarray(times, dtype=np.float64)


class LackeyWriter(TraceWriter):
    """`` L addr,4`` / `` S addr,4`` (addresses printed as lackey does, %08x; size 4, or the
    page size if smaller, so that no access straddles a page)."""

    format = "lackey"

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        size = min(4, self.page_size)  # never straddle into the next page (page_size >= 1)
        fmt = (f" L %08x,{size}\n", f" S %08x,{size}\n")
        addrs = self._addresses(pages)
        return "".join([fmt[w] % a for a, w in zip(addrs, is_write.tolist(), strict=True)]).encode()


class DinWriter(TraceWriter):
    """``0 hex`` (read) / ``1 hex`` (write)."""

    format = "din"

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        fmt = ("0 %x\n", "1 %x\n")
        addrs = self._addresses(pages)
        return "".join([fmt[w] % a for a, w in zip(addrs, is_write.tolist(), strict=True)]).encode()


class PinWriter(TraceWriter):
    """``0x0: R 0x...`` / ``W``; the instruction pointer is unknown, so 0; ends with ``#eof``."""

    format = "pin"

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        fmt = ("0x0: R %#x\n", "0x0: W %#x\n")
        addrs = self._addresses(pages)
        return "".join([fmt[w] % a for a, w in zip(addrs, is_write.tolist(), strict=True)]).encode()

    def _end(self) -> None:
        self._out.write(b"#eof\n")


class TxtWriter(TraceWriter):
    """One decimal id per line (ids are written as unsigned 64-bit, like libCacheSim's)."""

    format = "txt"

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        return ("\n".join(map(str, pages.view(_U64).tolist())) + "\n").encode()


class CsvWriter(TraceWriter):
    """Header ``time,obj_id,op``; op is ``read``/``write``; integral times print as ints."""

    format = "csv"

    def _begin(self) -> None:
        self._out.write(b"time,obj_id,op\n")

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        t = self._times(len(pages), times)
        if np.all(np.isfinite(t)) and np.all(t == np.floor(t)) and np.all(np.abs(t) < 2.0**53):
            ts = t.astype(np.int64).tolist()
        else:
            ts = [repr(x) for x in t.tolist()]  # repr round-trips float64 exactly
        ops = ("read", "write")
        ids = pages.view(_U64).tolist()
        rows = [f"{a},{b},{ops[w]}\n" for a, b, w in zip(ts, ids, is_write.tolist(), strict=True)]
        return "".join(rows).encode()


class OracleGeneralWriter(TraceWriter):
    """24-byte records; obj_size = page size; next_access_vtime = -1 ("unknown").

    The true next access time needs the future of the trace (a backward pass or the whole
    trace in memory), which a streaming convert does not have; libCacheSim treats -1 as
    "no information", so only Belady-style policies lose anything. clock_time is the input
    time truncated to uint32 (or the reference index when the input has no times).
    """

    format = "oracleGeneral"

    def _encode(self, pages, is_write, times):  # type: ignore[no-untyped-def]
        t = self._times(len(pages), times)
        rec = np.empty(len(pages), ORACLE_DTYPE)
        rec["clock_time"] = np.clip(t, 0, 0xFFFFFFFF).astype(np.uint32)
        rec["obj_id"] = pages.view(_U64)
        rec["obj_size"] = min(self.page_size, 0xFFFFFFFF)
        rec["next_access_vtime"] = -1
        return rec.tobytes()


WRITERS: dict[str, type[TraceWriter]] = {
    w.format: w
    for w in (LackeyWriter, DinWriter, PinWriter, TxtWriter, CsvWriter, OracleGeneralWriter)
}


def open_writer(
    dest: str | os.PathLike[str] | IO[bytes], format: str | None = None, **options: Any
) -> TraceWriter:
    """Writer for ``dest``; ``format`` defaults to the one implied by the file name."""
    if format is None:
        from .detect import format_from_name

        if not isinstance(dest, str | os.PathLike) or (format := format_from_name(dest)) is None:
            raise ValueError("cannot tell the output format from the file name; give it")
    return WRITERS[normalize_format(format)](dest, **options)


def write_trace(
    chunks: Iterable[Chunk | tuple],
    dest: str | os.PathLike[str] | IO[bytes],
    format: str | None = None,
    **options: Any,
) -> int:
    """Write all chunks; returns the number of references written."""
    with open_writer(dest, format, **options) as w:
        for c in chunks:
            w.write(*c)
        return w.refs
