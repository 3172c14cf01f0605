"""Streaming trace readers.

Every reader is an iterable of :class:`Chunk` = ``(pages, is_write, times)`` with at most
``chunk`` references each; memory is bounded by a few input blocks plus one chunk, so
multi-GB traces (optionally zstd-compressed) stream through.

Address formats (lackey, din, pin) give ``page = address >> log2(page_size)``. Object formats
(txt, csv, oracleGeneral) give ``page = obj_id`` unless ``ids_are_addresses=True``.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import _kernels
from ._io import (
    BLOCK_SIZE,
    MAX_LINE,
    LineTooLong,
    Source,
    is_path,
    iter_line_blocks,
    open_input,
    read_into,
    sniff,
    source_name,
)
from .errors import TraceFormatError
from .oracle import ORACLE_CHECKED, ORACLE_DTYPE, ORACLE_RECORD, PLAUSIBLE, oracle_problem

DEFAULT_CHUNK = 1 << 20
DEFAULT_PAGE_SIZE = 4096
MAX_EXAMPLES = 5


class Chunk(NamedTuple):
    """One batch of references. ``times`` is None for formats without timestamps."""

    pages: np.ndarray  # int64 page numbers (or object ids)
    is_write: np.ndarray  # bool
    times: np.ndarray | None  # float64


def page_shift(page_size: int) -> int:
    """log2(page_size); page_size must be a positive power of two."""
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int | np.integer)
        or page_size <= 0
        or page_size & (page_size - 1)
    ):
        raise ValueError(f"page size must be a positive power of two, got {page_size!r}")
    return int(page_size).bit_length() - 1


def _quote(text: str, limit: int = 40) -> str:
    text = text.strip()
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


class TraceReader:
    """Base class: iterate it to get chunks; re-iterating a path re-reads the file.

    After (or during) iteration: ``lines`` (input lines or binary records seen), ``refs``
    (references yielded), ``skipped`` (bad lines dropped under ``skip_bad_lines``) and
    ``skipped_examples`` (the first few ``(line_or_offset, message)`` pairs).
    """

    format: ClassVar[str] = ""
    binary: ClassVar[bool] = False

    def __init__(
        self,
        source: Source,
        *,
        chunk: int = DEFAULT_CHUNK,
        page_size: int = DEFAULT_PAGE_SIZE,
        skip_bad_lines: bool = False,
    ) -> None:
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        self.source = source
        self.name = source_name(source)
        self.chunk = chunk
        self.page_size = page_size
        self.shift = page_shift(page_size)
        self.skip_bad_lines = skip_bad_lines
        self._reset()

    def _reset(self) -> None:
        self.lines = 0
        self.refs = 0
        self.skipped = 0
        self.skipped_examples: list[tuple[int, str]] = []

    def __iter__(self) -> Iterator[Chunk]:
        self._reset()
        with open_input(self.source) as stream:
            for c in self._chunks(stream):
                self.refs += len(c.pages)
                yield c

    def _chunks(self, stream: Any) -> Iterator[Chunk]:
        raise NotImplementedError

    def _bad(self, where: int, message: str, unit: str = "line") -> None:
        """Raise, or (with skip_bad_lines) count and remember the first few examples."""
        if not self.skip_bad_lines:
            raise TraceFormatError(self.name, where, message, unit=unit)
        self.skipped += 1
        if len(self.skipped_examples) < MAX_EXAMPLES:
            self.skipped_examples.append((where, message))

    def __repr__(self) -> str:
        cls = type(self).__name__
        return f"{cls}({self.name!r}, chunk={self.chunk}, page_size={self.page_size})"


class _KernelReader(TraceReader):
    """Text formats parsed by a numba kernel; Python only explains bad lines."""

    _kernel: ClassVar[Any]

    def __init__(self, source: Source, *, include_instructions: bool = True, **kw: Any) -> None:
        super().__init__(source, **kw)
        self.include_instructions = include_instructions

    def _kernel_shift(self) -> int:
        return self.shift

    def _explain(self, line: str) -> str:
        raise NotImplementedError

    def _chunks(self, stream: Any) -> Iterator[Chunk]:
        kernel = type(self)._kernel
        cap = self.chunk
        shift = self._kernel_shift()
        incl = self.include_instructions
        pages = np.empty(cap, np.int64)
        writes = np.empty(cap, np.bool_)
        fill = 0
        line_no = 1  # number of the next line to parse
        blocks = iter_line_blocks(stream, BLOCK_SIZE)
        while True:
            try:
                data, end = next(blocks)
            except StopIteration:
                break
            except LineTooLong:
                # Not skippable: there is no line structure to resynchronise on.
                raise TraceFormatError(
                    self.name, line_no, f"no newline within {MAX_LINE} bytes (binary file?)"
                ) from None
            buf = np.frombuffer(data, np.uint8)
            pos = 0
            while pos < end:
                pos, fill, nl, status = kernel(buf, pos, end, pages, writes, fill, shift, incl)
                line_no += nl
                if status == _kernels.FULL:
                    # fill may be < cap: a lackey line whose pages do not all fit left a gap
                    yield Chunk(pages[:fill], writes[:fill], None)
                    pages = np.empty(cap, np.int64)
                    writes = np.empty(cap, np.bool_)
                    fill = 0
                elif status == _kernels.BAD:
                    eol = data.find(b"\n", pos, end)
                    eol = end if eol < 0 else eol
                    text = data[pos:eol].decode("utf-8", "replace")
                    self._bad(line_no, self._explain(text))
                    pos = eol + 1
                    line_no += 1
            self.lines = line_no - 1
            del data, buf  # let the block go before the next read (bounded memory)
        if fill:
            if fill < cap // 2:  # don't pin a mostly empty chunk-sized buffer in the caller
                yield Chunk(pages[:fill].copy(), writes[:fill].copy(), None)
            else:
                yield Chunk(pages[:fill], writes[:fill], None)


_HEX = r"(?:0[xX])?[0-9a-fA-F]+"
_PTR = r"(?:(?:0[xX])?[0-9a-fA-F]+|\(nil\))"


def _hex_problem(tok: str) -> str | None:
    """Why ``tok`` is not a 64-bit hex address, or None if it is one."""
    body = tok[2:] if tok[:2].lower() == "0x" else tok
    if not body or not re.fullmatch(r"[0-9a-fA-F]+", body):
        return "not a hex number"
    if len(body) > 16:
        return "more than 16 hex digits"
    return None


class LackeyReader(_KernelReader):
    """valgrind ``--tool=lackey --trace-mem=yes``: ``I  04001234,3`` / `` L addr,size`` / S / M.

    ``M`` (modify) is one write reference. An access whose last byte lies on the next page
    touches both pages (one reference each). ``==pid==`` / ``--pid--`` lines are skipped.
    """

    format = "lackey"
    _kernel = _kernels.parse_lackey

    def _explain(self, line: str) -> str:
        s = line.strip()
        kind = s[:1]
        if kind not in ("I", "L", "S", "M"):
            tok = s.split()[0] if s.split() else s
            return f"expected a record type I, L, S or M, got {_quote(tok)}"
        rest = s[1:]
        if rest and not rest[0].isspace():
            return f"expected a space after {kind!r}, got {_quote(s)}"
        rest = rest.strip()
        m = re.fullmatch(r"(\S+?),(\S*)", rest)
        if not m:
            return f"expected 'addr,size' after {kind!r}, got {_quote(rest)}"
        addr, size = m.groups()
        why = _hex_problem(addr)
        if why:
            return f"bad address {_quote(addr)} after {kind!r}: {why}"
        if not size.isdigit() or not size.isascii():
            return f"bad size {_quote(size)} after {kind!r}: expected a decimal byte count"
        a, n = int(addr, 16), int(size)
        npages = ((a + max(n, 1) - 1) >> self.shift) - (a >> self.shift) + 1
        if npages > self.chunk:
            return f"access of {n} bytes spans {npages} pages, more than chunk={self.chunk}"
        return f"malformed lackey record {_quote(s)}"


class DinReader(_KernelReader):
    """Dinero IV ``din``: ``label address`` (0 read, 1 write, 2 ifetch; 3/4 skipped)."""

    format = "din"
    _kernel = _kernels.parse_din

    def _explain(self, line: str) -> str:
        toks = line.split()
        label = toks[0]
        if not label.isdigit() or not label.isascii():
            return f"expected a numeric label 0-4, got {_quote(label)}"
        if int(label) > 4:
            return f"unknown label {label} (expected 0 read, 1 write, 2 ifetch, 3, 4)"
        if len(toks) < 2:
            return f"missing address after label {label}"
        if not line.strip()[len(label) :][:1].isspace():
            return f"expected a space after label {label}, got {_quote(line)}"
        why = _hex_problem(toks[1])
        if why:
            return f"bad address {_quote(toks[1])} after label {label}: {why}"
        return f"malformed din record {_quote(line)}"


class PinReader(_KernelReader):
    """Intel Pin pinatrace: ``0x40052d: R 0x7ffd1234`` / ``W``; ``#`` lines (``#eof``) skipped."""

    format = "pin"
    _kernel = _kernels.parse_pin

    def __init__(self, source: Source, **kw: Any) -> None:
        kw.pop("include_instructions", None)  # pinatrace has data references only
        super().__init__(source, **kw)

    def _explain(self, line: str) -> str:
        s = line.strip()
        m = re.match(rf"({_PTR}):", s)
        if not m:
            tok = s.split()[0]
            return f"expected 'ip:' (hex instruction address and colon), got {_quote(tok)}"
        if len(m.group(1)) > 18 and m.group(1) != "(nil)":
            return f"bad instruction address {_quote(m.group(1))}: more than 16 hex digits"
        rest = s[m.end() :]
        if not rest[:1].isspace():
            return f"expected a space after {m.group(0)!r}, got {_quote(s)}"
        toks = rest.split()
        if not toks or toks[0] not in ("R", "W"):
            got = toks[0] if toks else ""
            return f"expected R or W after {m.group(0)!r}, got {_quote(got)}"
        if len(toks) < 2:
            return f"missing address after {toks[0]!r}"
        if len(toks) > 2:
            return f"unexpected text after the address: {_quote(' '.join(toks[2:]))}"
        why = None if toks[1] == "(nil)" else _hex_problem(toks[1])
        if why:
            return f"bad address {_quote(toks[1])} after {toks[0]!r}: {why}"
        return f"malformed pinatrace record {_quote(s)}"


class TxtReader(_KernelReader):
    """libCacheSim plain text: one decimal object id per line (the id is the page)."""

    format = "txt"
    _kernel = _kernels.parse_txt

    def __init__(self, source: Source, *, ids_are_addresses: bool = False, **kw: Any) -> None:
        kw.pop("include_instructions", None)
        super().__init__(source, **kw)
        self.ids_are_addresses = ids_are_addresses

    def _kernel_shift(self) -> int:
        return self.shift if self.ids_are_addresses else 0

    def _explain(self, line: str) -> str:
        s = line.strip()
        if s.isdigit() and s.isascii():
            return f"object id {s} does not fit in 64 bits"
        return f"expected a decimal object id, got {_quote(s)}"


# --- libCacheSim csv -------------------------------------------------------------------------

_OBJ_NAMES = ("obj_id", "objid", "obj", "object_id", "key", "addr", "address", "page", "id")
_TIME_NAMES = ("time", "timestamp", "clock_time", "ts", "t")
_OP_NAMES = ("op", "operation", "req_op", "rw", "is_write")
_READ_OPS = ("r", "read", "get", "gets", "l", "load", "i", "ifetch", "0", "false")
_WRITE_OPS = ("w", "write", "set", "put", "s", "store", "m", "modify", "update", "1", "true")
OPS: dict[str, bool] = {k: False for k in _READ_OPS} | {k: True for k in _WRITE_OPS}


def _parse_obj(tok: str) -> int:
    t = tok.strip()
    v = int(t, 16) if t[:2].lower() == "0x" else int(t, 10)
    if not 0 <= v < 1 << 64:
        raise ValueError
    return v


class CsvReader(TraceReader):
    """libCacheSim-style csv with a header row.

    ``obj_col``/``time_col``/``op_col`` are column names or 0-based indices; by default the
    object column is the first header named like obj_id/key/addr/..., the time column like
    time/timestamp, the op column like op/operation (absent columns: no times / all reads).
    Op values: read/get/r/0 are reads; write/set/w/1/... are writes (case-insensitive).
    Quoted fields are supported; fields may not contain newlines.
    """

    format = "csv"

    def __init__(
        self,
        source: Source,
        *,
        obj_col: str | int | None = None,
        time_col: str | int | None = None,
        op_col: str | int | None = None,
        delimiter: str = ",",
        has_header: bool = True,
        ids_are_addresses: bool = False,
        **kw: Any,
    ) -> None:
        kw.pop("include_instructions", None)
        super().__init__(source, **kw)
        for spec in (obj_col, time_col, op_col):
            if isinstance(spec, int) and spec < 0:
                raise ValueError(f"csv column indices are 0-based and >= 0, got {spec}")
        if len(delimiter) != 1:
            raise ValueError(f"csv delimiter must be one character, got {delimiter!r}")
        self.obj_col, self.time_col, self.op_col = obj_col, time_col, op_col
        self.delimiter = delimiter
        self.has_header = has_header
        self.ids_are_addresses = ids_are_addresses
        self.columns: list[str] | None = None

    # column resolution -------------------------------------------------------------------
    def _resolve(
        self, spec: str | int | None, names: tuple[str, ...], header: list[str] | None, line: int
    ) -> int | None:
        if isinstance(spec, int):
            return spec
        if spec is not None and spec.isdigit():
            return int(spec)
        if header is None:
            if spec is not None:
                raise TraceFormatError(self.name, line, f"column {spec!r} named but no header")
            return None
        low = [h.strip().lower() for h in header]
        if spec is not None:
            if spec.lower() not in low:
                raise TraceFormatError(
                    self.name, line, f"no column named {spec!r} in header {','.join(header)!r}"
                )
            return low.index(spec.lower())
        for n in names:
            if n in low:
                return low.index(n)
        return None

    def _setup(self, header: list[str] | None, line: int) -> tuple[int, int | None, int | None]:
        oi = self._resolve(self.obj_col, _OBJ_NAMES, header, line)
        ti = self._resolve(self.time_col, _TIME_NAMES, header, line)
        pi = self._resolve(self.op_col, _OP_NAMES, header, line)
        if oi is None:
            if header is None:
                oi = 0
            else:
                raise TraceFormatError(
                    self.name,
                    line,
                    f"no object id column in header {','.join(header)!r} "
                    f"(looked for {', '.join(_OBJ_NAMES)}; name it with obj_col)",
                )
        self.columns = header
        return oi, ti, pi

    # parsing -----------------------------------------------------------------------------
    def _chunks(self, stream: Any) -> Iterator[Chunk]:
        line_no = 1
        cols: tuple[int, int | None, int | None] | None = None
        pend: list[Chunk] = []
        npend = 0
        for data in self._blocks(stream):
            first = line_no
            line_no += data.count(b"\n") + (not data.endswith(b"\n"))
            self.lines = line_no - 1  # also tells _blocks where a too-long line starts
            if cols is None:
                # Header (or, without one, column setup) comes from the first non-blank line.
                pos = 0
                while pos < len(data):
                    eol = data.find(b"\n", pos)
                    eol = len(data) if eol < 0 else eol
                    if data[pos:eol].strip():
                        break
                    pos, first = eol + 1, first + 1
                if pos >= len(data):
                    continue
                if self.has_header:
                    head = self._decode(data[pos:eol], first)
                    header = next(csv.reader([head], delimiter=self.delimiter))
                    cols = self._setup(header, first)
                    pos, first = eol + 1, first + 1
                else:
                    cols = self._setup(None, first)
                data = data[pos:]
            c = self._parse(data, first, cols)
            if c is None:
                continue
            # Re-batch to exactly `chunk` references (blocks hold a variable number of lines).
            pend.append(c)
            npend += len(c.pages)
            while npend >= self.chunk:
                out, pend = _take(pend, self.chunk)
                npend -= self.chunk
                yield out
        if npend:
            out, _ = _take(pend, npend)
            yield out

    def _decode(self, data: bytes, first: int) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = first + data.count(b"\n", 0, e.start)
            raise TraceFormatError(self.name, bad, "not UTF-8 text") from None

    def _blocks(self, stream: Any) -> Iterator[bytes]:
        blocks = iter_line_blocks(stream, BLOCK_SIZE)
        while True:
            try:
                data, end = next(blocks)
                yield data if end == len(data) else data[:end]
                del data
            except StopIteration:
                return
            except LineTooLong:
                raise TraceFormatError(
                    self.name, self.lines + 1, f"no newline within {MAX_LINE} bytes (binary file?)"
                ) from None

    def _parse(self, data: bytes, first: int, cols: tuple) -> Chunk | None:
        oi, ti, pi = cols
        need = max(c for c in cols if c is not None) + 1
        d = self.delimiter
        body = data[:-1] if data.endswith(b"\n") else data
        if not body:
            return None
        text = self._decode(body, first)
        if ord(d) < 128 and b'"' not in body and b"\r" not in body:
            # Fast path: if every row has the same number of fields (checked with numpy on the
            # bytes), one flat split gives each column as a stride: no per-row lists, which
            # also keeps the GC quiet. Anything irregular goes to the csv module row by row.
            b = np.frombuffer(body, np.uint8)
            ends = np.append(np.flatnonzero(b == 10), len(b))
            per_line = np.diff(np.searchsorted(np.flatnonzero(b == ord(d)), ends), prepend=0)
            starts = np.append(0, ends[:-1] + 1)
            w = int(per_line[0]) + 1
            if w >= need and (per_line == w - 1).all() and (ends > starts).all():
                fast = self._fast(text.replace("\n", d).split(d), w, len(ends), oi, ti, pi)
                if fast is not None:
                    return fast
        return self._slow(text.split("\n"), first, oi, ti, pi, need)

    def _fast(
        self, flat: list[str], w: int, n: int, oi: int, ti: int | None, pi: int | None
    ) -> Chunk | None:
        try:
            ids = np.array(flat[oi::w], dtype=np.uint64)
            times = np.array(flat[ti::w], dtype=np.float64) if ti is not None else None
            if pi is not None:
                opcol = flat[pi::w]
                table = {v: OPS[v.strip().lower()] for v in set(opcol)}
                is_write = np.fromiter(map(table.__getitem__, opcol), np.bool_, n)
            else:
                is_write = np.zeros(n, np.bool_)
        except (ValueError, KeyError, OverflowError, TypeError):
            return None
        return Chunk(self._pages(ids), is_write, times)

    def _pages(self, ids: np.ndarray) -> np.ndarray:
        if self.ids_are_addresses:
            ids = ids >> np.uint64(self.shift)
        return ids.astype(np.int64)  # bit reinterpretation for ids >= 2**63

    def _slow(
        self, lines: list[str], first: int, oi: int, ti: int | None, pi: int | None, need: int
    ) -> Chunk | None:
        ids: list[int] = []
        times: list[float] = []
        ws: list[bool] = []
        for k, row in enumerate(csv.reader(lines, delimiter=self.delimiter)):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            ln = first + k
            if len(row) < need:
                self._bad(ln, f"expected at least {need} fields, got {len(row)}")
                continue
            try:
                obj = _parse_obj(row[oi])
            except ValueError:
                self._bad(ln, f"bad object id {_quote(row[oi])} in column {oi}")
                continue
            t = 0.0
            if ti is not None:
                try:
                    t = float(row[ti])
                except ValueError:
                    self._bad(ln, f"bad time {_quote(row[ti])} in column {ti}")
                    continue
            w = False
            if pi is not None:
                op = row[pi].strip().lower()
                if op not in OPS:
                    self._bad(ln, f"unknown op {_quote(row[pi])} in column {pi}")
                    continue
                w = OPS[op]
            ids.append(obj)
            times.append(t)
            ws.append(w)
        if not ids:
            return None
        return Chunk(
            self._pages(np.array(ids, dtype=np.uint64)),
            np.array(ws, dtype=np.bool_),
            np.array(times, dtype=np.float64) if ti is not None else None,
        )


def _slice(c: Chunk, a: int, b: int) -> Chunk:
    return Chunk(c.pages[a:b], c.is_write[a:b], None if c.times is None else c.times[a:b])


def _take(pend: list[Chunk], n: int) -> tuple[Chunk, list[Chunk]]:
    """First n references of the pending chunks, and the remainder."""
    parts: list[Chunk] = []
    got = 0
    rest: list[Chunk] = []
    for i, c in enumerate(pend):
        k = len(c.pages)
        if got + k <= n:
            parts.append(c)
            got += k
            if got == n:
                rest = pend[i + 1 :]
                break
        else:
            cut = n - got
            parts.append(_slice(c, 0, cut))
            rest = [_slice(c, cut, k), *pend[i + 1 :]]
            break
    if len(parts) == 1:
        return parts[0], rest
    times = None if parts[0].times is None else np.concatenate([p.times for p in parts])
    return (
        Chunk(
            np.concatenate([p.pages for p in parts]),
            np.concatenate([p.is_write for p in parts]),
            times,
        ),
        rest,
    )


# --- libCacheSim oracleGeneral (the record and its plausibility rules: .oracle) ----------


class OracleGeneralReader(TraceReader):
    """libCacheSim oracleGeneral: packed LE {u32 clock_time; u64 obj_id; u32 size; i64 next}.

    Records are all reads (the format has no op); ``times`` is clock_time. Every record is
    kept, including obj_size == 0 ones (which libCacheSim's own reader drops by default).
    """

    format = "oracleGeneral"
    binary = True

    def __init__(self, source: Source, *, ids_are_addresses: bool = False, **kw: Any) -> None:
        kw.pop("include_instructions", None)
        super().__init__(source, **kw)
        self.ids_are_addresses = ids_are_addresses
        if is_path(source) and os.path.isfile(source):
            # Checked now too, not only when read: a scenario opens its traces before the
            # run, where a refusal is one line, not an error in the middle of the run.
            # (Regular files only: reading a named pipe's start here would lose it.)
            self._check(sniff(source, ORACLE_CHECKED * ORACLE_RECORD), 0, None)

    def _check(self, raw: Any, first: int, prev_time: int | None) -> None:
        bad = oracle_problem(raw, first, prev_time)
        if bad is not None:
            # Not skippable with skip_bad_lines: it says the whole input is something else.
            raise TraceFormatError(
                self.name,
                bad[0] * ORACLE_RECORD,
                f"{PLAUSIBLE}: record {bad[0]}: {bad[1]}",
                unit="offset",
            )

    def _chunks(self, stream: Any) -> Iterator[Chunk]:
        offset = 0
        # One input buffer reused for every chunk (the chunks' arrays are fresh ones).
        buf = np.empty(self.chunk * ORACLE_RECORD, np.uint8)
        shift = self.shift if self.ids_are_addresses else 0
        prev_time: int | None = None
        while True:
            got = read_into(stream, buf)  # short only at end of stream
            if not got:
                break
            n, rem = divmod(got, ORACLE_RECORD)
            if n and self.lines < ORACLE_CHECKED:  # streams are checked only here
                k = min(n, ORACLE_CHECKED - self.lines)
                self._check(buf[: k * ORACLE_RECORD], self.lines, prev_time)
                last = (k - 1) * ORACLE_RECORD  # clock_time is a record's first 4 bytes
                prev_time = int.from_bytes(buf[last : last + 4].tobytes(), "little")
            if n:
                ids, times = _unpack_oracle(buf[: n * ORACLE_RECORD], n, shift)
                self.lines += n
                yield Chunk(ids, np.zeros(n, np.bool_), times)
            if rem:
                self._bad(
                    offset + n * ORACLE_RECORD,
                    f"truncated record: {rem} of {ORACLE_RECORD} bytes at end of file",
                    unit="offset",
                )
                break
            offset += got


def _unpack_oracle(raw: np.ndarray, n: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids (>> shift) and float64 times of ``n`` packed records in the bytes ``raw``."""
    if sys.byteorder == "little":
        ids = np.empty(n, np.int64)
        times = np.empty(n, np.float64)
        _kernels.unpack_oracle(raw.view(np.uint64), shift, ids, times)
        return ids, times
    rec = raw.view(ORACLE_DTYPE)
    return (rec["obj_id"] >> np.uint64(shift)).astype(np.int64), rec["clock_time"].astype(
        np.float64
    )


# --- registry --------------------------------------------------------------------------------

READERS: dict[str, type[TraceReader]] = {
    r.format: r
    for r in (LackeyReader, DinReader, PinReader, TxtReader, CsvReader, OracleGeneralReader)
}
FORMATS: tuple[str, ...] = tuple(READERS)
_ALIASES = {
    "valgrind": "lackey",
    "dinero": "din",
    "pinatrace": "pin",
    "plain": "txt",
    "text": "txt",
    "oracle": "oracleGeneral",
    "oraclegeneral": "oracleGeneral",
    "oraclegeneral.bin": "oracleGeneral",
    "bin": "oracleGeneral",
}


def normalize_format(name: str) -> str:
    """Canonical format name (case-insensitive, a few aliases); ValueError if unknown."""
    key = name.strip().lower()
    for f in FORMATS:
        if f.lower() == key:
            return f
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"unknown trace format {name!r} (known: {', '.join(FORMATS)})")


def open_trace(source: Source, format: str | None = None, **options: Any) -> TraceReader:
    """Reader for ``source`` (a path or a binary file object).

    ``format`` defaults to :func:`detect_format` (paths only). ``options`` are passed to the
    reader class: chunk, page_size, skip_bad_lines, and per format include_instructions
    (lackey, din), ids_are_addresses (txt, csv, oracleGeneral), obj_col/time_col/op_col/
    delimiter/has_header (csv). Options that a format does not use are ignored.
    """
    if format is None:
        if not isinstance(source, str | os.PathLike):
            raise ValueError("format must be given when reading from a file object")
        from .detect import detect_format

        try:
            format = detect_format(source)
        except TraceFormatError:
            raise
        except ValueError as e:  # name the file: a scenario's trace error is shown as is
            raise TraceFormatError(source, None, str(e)) from None
    cls = READERS[normalize_format(format)]
    allowed = _accepted_options(cls)
    return cls(source, **{k: v for k, v in options.items() if k in allowed})


def _accepted_options(cls: type[TraceReader]) -> set[str]:
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {p for p in inspect.signature(init).parameters if p not in ("self", "source")}
    names.discard("kw")
    return names


def iter_chunks(source: Source, format: str | None = None, **options: Any) -> Iterator[Chunk]:
    """Shorthand for ``iter(open_trace(source, format, **options))``."""
    return iter(open_trace(source, format, **options))
