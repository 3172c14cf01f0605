"""Memory-reference traces: streaming readers/writers, dense page ids, LRU statistics.

Typical use::

    from vmemsim.traces import open_trace, trace_stats
    reader = open_trace("app.lackey.zst", page_size=4096)
    stats = trace_stats(reader)
"""

from .detect import detect_format
from .errors import TraceFormatError
from .pagemap import PageMap
from .readers import (
    DEFAULT_CHUNK,
    DEFAULT_PAGE_SIZE,
    FORMATS,
    Chunk,
    CsvReader,
    DinReader,
    LackeyReader,
    OracleGeneralReader,
    PinReader,
    TraceReader,
    TxtReader,
    iter_chunks,
    normalize_format,
    open_trace,
    page_shift,
)
from .stats import ReuseDistance, TraceStats, trace_stats
from .writers import TraceWriter, open_writer, write_trace

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_PAGE_SIZE",
    "FORMATS",
    "Chunk",
    "CsvReader",
    "DinReader",
    "LackeyReader",
    "OracleGeneralReader",
    "PageMap",
    "PinReader",
    "ReuseDistance",
    "TraceFormatError",
    "TraceReader",
    "TraceStats",
    "TraceWriter",
    "TxtReader",
    "detect_format",
    "iter_chunks",
    "normalize_format",
    "open_trace",
    "open_writer",
    "page_shift",
    "trace_stats",
    "write_trace",
]
