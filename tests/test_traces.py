"""Tests for vmemsim.traces: readers, writers, detection, PageMap, stack distances, CLI."""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmemsim.traces import (
    FORMATS,
    Chunk,
    PageMap,
    ReuseDistance,
    TraceFormatError,
    detect_format,
    open_trace,
    open_writer,
    trace_stats,
    write_trace,
)
from vmemsim.traces import _io as tio
from vmemsim.traces import cli as tcli
from vmemsim.traces import readers as trd

DATA = Path(__file__).parent / "data" / "traces"
SRC = Path(__file__).resolve().parents[1] / "src"


def read_all(reader):
    """Concatenate a reader's chunks: (pages, is_write, times or None)."""
    chunks = list(reader)
    if not chunks:
        return np.empty(0, np.int64), np.empty(0, bool), None
    pages = np.concatenate([c.pages for c in chunks])
    writes = np.concatenate([c.is_write for c in chunks])
    times = None if chunks[0].times is None else np.concatenate([c.times for c in chunks])
    return pages, writes, times


def write_file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


# --- fixtures of each format --------------------------------------------------------------


def test_lackey_fixture_banners_modify_and_straddle():
    pages, writes, times = read_all(open_trace(DATA / "small.lackey"))
    assert times is None
    # I, S, I, L, M (straddles 0x40fffc..0x410003: two pages, both writes), I, L
    expected = [0x4001, 0x1FFEFFF, 0x4001, 0x25, 0x40F, 0x410, 0x4001, 0x1FFEFFF]
    assert pages.tolist() == expected
    assert writes.tolist() == [False, True, False, False, True, True, False, False]


def test_lackey_without_instructions_and_page_size():
    r = open_trace(DATA / "small.lackey", include_instructions=False)
    pages, writes, _ = read_all(r)
    assert pages.tolist() == [0x1FFEFFF, 0x25, 0x40F, 0x410, 0x1FFEFFF]
    assert writes.tolist() == [True, False, True, True, False]
    assert r.lines == 13 and r.refs == 5
    # 2 MiB pages: the M access no longer straddles
    pages, _, _ = read_all(open_trace(DATA / "small.lackey", page_size=1 << 21))
    assert pages.tolist() == [0x20, 0xFFF7, 0x20, 0x0, 0x2, 0x20, 0xFFF7]


def test_lackey_straddle_at_chunk_end_is_not_split(tmp_path):
    p = write_file(tmp_path, "t.lackey", " L 0,4\n S ffe,4\n L 3000,4\n")
    chunks = list(open_trace(p, chunk=2))
    assert [c.pages.tolist() for c in chunks] == [[0], [0, 1], [3]]
    assert [c.is_write.tolist() for c in chunks] == [[False], [True, True], [False]]


def test_lackey_large_access_spans_many_pages(tmp_path):
    p = write_file(tmp_path, "t.lackey", " L 0ffc,8200\n")
    pages, writes, _ = read_all(open_trace(p))
    assert pages.tolist() == [0, 1, 2, 3]  # 0xffc .. 0x3003
    assert writes.tolist() == [False] * 4


def test_din_fixture():
    pages, writes, times = read_all(open_trace(DATA / "small.din"))
    assert times is None
    assert pages.tolist() == [0x400, 0x7FFD1, 0x7FFD1, 0x1, 0x1]
    assert writes.tolist() == [False, False, True, False, True]
    pages, _, _ = read_all(open_trace(DATA / "small.din", include_instructions=False))
    assert pages.tolist() == [0x7FFD1, 0x7FFD1, 0x1, 0x1]


def test_pin_fixture():
    pages, writes, times = read_all(open_trace(DATA / "small.pin"))
    assert times is None
    assert pages.tolist() == [0x7FFD1, 0x7FFD1, 0x601, 0x601]
    assert writes.tolist() == [False, True, False, True]


def test_pin_nil_pointer(tmp_path):
    p = write_file(tmp_path, "t.pin", "(nil): R (nil)\n0x1: W 0x2000\n#eof\n")
    pages, writes, _ = read_all(open_trace(p))
    assert pages.tolist() == [0, 2] and writes.tolist() == [False, True]


def test_txt_fixture_ids_are_pages_and_keep_64_bits():
    pages, writes, times = read_all(open_trace(DATA / "small.txt"))
    assert times is None and not writes.any()
    assert pages.view(np.uint64).tolist() == [1, 2, 1, 3, 2**64 - 1, 2]
    pages, _, _ = read_all(open_trace(DATA / "small.txt", ids_are_addresses=True))
    assert pages.view(np.uint64).tolist() == [0, 0, 0, 0, (2**64 - 1) >> 12, 0]


def test_csv_fixture_default_columns():
    r = open_trace(DATA / "small.csv")
    pages, writes, times = read_all(r)
    assert pages.tolist() == [10, 11, 10, 12]
    assert writes.tolist() == [False, True, False, True]
    assert times.tolist() == [0.0, 1.0, 2.5, 3.0]
    assert r.columns == ["timestamp", "obj_id", "obj_size", "op"]


def test_csv_columns_by_name_and_index(tmp_path):
    text = "a,key,b,when,kind\nx,7,y,5,W\nx,8,y,6,r\n"
    p = write_file(tmp_path, "t.csv", text)
    pages, writes, times = read_all(open_trace(p))  # 'key' found, no time/op names
    assert pages.tolist() == [7, 8] and times is None and not writes.any()
    r = open_trace(p, obj_col=1, time_col="when", op_col=4)
    pages, writes, times = read_all(r)
    assert pages.tolist() == [7, 8]
    assert writes.tolist() == [True, False]
    assert times.tolist() == [5.0, 6.0]
    p = write_file(tmp_path, "nohead.csv", "7;1\n8;0\n")
    r = open_trace(p, has_header=False, delimiter=";", op_col=1)
    pages, writes, _ = read_all(r)
    assert pages.tolist() == [7, 8] and writes.tolist() == [True, False]
    with pytest.raises(ValueError, match="0-based"):
        open_trace(p, obj_col=-1)


def test_csv_slow_path_quotes_blank_lines_and_hex(tmp_path):
    text = 'time,obj_id,op\n\n"1",0x10,"write"\n2,17,read\n\n'
    pages, writes, times = read_all(open_trace(write_file(tmp_path, "t.csv", text)))
    assert pages.tolist() == [16, 17]
    assert writes.tolist() == [True, False]
    assert times.tolist() == [1.0, 2.0]


def test_oracle_general_fixture():
    r = open_trace(DATA / "small.oracleGeneral.bin")
    pages, writes, times = read_all(r)
    assert pages.view(np.uint64).tolist() == [5, 6, 5, 2**64 - 1]
    assert not writes.any()
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert r.lines == 4


def _oracle_records(rng, n):
    """Random records that a real trace could hold: every bit of obj_id and clock_time varies,
    but times never decrease, sizes are below 2**31 and next accesses come later (or -1)."""
    rec = np.zeros(n, trd.ORACLE_DTYPE)
    rec["clock_time"] = np.sort(rng.integers(0, 2**32, n, dtype=np.uint64))
    rec["obj_id"] = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    rec["obj_size"] = rng.integers(0, 2**31, n, dtype=np.uint64)
    later = np.arange(n) + rng.integers(1, 2**62, n)
    rec["next_access_vtime"] = np.where(rng.random(n) < 0.5, -1, later)
    return rec


class Trickle(io.RawIOBase):
    """A stream that returns at most 10 bytes per read: records arrive in pieces."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), 10, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_oracle_reader_decodes_every_field_bit(tmp_path, chunk):
    rec = _oracle_records(np.random.default_rng(chunk), 2500)
    raw = rec.tobytes()
    p = write_file(tmp_path, "t.oracleGeneral.bin", raw)
    want_ids = rec["obj_id"].view(np.int64)
    want_t = rec["clock_time"].astype(np.float64)
    zst = zstandard.ZstdCompressor().compress(raw)  # the decoder has no readinto
    for src in (p, io.BytesIO(raw), Trickle(raw), io.BytesIO(zst)):
        chunks = list(open_trace(src, "oracleGeneral", chunk=chunk))
        assert all(len(c.pages) == chunk for c in chunks[:-1])
        pages, writes, times = read_all(chunks)
        assert np.array_equal(pages, want_ids) and np.array_equal(times, want_t)
        assert pages.dtype == np.int64 and times.dtype == np.float64 and not writes.any()
    shifted = read_all(open_trace(p, "oracleGeneral", ids_are_addresses=True, page_size=4096))
    assert np.array_equal(shifted[0], (rec["obj_id"] >> np.uint64(12)).astype(np.int64))


def test_oracle_unpack_kernel_matches_numpy_fallback(monkeypatch):
    rec = _oracle_records(np.random.default_rng(4), 999)
    raw = np.frombuffer(rec.tobytes(), np.uint8).copy()
    fast = trd._unpack_oracle(raw, len(rec), 3)
    monkeypatch.setattr(sys, "byteorder", "big")  # the path a big-endian host takes
    slow = trd._unpack_oracle(raw, len(rec), 3)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_plain_path_that_cannot_seek(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    raw = (DATA / "small.din").read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(raw)

    t = threading.Thread(target=feed)
    t.start()
    try:
        pages, _, _ = read_all(open_trace(fifo, "din"))
    finally:
        t.join()
    assert np.array_equal(pages, read_all(open_trace(DATA / "small.din"))[0])


def test_zstd_fixture_matches_plain():
    a = read_all(open_trace(DATA / "small.lackey"))
    b = read_all(open_trace(DATA / "small.lackey.zst"))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_zstd_by_magic_multiframe_and_file_object(tmp_path):
    raw = (DATA / "small.din").read_bytes()
    c = zstandard.ZstdCompressor()
    blob = c.compress(raw) + c.compress(raw)  # two frames, as `cat a.zst b.zst` makes
    p = write_file(tmp_path, "noext", blob)  # no .zst suffix: recognised by magic bytes
    assert detect_format(p) == "din"
    pages, _, _ = read_all(open_trace(p))
    assert len(pages) == 10
    pages2, _, _ = read_all(open_trace(io.BytesIO(blob), "din"))
    assert np.array_equal(pages, pages2)


def test_zstd_truncated_and_corrupt(tmp_path):
    blob = zstandard.ZstdCompressor().compress((DATA / "small.txt").read_bytes() * 50)
    p = write_file(tmp_path, "t.txt.zst", blob[:-4])
    with pytest.raises(TraceFormatError, match="truncated zstd stream"):
        read_all(open_trace(p, "txt"))
    p = write_file(tmp_path, "c.txt.zst", blob[:8] + b"\xff" * 40 + blob[8:])
    with pytest.raises(TraceFormatError, match="corrupt zstd stream"):
        read_all(open_trace(p, "txt"))


# --- chunking and line numbers across blocks ----------------------------------------------


@pytest.mark.parametrize("name", ["small.lackey", "small.din", "small.csv"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_chunk_sizes_and_content_independent_of_chunk(name, chunk):
    if name == "small.lackey" and chunk == 1:
        chunk = 2  # its page-straddling access yields two references from one line
    full = read_all(open_trace(DATA / name))
    chunks = list(open_trace(DATA / name, chunk=chunk))
    sizes = [len(c.pages) for c in chunks]
    assert all(0 < s <= chunk for s in sizes)
    if name != "small.lackey":  # lackey may close a chunk early rather than split a line
        assert all(s == chunk for s in sizes[:-1])
    assert np.array_equal(np.concatenate([c.pages for c in chunks]), full[0])


def test_small_blocks_keep_line_numbers(monkeypatch, tmp_path):
    monkeypatch.setattr(trd, "BLOCK_SIZE", 16)  # many block boundaries mid-file
    lines = [f" L {i * 4096:x},4" for i in range(500)]
    lines[436] = " L nothex,4"
    p = write_file(tmp_path, "t.lackey", "\n".join(lines))  # no final newline
    with pytest.raises(TraceFormatError) as ei:
        read_all(open_trace(p, chunk=3))
    assert ei.value.line == 437
    r = open_trace(p, chunk=3, skip_bad_lines=True)
    pages, _, _ = read_all(r)
    assert pages.tolist() == [i for i in range(500) if i != 436]
    assert r.skipped == 1 and r.skipped_examples[0][0] == 437


def test_csv_rechunks_across_blocks(monkeypatch, tmp_path):
    monkeypatch.setattr(trd, "BLOCK_SIZE", 50)
    rows = "".join(f"{i},{i * 3},{'write' if i % 3 == 0 else 'read'}\n" for i in range(300))
    p = write_file(tmp_path, "t.csv", "time,obj_id,op\n" + rows)
    chunks = list(open_trace(p, chunk=64))
    assert [len(c.pages) for c in chunks] == [64, 64, 64, 64, 44]
    pages = np.concatenate([c.pages for c in chunks])
    times = np.concatenate([c.times for c in chunks])
    assert pages.tolist() == [3 * i for i in range(300)]
    assert times.tolist() == list(range(300))


# --- round trips --------------------------------------------------------------------------

ADDRESS_FORMATS = ("lackey", "din", "pin")
_page_streams = st.lists(
    st.tuples(st.integers(0, (1 << 52) - 1), st.booleans()), min_size=0, max_size=200
)
_id_streams = st.lists(
    st.tuples(st.integers(-(1 << 63), (1 << 63) - 1), st.booleans()), min_size=0, max_size=200
)


def _roundtrip(fmt, pages, writes, times=None, *, compress=False, page_size=4096, chunk=64):
    buf = io.BytesIO()
    with open_writer(buf, fmt, page_size=page_size, compress=compress) as w:
        for i in range(0, max(len(pages), 1), 50):  # several write() calls
            t = None if times is None else times[i : i + 50]
            w.write(pages[i : i + 50], writes[i : i + 50], t)
    buf.seek(0)
    return read_all(open_trace(buf, fmt, page_size=page_size, chunk=chunk))


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(refs=_page_streams, compress=st.booleans())
def test_roundtrip_every_format(fmt, refs, compress):
    pages = np.array([p for p, _ in refs], dtype=np.int64)
    writes = np.array([w for _, w in refs], dtype=bool)
    got_p, got_w, got_t = _roundtrip(fmt, pages, writes, compress=compress)
    assert got_p.tolist() == pages.tolist()
    if fmt in ("txt", "oracleGeneral"):  # no op field: everything reads back as a read
        assert not got_w.any()
    else:
        assert got_w.tolist() == writes.tolist()
    if fmt in ("csv", "oracleGeneral") and len(pages):  # no times in: the index is written
        assert got_t.tolist() == list(range(len(pages)))
    elif fmt not in ("csv", "oracleGeneral"):
        assert got_t is None


@pytest.mark.parametrize("fmt", ["txt", "csv", "oracleGeneral"])
@settings(max_examples=25, deadline=None)
@given(refs=_id_streams)
def test_roundtrip_full_64bit_ids(fmt, refs):
    pages = np.array([p for p, _ in refs], dtype=np.int64)
    writes = np.array([w for _, w in refs], dtype=bool)
    got_p, _, _ = _roundtrip(fmt, pages, writes)
    assert got_p.tolist() == pages.tolist()


@settings(max_examples=25, deadline=None)
@given(
    times=st.lists(
        st.floats(min_value=-1e300, max_value=1e300, allow_nan=False), min_size=1, max_size=50
    )
)
def test_csv_roundtrip_keeps_float_times_exactly(times):
    t = np.array(times)
    pages = np.arange(len(t), dtype=np.int64)
    _, _, got_t = _roundtrip("csv", pages, np.zeros(len(t), bool), t)
    assert got_t.tolist() == t.tolist()


@pytest.mark.parametrize("page_size", [1, 4096, 1 << 21])
def test_address_formats_respect_page_size(page_size):
    top = min((1 << (65 - page_size.bit_length())) - 1, (1 << 63) - 1)  # largest addressable
    pages = np.array([0, 1, 5, top], dtype=np.int64)
    writes = np.array([True, False, True, False])
    for fmt in ADDRESS_FORMATS:
        got_p, got_w, _ = _roundtrip(fmt, pages, writes, page_size=page_size)
        assert got_p.tolist() == pages.tolist(), fmt
        assert got_w.tolist() == writes.tolist()


def test_address_writer_rejects_ids_that_are_not_addresses():
    with pytest.raises(ValueError, match="does not fit a 64-bit address"):
        _roundtrip("lackey", np.array([1 << 60]), np.array([False]))


def test_oracle_writer_matches_libcachesim_reader(tmp_path):
    lcs = pytest.importorskip("libcachesim")
    p = tmp_path / "t.oracleGeneral.bin"
    ids = np.array([3, 9, 3, 12345678901, 9], dtype=np.int64)
    write_trace([Chunk(ids, np.zeros(5, bool), np.array([10.0, 11, 12, 13, 14]))], p)
    reader = lcs.TraceReader(str(p), lcs.TraceType.ORACLE_GENERAL_TRACE)
    got = [(r.obj_id, r.obj_size, r.clock_time) for r in reader]
    assert [g[0] for g in got] == ids.tolist()
    assert {g[1] for g in got} == {4096}
    assert [g[2] for g in got] == [10, 11, 12, 13, 14]


# --- format detection ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("small.lackey", "lackey"),
        ("small.lackey.zst", "lackey"),
        ("small.din", "din"),
        ("small.pin", "pin"),
        ("small.txt", "txt"),
        ("small.csv", "csv"),
        ("small.oracleGeneral.bin", "oracleGeneral"),
    ],
)
def test_detect_fixtures(name, fmt):
    assert detect_format(DATA / name) == fmt


@pytest.mark.parametrize("src", ["lackey", "din", "pin", "txt", "csv", "oracleGeneral.bin"])
def test_detect_by_content_without_extension(tmp_path, src):
    p = write_file(tmp_path, "trace", (DATA / f"small.{src}").read_bytes())
    assert detect_format(p) == src.removesuffix(".bin")


def test_detect_content_beats_generic_extension_and_extension_breaks_ties(tmp_path):
    lackey_as_txt = write_file(tmp_path, "run.txt", (DATA / "small.lackey").read_bytes())
    assert detect_format(lackey_as_txt) == "lackey"
    # malformed first line: the extension decides, so the reader can name the bad line
    bad = write_file(tmp_path, "bad.din", "zz 1000\n0 1000\n")
    assert detect_format(bad) == "din"
    assert detect_format(write_file(tmp_path, "empty.pin", "")) == "pin"
    with pytest.raises(ValueError, match="cannot detect the trace format"):
        detect_format(write_file(tmp_path, "mystery", "hello world\n"))
    with pytest.raises(ValueError, match="it is empty"):
        detect_format(write_file(tmp_path, "empty", ""))


# --- malformed input ----------------------------------------------------------------------

MALFORMED = [
    ("t.lackey", "I  04001234,3\n L zz\n", "line 2: expected 'addr,size' after 'L', got 'zz'"),
    ("t.lackey", "==1== hi\n\nX 1234,4\n", "line 3: expected a record type I, L, S or M, got 'X'"),
    ("t.lackey", " L 12g4,4\n", "line 1: bad address '12g4' after 'L': not a hex number"),
    ("t.lackey", " S 1234,x\n", "line 1: bad size 'x' after 'S': expected a decimal byte count"),
    ("t.lackey", "L1234,4\n", "line 1: expected a space after 'L', got 'L1234,4'"),
    (
        "t.lackey",
        " M 11112222333344445,4\n",
        "line 1: bad address '11112222333344445' after 'M': more than 16 hex digits",
    ),
    ("t.lackey", " L 1234,4 x\n", "line 1: expected 'addr,size' after 'L', got '1234,4 x'"),
    ("t.din", "0 1000\nx 1000\n", "line 2: expected a numeric label 0-4, got 'x'"),
    ("t.din", "7 1000\n", "line 1: unknown label 7 (expected 0 read, 1 write, 2 ifetch, 3, 4)"),
    ("t.din", "0 zz\n", "line 1: bad address 'zz' after label 0: not a hex number"),
    ("t.din", "1 12g4\n", "line 1: bad address '12g4' after label 1: not a hex number"),
    ("t.din", "0\n", "line 1: missing address after label 0"),
    (
        "t.pin",
        "0x40052d R 0x1\n",
        "line 1: expected 'ip:' (hex instruction address and colon), got '0x40052d'",
    ),
    ("t.pin", "0x1: R 0x2\n0x3: X 0x4\n", "line 2: expected R or W after '0x3:', got 'X'"),
    ("t.pin", "0x1: W zz\n", "line 1: bad address 'zz' after 'W': not a hex number"),
    ("t.pin", "0x1: R\n", "line 1: missing address after 'R'"),
    ("t.pin", "0x1: R 0x2 junk\n", "line 1: unexpected text after the address: 'junk'"),
    ("t.txt", "1\n2\nabc\n", "line 3: expected a decimal object id, got 'abc'"),
    ("t.txt", "-5\n", "line 1: expected a decimal object id, got '-5'"),
    (
        "t.txt",
        "18446744073709551616\n",
        "line 1: object id 18446744073709551616 does not fit in 64 bits",
    ),
    ("t.csv", "time,obj_id\n1,2\n1,abc\n", "line 3: bad object id 'abc' in column 1"),
    ("t.csv", "time,obj_id,op\n1,2,delete\n", "line 2: unknown op 'delete' in column 2"),
    ("t.csv", "time,obj_id\n1\n", "line 2: expected at least 2 fields, got 1"),
    ("t.csv", "time,obj_id\nx,2\n", "line 2: bad time 'x' in column 0"),
    (
        "t.csv",
        "a,b\n1,2\n",
        "line 1: no object id column in header 'a,b' (looked for obj_id, objid, obj, "
        "object_id, key, addr, address, page, id; name it with obj_col)",
    ),
    ("t.csv", b"time,obj_id\n1,2\n1,\xff\n", "line 3: not UTF-8 text"),
]


@pytest.mark.parametrize("name,content,expected", MALFORMED)
def test_malformed_text_exact_message(tmp_path, name, content, expected):
    p = write_file(tmp_path, name, content)
    with pytest.raises(TraceFormatError) as ei:
        read_all(open_trace(p))
    assert str(ei.value) == f"{p}: {expected}"
    assert "\n" not in str(ei.value)


def test_malformed_access_wider_than_chunk(tmp_path):
    p = write_file(tmp_path, "t.lackey", " L 0,100000\n")
    with pytest.raises(TraceFormatError, match="spans 25 pages, more than chunk=8"):
        read_all(open_trace(p, chunk=8))


def test_csv_missing_named_column(tmp_path):
    p = write_file(tmp_path, "t.csv", "time,obj_id\n1,2\n")
    with pytest.raises(TraceFormatError) as ei:
        read_all(open_trace(p, obj_col="nope"))
    assert str(ei.value) == f"{p}: line 1: no column named 'nope' in header 'time,obj_id'"


def test_oracle_truncated_record_offset(tmp_path):
    rec = struct.pack("<IQIq", 1, 2, 4096, -1)
    p = write_file(tmp_path, "t.oracleGeneral.bin", rec * 2 + rec[:10])
    with pytest.raises(TraceFormatError) as ei:
        read_all(open_trace(p))
    assert str(ei.value) == f"{p}: offset 48: truncated record: 10 of 24 bytes at end of file"
    assert ei.value.offset == 48 and ei.value.line is None
    r = open_trace(p, skip_bad_lines=True, chunk=1)
    pages, _, _ = read_all(r)
    assert pages.tolist() == [2, 2] and r.skipped == 1


# --- oracleGeneral plausibility -------------------------------------------------------------


def _plausible(n, start=0):
    """n records as libCacheSim's traceConv writes them: times that never decrease, real
    sizes, next_access_vtime the 1-based index of the next request to the object, or -1."""
    ids = np.arange(n, dtype=np.uint64) % 7
    rec = np.zeros(n, trd.ORACLE_DTYPE)
    rec["clock_time"] = start + np.arange(n) // 3
    rec["obj_id"] = ids
    rec["obj_size"] = 4096
    nxt = np.full(n, -1, np.int64)
    seen: dict[int, int] = {}
    for i in range(n - 1, -1, -1):
        j = seen.get(int(ids[i]))
        if j is not None:
            nxt[i] = j + 1  # libCacheSim counts requests from 1
        seen[int(ids[i])] = i
    rec["next_access_vtime"] = nxt
    return rec


def test_oracle_real_traces_are_accepted(tmp_path):
    rec = _plausible(5000)
    rec["obj_size"][3] = 0  # size-0 requests exist in real traces (libCacheSim skips them)
    rec["next_access_vtime"][4] = 2**63 - 1  # libCacheSim's other "never again"
    rec["obj_size"][5] = 2**31 - 1
    for name in ("t.oracleGeneral.bin", "t.bin", "t"):
        p = write_file(tmp_path, name, rec.tobytes())
        assert detect_format(p) == "oracleGeneral"
        pages, _, times = read_all(open_trace(p))
        assert pages.tolist() == rec["obj_id"].astype(np.int64).tolist()
        assert times.tolist() == rec["clock_time"].astype(float).tolist()
    # what vmemsim's own writer produces (next_access_vtime -1, size = page size)
    p = tmp_path / "w.oracleGeneral.bin"
    write_trace(open_trace(DATA / "small.lackey"), p)
    assert len(read_all(open_trace(p))[0]) == 8
    assert detect_format(DATA / "small.oracleGeneral.bin") == "oracleGeneral"


def test_random_bytes_are_not_an_oracle_general_trace(tmp_path):
    raw = np.random.default_rng(1).bytes(24_000)
    for name in ("random", "random.bin"):
        p = write_file(tmp_path, name, raw)
        with pytest.raises(ValueError) as ei:
            detect_format(p)
        msg = str(ei.value)
        assert msg.startswith(
            "cannot detect the trace format: the content is binary, but not a plausible "
            "oracleGeneral trace: record "
        ), msg
        assert "\n" not in msg
        with pytest.raises(TraceFormatError, match=f"^{p}: cannot detect"):
            open_trace(p)  # the path is named for a scenario's error line
    # named oracleGeneral, or the format given: the reader refuses it, at the bad record
    p = write_file(tmp_path, "random.oracleGeneral.bin", raw)
    for src, fmt in ((p, None), (write_file(tmp_path, "r", raw), "oracleGeneral")):
        with pytest.raises(TraceFormatError, match="not a plausible oracleGeneral trace") as ei:
            read_all(open_trace(src, fmt))
        assert ei.value.offset is not None and ei.value.offset % 24 == 0
    zst = write_file(tmp_path, "random.zst", zstandard.ZstdCompressor().compress(raw))
    with pytest.raises(ValueError, match="not a plausible oracleGeneral trace"):
        detect_format(zst)


# (record, field, value, message): each breaks one rule, the records before it are fine
IMPLAUSIBLE = [
    (6, "clock_time", 0, "clock_time 0 is earlier than the previous record's 1 "
                         "(timestamps never decrease)"),
    (2, "obj_size", 2**31, "obj_size 2147483648 is not below 2**31 (no object is that large)"),
    (2, "obj_size", 2**32 - 1, "obj_size 4294967295 is not below 2**31"),
    (4, "next_access_vtime", 4, "next_access_vtime 4 is neither -1 nor after the record itself"),
    (4, "next_access_vtime", 3, "next_access_vtime 3 is neither -1 nor after the record itself"),
    (1, "next_access_vtime", -2, "next_access_vtime -2 is neither -1 nor after the record"),
]


@pytest.mark.parametrize("index,field,value,expected", IMPLAUSIBLE)
def test_implausible_record_is_named_with_its_rule(tmp_path, index, field, value, expected):
    rec = _plausible(100)
    rec[field][index] = value
    raw = rec.tobytes()
    off = index * 24
    p = write_file(tmp_path, "t.oracleGeneral.bin", raw)
    with pytest.raises(TraceFormatError) as ei:
        open_trace(p)  # a file is checked when opened
    assert str(ei.value).startswith(
        f"{p}: offset {off}: not a plausible oracleGeneral trace: record {index}: {expected}"
    ), str(ei.value)
    # a stream is checked as it is read, across chunks; skip_bad_lines does not skip it
    for chunk in (1, 3, 1000):
        r = open_trace(io.BytesIO(raw), "oracleGeneral", chunk=chunk, skip_bad_lines=True)
        with pytest.raises(TraceFormatError, match=f"offset {off}: not a plausible") as ei:
            read_all(r)
    with pytest.raises(ValueError, match=rf"record {index} \(offset {off}\): "):
        detect_format(write_file(tmp_path, "t", raw))


def test_oracle_check_is_limited_to_the_first_records(tmp_path):
    # Detection and the check stay cheap on huge traces: only the start is looked at.
    rec = _plausible(trd.ORACLE_CHECKED + 10)
    rec["clock_time"][trd.ORACLE_CHECKED + 5] = 0
    p = write_file(tmp_path, "t.oracleGeneral.bin", rec.tobytes())
    assert len(read_all(open_trace(p))[0]) == len(rec)
    rec["clock_time"][trd.ORACLE_CHECKED - 1] = 0
    p = write_file(tmp_path, "t.oracleGeneral.bin", rec.tobytes())
    with pytest.raises(TraceFormatError, match=f"record {trd.ORACLE_CHECKED - 1}: clock_time"):
        read_all(open_trace(io.BytesIO(rec.tobytes()), "oracleGeneral", chunk=1000))


@pytest.mark.parametrize("name", ["random.bin", "random.oracleGeneral.bin"])
@pytest.mark.parametrize(
    "argv",
    [
        ["trace", "stats", "{f}"],
        ["trace", "convert", "{f}", "{d}/out.txt"],
        ["trace", "simulate", "{f}", "--policy", "lru", "--frames", "10"],
    ],
)
def test_cli_refuses_random_bytes(capsys, tmp_path, name, argv):
    p = write_file(tmp_path, name, np.random.default_rng(2).bytes(24_000))
    rc = run_cli([a.format(f=p, d=tmp_path) for a in argv])
    err = one_error_line(capsys, rc)
    assert err.startswith(f"vmemsim: error: {p}: "), err
    assert "not a plausible oracleGeneral trace: record " in err
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]  # convert wrote nothing


def test_no_newline_binary_garbage(tmp_path):
    p = write_file(tmp_path, "t.txt", b"7" * (tio.MAX_LINE + 10))
    with pytest.raises(TraceFormatError, match=r"line 1: no newline within \d+ bytes"):
        read_all(open_trace(p))


def test_skip_bad_lines_counts_and_keeps_examples(tmp_path):
    lines = ["1", "x1", "2", "x2", "3", "x3", "x4", "x5", "x6", "x7", "4"]
    p = write_file(tmp_path, "t.txt", "\n".join(lines) + "\n")
    r = open_trace(p, skip_bad_lines=True)
    pages, _, _ = read_all(r)
    assert pages.tolist() == [1, 2, 3, 4]
    assert r.skipped == 7
    assert r.skipped_examples[:2] == [
        (2, "expected a decimal object id, got 'x1'"),
        (4, "expected a decimal object id, got 'x2'"),
    ]
    assert len(r.skipped_examples) == 5


def test_error_object_is_picklable_and_one_line():
    e = TraceFormatError("a/b.din", 3, "bad\nthing")
    assert str(e) == "a/b.din: line 3: bad\\nthing"
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.line == 3
    assert str(TraceFormatError("x", None, "m")) == "x: m"


def test_bad_options():
    with pytest.raises(ValueError, match="power of two"):
        open_trace(DATA / "small.txt", page_size=3000)
    with pytest.raises(ValueError, match="unknown trace format"):
        open_trace(DATA / "small.txt", "nope")
    with pytest.raises(ValueError, match="chunk"):
        open_trace(DATA / "small.txt", chunk=0)


# --- bounded memory -----------------------------------------------------------------------


class LazyLines(io.RawIOBase):
    """A read-only stream that generates ``total`` bytes of txt trace on demand."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.served = 0
        block = "".join(f"{(i * 7919) % 100003}\n" for i in range(20000)).encode()
        self.block = block[: block.rfind(b"\n", 0, 1 << 17) + 1]

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.total - self.served)
        if n <= 0:
            return 0
        start = self.served % len(self.block)
        piece = (self.block[start:] + self.block)[:n]
        b[: len(piece)] = piece
        self.served += len(piece)
        return len(piece)


def test_reader_is_lazy_on_a_200mb_stream():
    src = LazyLines(200 << 20)
    it = iter(open_trace(src, "txt", chunk=1 << 16))
    first = [next(it) for _ in range(3)]
    assert [len(c.pages) for c in first] == [1 << 16] * 3
    # three chunks need ~1.3 MB of text; the reader may be at most a couple of blocks ahead
    assert src.served <= 3 * tio.BLOCK_SIZE
    it.close()


def test_memory_stays_bounded_over_a_whole_stream():
    list(open_trace(LazyLines(1000), "txt"))  # compile/load kernels outside the measurement
    src = LazyLines(64 << 20)
    tracemalloc.start()
    try:
        n = 0
        for c in open_trace(src, "txt", chunk=1 << 16):
            n += len(c.pages)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert src.served == 64 << 20 and n > 10_000_000
    # ~two 4 MiB blocks plus chunk arrays (about 10 MB measured), never the 64 MB stream
    assert peak < 4 * tio.BLOCK_SIZE


# --- PageMap ------------------------------------------------------------------------------


def test_pagemap_dense_ids_across_chunks():
    pm = PageMap()
    a = pm.map(np.array([100, -5, 100, 7], dtype=np.int64))
    b = pm.map(np.array([7, 2**62, -5, 42], dtype=np.int64))
    assert a.dtype == np.int32
    assert a.tolist() == [0, 1, 0, 2] and b.tolist() == [2, 3, 1, 4]
    assert len(pm) == 5
    assert pm.pages.tolist() == [100, -5, 7, 2**62, 42]
    assert pm.lookup(np.array([42, 999])).tolist() == [4, -1]
    assert 7 in pm and 999 not in pm
    assert pm.map(np.array([], dtype=np.int64)).size == 0


def test_pagemap_matches_first_appearance_order_at_scale():
    rng = np.random.default_rng(3)
    pages = rng.integers(-(1 << 40), 1 << 40, 5000)
    pages = pages[rng.integers(0, 5000, 50_000)]
    pm = PageMap()
    dense = np.concatenate([pm.map(pages[i : i + 777]) for i in range(0, len(pages), 777)])
    _, first_idx = np.unique(pages, return_index=True)
    order = pages[np.sort(first_idx)]  # distinct pages by first appearance
    assert np.array_equal(pm.pages, order)
    assert np.array_equal(pm.pages[dense], pages)


def test_pagemap_limit():
    pm = PageMap(limit=3)
    pm.map(np.array([1, 2, 3, 1]))
    with pytest.raises(OverflowError):
        pm.map(np.array([4]))


class DictPageMap:
    """The PageMap contract written with a plain dict: the oracle for the hash table."""

    def __init__(self, limit=2**31 - 1):
        self.ids: dict[int, int] = {}
        self.limit = limit

    def map(self, pages):
        out = []
        for p in pages.tolist():
            if p not in self.ids:
                if len(self.ids) >= self.limit:
                    raise OverflowError
                self.ids[p] = len(self.ids)
            out.append(self.ids[p])
        return out


_EDGE_IDS = [0, 1, -1, 2**63 - 1, -(2**63), 2**62, -(2**62), 4096, 1 << 40]


def _random_ids(rng, n, distinct):
    """Ids of several shapes: full-range int64, edge values, addresses with zero low bits,
    ids differing only in their top bits (a weak hash would pile those into one slot)."""
    pool = np.concatenate(
        [
            rng.integers(-(2**63), 2**63 - 1, distinct, endpoint=True),
            np.array(_EDGE_IDS, np.int64),
            rng.integers(0, 1 << 20, distinct // 4) << 12,
            (rng.integers(0, 1 << 12, distinct // 4) << 52) | 5,
        ]
    )
    return pool[rng.integers(0, len(pool), n)]


@pytest.mark.parametrize("seed", range(6))
def test_pagemap_matches_dict_across_chunks_and_rehashes(seed):
    rng = np.random.default_rng(seed)
    distinct = [10, 300, 5000, 60_000, 3000, 100][seed]
    pages = _random_ids(rng, 8 * distinct + 50, distinct)
    pm, ref = PageMap(), DictPageMap()
    i = 0
    while i < len(pages):  # chunks of random sizes, including empty ones
        k = int(rng.integers(0, 2 * distinct + 2))
        got = pm.map(pages[i : i + k])
        assert got.dtype == np.int32
        assert got.tolist() == ref.map(pages[i : i + k])
        i += k
    assert len(pm) == len(ref.ids)
    assert pm.pages.tolist() == list(ref.ids)  # first-appearance order
    # the table starts at 1024 slots: seed 3's ~80k keys (load <= 1/2) take 8 rehashes
    unseen = rng.integers(-(2**63), 2**63 - 1, 2000, endpoint=True)
    probe = np.concatenate([pages, unseen])
    assert pm.lookup(probe).tolist() == [ref.ids.get(p, -1) for p in probe.tolist()]
    assert len(pm) == len(ref.ids)  # lookup never inserts
    for p in pages[:50].tolist() + unseen[:50].tolist():
        assert (p in pm) == (p in ref.ids)


def test_pagemap_many_new_keys_in_one_call():
    rng = np.random.default_rng(11)
    pages = rng.permutation(np.arange(-200_000, 200_000, dtype=np.int64) * 7919)
    pm = PageMap()
    assert np.array_equal(pm.map(pages), np.arange(len(pages)))  # 10 rehashes in one call
    assert np.array_equal(pm.map(pages[::-1]), np.arange(len(pages))[::-1])
    assert np.array_equal(pm.pages, pages)


def test_pagemap_probe_chain_wraps_past_the_last_slot():
    from vmemsim.traces import pagemap as tpm

    mask = tpm._MIN_SLOTS - 1
    last = [k for k in range(200_000) if tpm._slot(k, mask) == mask][:3]
    first = [k for k in range(200_000) if tpm._slot(k, mask) == 0][:2]
    pm = PageMap()
    keys = np.array(last + first, np.int64)  # chains that run over the end of the table
    assert pm.map(keys).tolist() == [0, 1, 2, 3, 4]
    assert pm.lookup(keys[::-1]).tolist() == [4, 3, 2, 1, 0]
    assert pm.lookup(np.array([200_001, 200_002])).tolist() == [-1, -1]


def test_pagemap_limit_keeps_the_pages_that_fitted():
    pm = PageMap(limit=3)
    with pytest.raises(OverflowError):
        pm.map(np.array([1, 2, 1, 3, 4, 5]))
    assert len(pm) == 3 and pm.pages.tolist() == [1, 2, 3]
    assert pm.lookup(np.array([1, 2, 3, 4])).tolist() == [0, 1, 2, -1]
    assert pm.map(np.array([3, 1])).tolist() == [2, 0]  # known pages still map
    with pytest.raises(OverflowError):
        PageMap(limit=0).map(np.array([7]))
    pm = PageMap(limit=5000)  # the limit, not the table size, stops it (past some rehashes)
    pm.map(np.arange(5000) * 3)
    with pytest.raises(OverflowError):
        pm.map(np.array([1]))


def test_pagemap_input_types_and_membership():
    pm = PageMap()
    ids = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)  # object ids keep their bits
    assert pm.map(ids).tolist() == [0, 1, 2]
    assert pm.pages.tolist() == [-1, -(2**63), 5]
    assert pm([5, 5]).tolist() == [2, 2]  # lists, and __call__
    assert pm.map(np.array([[5, -1], [7, 5]])).tolist() == [[2, 0], [3, 2]]  # shape kept
    assert pm.lookup(np.array([[7], [8]])).tolist() == [[3], [-1]]
    assert -1 in pm and 2**64 - 1 in pm and np.uint64(2**63) in pm and np.int8(5) in pm
    assert 8 not in pm and 2**64 not in pm and -(2**63) - 1 not in pm
    assert "5" not in pm and 5.0 not in pm and None not in pm
    assert repr(pm) == "PageMap(4 pages)"
    with pytest.raises(ValueError):
        pm.pages[0] = 1  # read-only view


# --- stack distances and MRC --------------------------------------------------------------


def naive_stack_distances(pages):
    stack: list[int] = []
    out = []
    for p in pages:
        if p in stack:
            i = stack.index(p)
            out.append(len(stack) - i)
            stack.pop(i)
        else:
            out.append(0)  # cold
        stack.append(p)
    return out


def test_trace_stats_small_exact():
    pages = np.array([1, 2, 1, 3, 2, 1, 1, 4])
    writes = np.array([0, 1, 0, 0, 1, 0, 0, 1], dtype=bool)
    s = trace_stats([(pages[:3], writes[:3], None), (pages[3:], writes[3:], None)])
    # distances: 1c 2c 1->2 3c 2->3 1->3 1->1 4c
    assert (s.references, s.distinct_pages, s.reads, s.writes) == (8, 4, 5, 3)
    assert s.write_fraction == 3 / 8 and s.cold_misses == 4
    assert s.reuse_histogram == [(1, 1, 1), (2, 2, 1), (3, 4, 2)]
    assert s.mrc == [(1, 7 / 8), (2, 6 / 8), (4, 4 / 8)]
    d = s.to_dict()
    assert d["mrc"][0] == {"frames": 1, "miss_ratio": 7 / 8}
    json.dumps(d)


def test_reuse_distance_compaction_matches_naive():
    rng = np.random.default_rng(5)
    pages = rng.zipf(1.4, 6000) % 300
    pm = PageMap()
    rd = ReuseDistance(initial_capacity=16)  # forces many compactions and BIT growth
    for i in range(0, len(pages), 97):
        rd.feed(pm.map(pages[i : i + 97]), len(pm))
    sd = np.array(naive_stack_distances(pages.tolist()))
    counts = rd.counts()
    assert rd.cold == int((sd == 0).sum())
    expected = np.bincount(sd[sd > 0], minlength=len(counts))
    assert np.array_equal(counts, expected[: len(counts)])
    assert expected[len(counts) :].sum() == 0


def _lcs_lru_misses(lcs, pages, size):
    cache = lcs.LRU(cache_size=size, hashpower=16)
    req = lcs.Request()
    req.obj_size = 1  # libCacheSim sizes are bytes: 1-byte objects make cache_size a count
    misses = 0
    for p in pages:
        req.obj_id = p
        if not cache.get(req):
            misses += 1
    return misses


def test_mrc_equals_libcachesim_lru_on_zipf():
    lcs = pytest.importorskip("libcachesim")
    rng = np.random.default_rng(11)
    pages = (rng.zipf(1.2, 40_000) % 5000).astype(np.int64) * 4096  # sparse ids
    chunks = [(pages[i : i + 4096], np.zeros(4096, bool), None) for i in range(0, 40_000, 4096)]
    s = trace_stats(chunks)
    plist = pages.tolist()
    for frames, ratio in s.mrc[:12]:
        misses = _lcs_lru_misses(lcs, plist, frames)
        assert round(ratio * s.references) == misses, frames
    for frames in (3, 100, 777):  # exact at any size, not only powers of two
        assert s.lru_misses(frames) == _lcs_lru_misses(lcs, plist, frames)
    assert s.mrc[-1][0] >= s.distinct_pages
    assert s.mrc[-1][1] == s.cold_misses / s.references


def test_trace_stats_without_reuse_and_empty():
    s = trace_stats(open_trace(DATA / "small.pin"), reuse=False)
    assert s.references == 4 and s.distinct_pages == 2 and s.mrc == []
    assert s.page_size == 4096
    e = trace_stats([])
    assert e.references == 0 and e.mrc == [] and e.write_fraction == 0.0


# --- CLI ----------------------------------------------------------------------------------


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="vmemsim")
    sub = parser.add_subparsers(dest="command")
    tcli.add_trace_subcommands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def one_error_line(capsys, rc):
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("vmemsim: error: "), err
    assert "Traceback" not in err
    return err.strip()


def test_cli_stats_text_and_json(capsys):
    assert run_cli(["trace", "stats", str(DATA / "small.lackey")]) == 0
    out = capsys.readouterr().out
    assert "references      8" in out and "LRU miss-ratio curve" in out
    assert run_cli(["trace", "stats", str(DATA / "small.lackey.zst"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "lackey" and d["references"] == 8 and d["writes"] == 3
    assert d["distinct_pages"] == 5


def test_cli_stats_options(capsys, tmp_path):
    p = write_file(tmp_path, "ids", "1\n2\n1\n")
    rc = run_cli(["trace", "stats", str(p), "-f", "TXT", "--page-size", "8k", "--json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["page_size"] == 8192 and d["references"] == 3
    p = write_file(tmp_path, "t.csv", "a,b,c\n1,5,W\n2,5,R\n3,6,R\n")
    argv = ["trace", "stats", str(p), "--obj-col", "1", "--op-col", "c", "--json"]
    assert run_cli(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["references"], d["distinct_pages"], d["writes"]) == (3, 2, 1)


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["trace", "stats", "{d}/nope.lackey"], "{d}/nope.lackey: no such file"),
        (["trace", "stats", "{d}"], "{d}: is a directory, not a trace file"),
        (
            ["trace", "stats", "{d}/bad.lackey"],
            "{d}/bad.lackey: line 2: expected 'addr,size' after 'L', got 'zz'",
        ),
        (["trace", "stats", "{d}/bad.lackey", "--format", "bogus"], "{d}/bad.lackey: unknown"),
        (["trace", "stats", "{d}/mystery"], "{d}/mystery: cannot detect the trace format"),
        (["trace", "stats", "{d}/bad.lackey", "--page-size", "3000"], "{d}/bad.lackey: --page"),
        (["trace", "stats", "{d}/trunc.bin"], "{d}/trunc.bin: offset 24: truncated record"),
        (
            ["trace", "simulate", "{d}/bad.lackey", "--policy", "lru", "--frames", "0"],
            "{d}/bad.lackey: --frames must be positive, got 0",
        ),
        (
            ["trace", "convert", "{d}/bad.lackey", "{d}/out.unknownext"],
            "{d}/out.unknownext: cannot tell the output format",
        ),
        (
            ["trace", "convert", "{d}/good.txt", "{d}/nodir/out.txt"],
            "{d}/nodir/out.txt: output folder",
        ),
    ],
)
def test_cli_errors_one_line_exit_2(capsys, tmp_path, argv, expected):
    write_file(tmp_path, "bad.lackey", "I  04001234,3\n L zz\n")
    write_file(tmp_path, "good.txt", "1\n")
    write_file(tmp_path, "mystery", "hello\n")
    write_file(tmp_path, "trunc.bin", struct.pack("<IQIq", 1, 2, 3, -1) + b"\x01\x02")
    rc = run_cli([a.format(d=tmp_path) for a in argv])
    err = one_error_line(capsys, rc)
    assert err.startswith("vmemsim: error: " + expected.format(d=tmp_path)), err


def test_cli_skip_bad_lines_reports_count(capsys, tmp_path):
    p = write_file(tmp_path, "t.lackey", "I  04001234,3\n L zz\n L 1000,4\n Q\n")
    assert run_cli(["trace", "stats", str(p), "--skip-bad-lines", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["references"] == 2
    assert err == (
        f"vmemsim: {p}: skipped 2 malformed lines (first at line 2: expected 'addr,size' "
        "after 'L', got 'zz')\n"
    )


def test_cli_convert_roundtrip_and_atomic_failure(capsys, tmp_path):
    out = tmp_path / "x.csv.zst"
    assert run_cli(["trace", "convert", str(DATA / "small.lackey"), str(out)]) == 0
    assert "8 references" in capsys.readouterr().out
    assert detect_format(out) == "csv"
    pages, writes, _ = read_all(open_trace(out))
    ref = read_all(open_trace(DATA / "small.lackey"))
    assert pages.tolist() == ref[0].tolist() and writes.tolist() == ref[1].tolist()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    # A failing convert leaves the existing output untouched and no temp file behind.
    good = out.read_bytes()
    bad = write_file(tmp_path, "bad.txt", "1\n2\nxx\n")
    rc = run_cli(["trace", "convert", str(bad), str(out)])
    err = one_error_line(capsys, rc)
    assert "line 3" in err
    assert out.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "x.csv.zst"]


def test_cli_convert_explicit_formats_and_id_overflow(capsys, tmp_path):
    out = tmp_path / "o.data"
    rc = run_cli(["trace", "convert", str(DATA / "small.pin"), str(out), "--to", "din"])
    assert rc == 0
    assert out.read_text().splitlines()[:2] == ["0 7ffd1000", "1 7ffd1000"]
    # txt ids too large to be page numbers of a 64-bit address space
    rc = run_cli(["trace", "convert", str(DATA / "small.txt"), str(tmp_path / "o.lackey")])
    err = one_error_line(capsys, rc)
    assert "does not fit a 64-bit address" in err
    assert not (tmp_path / "o.lackey").exists()


def test_cli_subprocess_error_has_no_traceback(tmp_path):
    bad = write_file(tmp_path, "bad.din", "0 1000\n9 1000\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "vmemsim.traces.cli", "trace", "stats", str(bad)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr == (
        f"vmemsim: error: {bad}: line 2: unknown label 9 (expected 0 read, 1 write, 2 ifetch, "
        "3, 4)\n"
    )
    assert r.stdout == ""


# --- simulate -----------------------------------------------------------------------------


class _FakeLRU:
    """Stand-in Replayer with the lead's API, to test the CLI plumbing on its own."""

    def __init__(self, frames, policy="lru", seed=0, clock_insert_referenced=False):
        if policy != "lru":
            raise ValueError(f"fake supports lru only, not {policy}")
        self.frames, self.refs, self.misses = frames, 0, 0
        self._od: dict[int, None] = {}

    def feed(self, dense, is_write):
        assert dense.dtype == np.int32 and is_write.dtype == np.bool_
        for p in dense.tolist():
            self.refs += 1
            if p in self._od:
                del self._od[p]
            else:
                self.misses += 1
                if len(self._od) >= self.frames:
                    del self._od[next(iter(self._od))]
            self._od[p] = None


def test_cli_simulate_with_fake_replayer(capsys, monkeypatch):
    fake = types.ModuleType("vmemsim.guest.replay")
    fake.Replayer = _FakeLRU
    monkeypatch.setitem(sys.modules, "vmemsim.guest.replay", fake)
    f = str(DATA / "small.lackey")
    assert run_cli(["trace", "simulate", f, "--policy", "lru", "--frames", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    expected = trace_stats(open_trace(DATA / "small.lackey")).lru_misses(2)
    assert (d["references"], d["misses"]) == (8, expected)
    assert d["refs_per_s"] > 0 and d["distinct_pages"] == 5
    assert run_cli(["trace", "simulate", f, "--policy", "lru", "--frames", "2"]) == 0
    assert "miss ratio" in capsys.readouterr().out
    rc = run_cli(["trace", "simulate", f, "--policy", "fifo", "--frames", "2"])
    assert "fake supports lru only" in one_error_line(capsys, rc)


@pytest.fixture
def replayer():
    """The lead's Replayer; skipped only while vmemsim.guest.replay does not exist."""
    try:
        from vmemsim.guest.replay import Replayer
    except ModuleNotFoundError as e:
        if e.name in ("vmemsim.guest.replay", "vmemsim.guest"):
            pytest.skip("vmemsim.guest.replay not written yet")
        raise
    return Replayer


def test_cli_simulate_lru_matches_stack_distances(capsys, replayer, tmp_path):
    rng = np.random.default_rng(2)
    pages = (rng.zipf(1.3, 5000) % 700).astype(np.int64)
    writes = rng.random(5000) < 0.25
    p = tmp_path / "z.din"
    write_trace([Chunk(pages, writes, None)], p)
    s = trace_stats(open_trace(p))
    for frames in (1, 16, 100):
        argv = ["trace", "simulate", str(p), "--policy", "lru", "--frames", str(frames)]
        assert run_cli([*argv, "--json", "--chunk", "1000"]) == 0
        d = json.loads(capsys.readouterr().out)
        assert d["references"] == 5000
        assert d["misses"] == s.lru_misses(frames), frames


def test_cli_simulate_another_policy_runs(capsys, replayer):
    # One non-LRU policy only: each policy costs seconds of engine compilation per process.
    argv = ["trace", "simulate", str(DATA / "small.din"), "--policy", "clock", "--frames", "1"]
    assert run_cli([*argv, "--seed", "3", "--clock-insert-referenced", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["references"] == 5 and 2 <= d["misses"] <= 5
