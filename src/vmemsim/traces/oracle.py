"""libCacheSim's oracleGeneral record, and the rules every real trace of it satisfies: shared
by the reader (readers.OracleGeneralReader) and format detection (detect)."""

from __future__ import annotations

import numpy as np

ORACLE_DTYPE = np.dtype(
    [
        ("clock_time", "<u4"),
        ("obj_id", "<u8"),
        ("obj_size", "<u4"),
        ("next_access_vtime", "<i8"),
    ]
)
ORACLE_RECORD = ORACLE_DTYPE.itemsize  # 24: numpy packs unaligned structs, matching the C file
assert ORACLE_RECORD == 24

# Any 24 bytes decode as a record, so the first records of every oracleGeneral input are
# checked against what real traces always satisfy; random or misnamed bytes break a rule
# within a few records. Only the start is checked, which keeps it cheap on any trace size.
ORACLE_CHECKED = 4096  # records
ORACLE_MAX_SIZE = 1 << 31  # a size that is negative as int32 is garbage, not an object
PLAUSIBLE = "not a plausible oracleGeneral trace"


def oracle_problem(
    raw: bytes | np.ndarray, first: int = 0, prev_time: int | None = None
) -> tuple[int, str] | None:
    """The first implausible record among the whole records in ``raw``: ``(its index, the
    rule it breaks)``, or None. ``first`` is the index of the first record in the file (the
    next-access rule depends on it), ``prev_time`` the clock_time of the record before it.

    Rules: clock_time never decreases; obj_size is below 2**31 (0 is allowed: real traces
    have such requests, which libCacheSim's reader skips by default); next_access_vtime is
    -1 (no next access) or later than the record itself (libCacheSim counts requests from 1,
    other writers from 0, both give an index above the record's own).
    """
    n = len(raw) // ORACLE_RECORD
    if n == 0:
        return None
    rec = np.frombuffer(raw, ORACLE_DTYPE, count=n)
    t = rec["clock_time"].astype(np.int64)
    before = np.empty(n, np.int64)
    before[0] = t[0] if prev_time is None else prev_time
    before[1:] = t[:-1]
    size = rec["obj_size"]
    nxt = rec["next_access_vtime"]
    index = np.arange(first, first + n, dtype=np.int64)
    bad_t = t < before
    bad_size = size >= ORACLE_MAX_SIZE
    bad_next = (nxt != -1) & (nxt <= index)
    bad = bad_t | bad_size | bad_next
    if not bad.any():
        return None
    k = int(np.argmax(bad))
    i = first + k
    if bad_t[k]:
        return i, (
            f"clock_time {t[k]} is earlier than the previous record's {before[k]} "
            "(timestamps never decrease)"
        )
    if bad_size[k]:
        return i, f"obj_size {size[k]} is not below 2**31 (no object is that large)"
    return i, (
        f"next_access_vtime {nxt[k]} is neither -1 nor after the record itself "
        "(it is the index of the next request to the object)"
    )
