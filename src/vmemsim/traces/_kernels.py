"""Compiled line parsers for the text trace formats.

Each kernel scans a uint8 buffer of whole lines from ``pos`` to ``end`` and appends page
numbers / write flags to preallocated chunk arrays starting at ``fill``. It stops when
  * the buffer is consumed            -> status OK,
  * the next line does not fit        -> status FULL (``pos`` = start of that line),
  * a line is malformed               -> status BAD  (``pos`` = start of that line).
It returns ``(pos, fill, lines_consumed, status)``. The kernels only decide *whether* a line
is valid; the Python side re-parses a bad line to explain *why* (rare, so speed is moot).
Parsing bytes in numba runs at hundreds of MB/s, far above Python's ``str.split`` + ``int``.
"""

from __future__ import annotations

import numpy as np

from vmemsim.kernels.jit import kernel

OK = 0
FULL = 1
BAD = 2

_NL = 10
_U64_MAX_DIV10 = np.uint64(1844674407370955161)  # (2**64 - 1) // 10


@kernel(inline="always")
def _is_ws(c):
    return c == 32 or c == 9 or c == 13


@kernel(inline="always")
def _hexval(c):
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


@kernel
def _eol(buf, i, end):
    while i < end and buf[i] != _NL:
        i += 1
    return i


@kernel
def _skip_ws(buf, i, eol):
    while i < eol and _is_ws(buf[i]):
        i += 1
    return i


@kernel
def _parse_hex(buf, i, eol, allow_prefix):
    """Hex number at i (optional 0x). Returns (value, new_i, ok); at most 16 digits."""
    if allow_prefix and i + 1 < eol and buf[i] == 48 and (buf[i + 1] == 120 or buf[i + 1] == 88):
        i += 2
    v = np.uint64(0)
    nd = 0
    while i < eol:
        h = _hexval(buf[i])
        if h < 0:
            break
        if nd == 16:
            return v, i, False
        v = (v << np.uint64(4)) | np.uint64(h)
        nd += 1
        i += 1
    return v, i, nd > 0


@kernel
def _parse_dec_u64(buf, i, eol):
    """Decimal uint64 at i. Returns (value, new_i, ok); rejects overflow past 2**64 - 1."""
    v = np.uint64(0)
    nd = 0
    while i < eol:
        c = buf[i]
        if c < 48 or c > 57:
            break
        d = np.uint64(c - 48)
        if v > _U64_MAX_DIV10 or (v == _U64_MAX_DIV10 and d > np.uint64(5)):
            return v, i, False
        v = v * np.uint64(10) + d
        nd += 1
        i += 1
    return v, i, nd > 0


@kernel
def _only_ws(buf, i, eol):
    return _skip_ws(buf, i, eol) == eol


@kernel
def _emit_range(first, npages, w, pages, writes, fill):
    for k in range(npages):
        pages[fill] = np.int64(first + np.uint64(k))
        writes[fill] = w
        fill += 1
    return fill


@kernel
def parse_lackey(buf, pos, end, pages, writes, fill, shift, include_instr):
    cap = pages.shape[0]
    sh = np.uint64(shift)
    lines = 0
    while pos < end:
        eol = _eol(buf, pos, end)
        nxt = eol + 1 if eol < end else end
        i = _skip_ws(buf, pos, eol)
        if i == eol:
            pos = nxt
            lines += 1
            continue
        c = buf[i]
        # valgrind's own messages: "==1234== ..." and (with -v) "--1234-- ..."
        if (c == 61 or c == 45) and i + 1 < eol and buf[i + 1] == c:
            pos = nxt
            lines += 1
            continue
        instr = c == 73  # I
        if c == 73 or c == 76:  # I, L
            w = False
        elif c == 83 or c == 77:  # S, M (modify = one write reference)
            w = True
        else:
            return pos, fill, lines, BAD
        i += 1
        if i >= eol or not _is_ws(buf[i]):
            return pos, fill, lines, BAD
        i = _skip_ws(buf, i, eol)
        addr, i, ok = _parse_hex(buf, i, eol, True)
        if not ok or i >= eol or buf[i] != 44:  # ','
            return pos, fill, lines, BAD
        size, i, ok = _parse_dec_u64(buf, i + 1, eol)
        if not ok or not _only_ws(buf, i, eol):
            return pos, fill, lines, BAD
        if instr and not include_instr:
            pos = nxt
            lines += 1
            continue
        first = addr >> sh
        last_addr = addr + size - np.uint64(1) if size > np.uint64(0) else addr
        if last_addr < addr:  # wrapped past 2**64: clamp to the top page
            last_addr = np.uint64(0xFFFFFFFFFFFFFFFF)
        npages = np.int64((last_addr >> sh) - first) + 1
        if npages > cap:
            return pos, fill, lines, BAD
        if fill + npages > cap:
            return pos, fill, lines, FULL
        fill = _emit_range(first, npages, w, pages, writes, fill)
        pos = nxt
        lines += 1
    return pos, fill, lines, OK


@kernel
def parse_din(buf, pos, end, pages, writes, fill, shift, include_instr):
    cap = pages.shape[0]
    sh = np.uint64(shift)
    lines = 0
    while pos < end:
        eol = _eol(buf, pos, end)
        nxt = eol + 1 if eol < end else end
        i = _skip_ws(buf, pos, eol)
        if i == eol:
            pos = nxt
            lines += 1
            continue
        label, i, ok = _parse_dec_u64(buf, i, eol)
        if not ok or label > np.uint64(4):
            return pos, fill, lines, BAD
        if label >= np.uint64(3):  # 3 = escape, 4 = cache flush: not memory references
            pos = nxt
            lines += 1
            continue
        if i >= eol or not _is_ws(buf[i]):
            return pos, fill, lines, BAD
        i = _skip_ws(buf, i, eol)
        addr, i, ok = _parse_hex(buf, i, eol, True)
        # Anything after the address (e.g. a size field some tools add) is ignored.
        if not ok or (i < eol and not _is_ws(buf[i])):
            return pos, fill, lines, BAD
        if label == np.uint64(2) and not include_instr:
            pos = nxt
            lines += 1
            continue
        if fill + 1 > cap:
            return pos, fill, lines, FULL
        pages[fill] = np.int64(addr >> sh)
        writes[fill] = label == np.uint64(1)
        fill += 1
        pos = nxt
        lines += 1
    return pos, fill, lines, OK


@kernel
def _parse_ptr(buf, i, eol):
    """A %p-printed pointer: 0x-hex, bare hex, or glibc's "(nil)" for 0."""
    if (
        i + 4 < eol
        and buf[i] == 40
        and buf[i + 1] == 110
        and buf[i + 2] == 105
        and buf[i + 3] == 108
        and buf[i + 4] == 41
    ):
        return np.uint64(0), i + 5, True
    return _parse_hex(buf, i, eol, True)


@kernel
def parse_pin(buf, pos, end, pages, writes, fill, shift, include_instr):
    cap = pages.shape[0]
    sh = np.uint64(shift)
    lines = 0
    while pos < end:
        eol = _eol(buf, pos, end)
        nxt = eol + 1 if eol < end else end
        i = _skip_ws(buf, pos, eol)
        if i == eol or buf[i] == 35:  # blank, or "#eof" / other '#' comment
            pos = nxt
            lines += 1
            continue
        _ip, i, ok = _parse_ptr(buf, i, eol)
        if not ok or i >= eol or buf[i] != 58:  # ':'
            return pos, fill, lines, BAD
        i += 1
        if i >= eol or not _is_ws(buf[i]):
            return pos, fill, lines, BAD
        i = _skip_ws(buf, i, eol)
        if i >= eol or (buf[i] != 82 and buf[i] != 87):  # R / W
            return pos, fill, lines, BAD
        w = buf[i] == 87
        i += 1
        if i >= eol or not _is_ws(buf[i]):
            return pos, fill, lines, BAD
        i = _skip_ws(buf, i, eol)
        addr, i, ok = _parse_ptr(buf, i, eol)
        if not ok or not _only_ws(buf, i, eol):
            return pos, fill, lines, BAD
        if fill + 1 > cap:
            return pos, fill, lines, FULL
        pages[fill] = np.int64(addr >> sh)
        writes[fill] = w
        fill += 1
        pos = nxt
        lines += 1
    return pos, fill, lines, OK


@kernel
def parse_txt(buf, pos, end, pages, writes, fill, shift, include_instr):
    cap = pages.shape[0]
    sh = np.uint64(shift)
    lines = 0
    while pos < end:
        eol = _eol(buf, pos, end)
        nxt = eol + 1 if eol < end else end
        i = _skip_ws(buf, pos, eol)
        if i == eol:
            pos = nxt
            lines += 1
            continue
        v, i, ok = _parse_dec_u64(buf, i, eol)
        if not ok or not _only_ws(buf, i, eol):
            return pos, fill, lines, BAD
        if fill + 1 > cap:
            return pos, fill, lines, FULL
        # ids >= 2**63 (hashed keys) keep their bits: int64 is a reinterpretation, not a clamp
        pages[fill] = np.int64(v >> sh)
        writes[fill] = False
        fill += 1
        pos = nxt
        lines += 1
    return pos, fill, lines, OK


_LOW32 = np.uint64(0xFFFFFFFF)
_U32 = np.uint64(32)


@kernel
def unpack_oracle(words, shift, ids, times):
    """Split packed oracleGeneral records, read as 3 little-endian uint64 words each.

    A record is {u32 clock_time; u64 obj_id; u32 obj_size; i64 next}: word 0 holds the time
    and the low half of the id, word 1 the id's high half. One pass writes both outputs,
    where numpy would make a strided copy per field (2-3x slower).
    """
    sh = np.uint64(shift)
    for k in range(ids.size):
        w0 = words[3 * k]
        w1 = words[3 * k + 1]
        times[k] = np.float64(w0 & _LOW32)
        # ids >= 2**63 keep their bits: int64 is a reinterpretation, not a clamp
        ids[k] = np.int64(((w0 >> _U32) | (w1 << _U32)) >> sh)
