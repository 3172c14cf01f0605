"""Byte-level input/output plumbing: paths or file objects, transparent zstd, line blocks.

Everything here streams: memory use is a few blocks no matter how large the trace is.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import IO, Any

import zstandard

from .errors import TraceFormatError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BLOCK_SIZE = 1 << 22  # 4 MiB of (decompressed) input per parse step
MAX_LINE = 1 << 20  # a "line" longer than this means binary or corrupt input

Source = str | os.PathLike[str] | IO[bytes]


def source_name(src: Source) -> str:
    """Name used in error messages: the path as given, or the file object's name."""
    if isinstance(src, str | os.PathLike):
        return os.fspath(src)
    name = getattr(src, "name", None)
    return name if isinstance(name, str) else "<stream>"


def is_path(src: Source) -> bool:
    return isinstance(src, str | os.PathLike)


class _Prefixed(io.RawIOBase):
    """Replays bytes already sniffed from a stream, then reads the rest of it.

    Lets us look at the magic number of any file object (pipes, generators) without seek().
    """

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        mv = memoryview(b).cast("B")
        if self._head:
            n = min(len(mv), len(self._head))
            mv[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        readinto = getattr(self._rest, "readinto", None)
        if readinto is not None:  # straight into the caller's buffer: one copy less
            return readinto(mv) or 0
        data = self._rest.read(len(mv))
        if not data:
            return 0
        mv[: len(data)] = data
        return len(data)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        b = f.read(n)
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


class _ZstdStream:
    """Streaming zstd decoder (all frames) with bounded memory and truncation detection.

    zstandard's stream_reader silently stops at a truncated frame, so we drive a
    decompressobj ourselves: its ``eof`` tells whether the last frame was complete. Input is
    fed in pieces sized from the observed compression ratio so that one call never expands
    to much more than ~4 MiB, even for highly repetitive traces.
    """

    _TARGET = 1 << 22

    def __init__(self, raw: Any, name: str) -> None:
        self._raw = raw
        self._name = name
        self._dctx = zstandard.ZstdDecompressor()
        self._obj: Any = None  # current frame's decoder, None between frames
        self._pending = b""  # compressed bytes read but not yet fed
        self._buf = bytearray()
        self._in = 0  # compressed bytes consumed
        self._out = 0  # decompressed bytes produced
        self._done = False

    def _fill(self) -> None:
        ratio = max(1.0, self._out / self._in) if self._in else 16.0
        piece = int(min(1 << 16, max(64, self._TARGET / ratio)))
        data = self._pending[:piece]
        self._pending = self._pending[piece:]
        if not data:
            data = self._raw.read(piece)
        if not data:
            self._done = True
            if self._obj is not None:
                raise TraceFormatError(
                    self._name,
                    None,
                    f"truncated zstd stream (ends inside a frame after {self._out} "
                    "decompressed bytes)",
                )
            return
        if self._obj is None:
            self._obj = self._dctx.decompressobj()
        try:
            out = self._obj.decompress(data)
        except zstandard.ZstdError as e:
            raise TraceFormatError(
                self._name, None, f"corrupt zstd stream after {self._out} decompressed bytes: {e}"
            ) from None
        self._in += len(data)
        self._out += len(out)
        self._buf += out
        if self._obj.eof:  # frame complete; anything left over starts the next frame
            self._pending = self._obj.unused_data + self._pending
            self._obj = None

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        while len(self._buf) < n and not self._done:
            self._fill()
        if len(self._buf) <= n:
            out = bytes(self._buf)
            self._buf = bytearray()
            return out
        with memoryview(self._buf) as mv:
            out = bytes(mv[:n])
        del self._buf[:n]
        return out


@contextlib.contextmanager
def open_input(src: Source) -> Iterator[Any]:
    """Binary stream of the (decompressed) trace bytes; zstd is recognised by magic number."""
    name = source_name(src)
    with contextlib.ExitStack() as stack:
        if is_path(src):
            f: IO[bytes] = stack.enter_context(open(src, "rb", buffering=0))  # noqa: SIM115
        else:
            f = src  # type: ignore[assignment]
        head = _read_exact(f, 4)
        if head != ZSTD_MAGIC and is_path(src) and f.seekable():
            # A plain file: hand out the OS file itself, so that readers' big reads go from
            # the page cache straight into their buffers (~6x faster on 24 MB reads than the
            # buffered wrapper below, which copies every block twice).
            f.seek(0)
            yield f
            return
        raw = io.BufferedReader(_Prefixed(head, f), buffer_size=1 << 16)
        if head == ZSTD_MAGIC:
            # All frames are read: `cat a.zst b.zst` and pzstd produce multi-frame files.
            yield _ZstdStream(raw, name)
        else:
            yield raw


def read_block(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at end of stream (zstd readers return short reads)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        b = stream.read(size - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_into(stream: Any, buf: Any) -> int:
    """Fill the writable buffer ``buf``; returns the byte count, short only at end of stream.

    Uses the stream's ``readinto`` when it has one (no intermediate bytes objects).
    """
    mv = memoryview(buf).cast("B")
    readinto = getattr(stream, "readinto", None)
    got = 0
    while got < len(mv):
        if readinto is not None:
            n = readinto(mv[got:]) or 0
        else:  # e.g. the zstd decoder
            b = stream.read(len(mv) - got)
            n = len(b)
            mv[got : got + n] = b
        if not n:
            break
        got += n
    return got


class LineTooLong(Exception):
    """Raised by iter_line_blocks when no newline appears within MAX_LINE bytes."""


def iter_line_blocks(stream: Any, block_size: int = BLOCK_SIZE) -> Iterator[tuple[bytes, int]]:
    """Yield ``(data, end)`` where ``data[:end]`` holds whole lines only.

    Only the final block may end without a newline. ``end`` avoids copying the block to
    drop the partial line carried to the next one; references are dropped before each
    read so that at most about two blocks are alive at a time.
    """
    carry = b""
    while True:
        block = read_block(stream, block_size)
        if not block:
            if carry:
                yield carry, len(carry)
            return
        data = carry + block if carry else block
        del block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) > MAX_LINE:
                raise LineTooLong
            carry = data
            continue
        carry = data[cut:]
        if len(carry) > MAX_LINE:
            # Yield what we have first so the caller's line count is right when it fails.
            yield data, cut
            raise LineTooLong
        yield data, cut
        del data


def sniff(src: Source, nbytes: int = 1 << 16) -> bytes:
    """First ``nbytes`` of the decompressed content (for format detection)."""
    with open_input(src) as s:
        return read_block(s, nbytes)
