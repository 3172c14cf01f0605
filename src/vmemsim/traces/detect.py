"""Guess a trace's format from its name and its first (decompressed) bytes."""

from __future__ import annotations

import os
import re

from ._io import sniff
from .oracle import ORACLE_RECORD, PLAUSIBLE, oracle_problem

_SNIFF_BYTES = 1 << 16
_SNIFF_LINES = 64

# Extensions after stripping .zst.
_EXT = {
    ".lackey": "lackey",
    ".din": "din",
    ".pin": "pin",
    ".pinatrace": "pin",
    ".csv": "csv",
    ".txt": "txt",
    ".bin": "oracleGeneral",
    ".oraclegeneral": "oracleGeneral",
}

_WEAK_EXT = (".txt", ".bin")  # common for other content too: the content may override these

_LINE_RES = {
    "lackey": re.compile(r"\s*[ILSM]\s+(?:0[xX])?[0-9a-fA-F]{1,16},\d+\s*"),
    "pin": re.compile(
        r"\s*(?:(?:0[xX])?[0-9a-fA-F]{1,16}|\(nil\)):\s+[RW]\s+"
        r"(?:(?:0[xX])?[0-9a-fA-F]{1,16}|\(nil\))\s*"
    ),
    "din": re.compile(r"\s*[0-4]\s+(?:0[xX])?[0-9a-fA-F]{1,16}(?:\s.*)?"),
    "txt": re.compile(r"\s*\d{1,20}\s*"),
}


def _skippable(fmt: str, line: str) -> bool:
    s = line.strip()
    if not s:
        return True
    if fmt == "lackey":
        return s.startswith(("==", "--"))
    if fmt == "pin":
        return s.startswith("#")
    if fmt == "din":
        return s[:1] in ("3", "4") and (len(s) == 1 or s[1].isspace())
    return False


def _name_hint(path: str | os.PathLike[str]) -> tuple[str | None, bool]:
    """(format implied by the file name, whether that hint is specific), .zst ignored."""
    name = os.path.basename(os.fspath(path)).lower()
    for z in (".zst", ".zstd"):
        if name.endswith(z):
            name = name[: -len(z)]
    if "oraclegeneral" in name:
        return "oracleGeneral", True
    for ext, fmt in _EXT.items():
        if name.endswith(ext):
            return fmt, not name.endswith(_WEAK_EXT)
    return None, False


def format_from_name(path: str | os.PathLike[str]) -> str | None:
    """Format implied by the file name (``.zst`` ignored), or None."""
    return _name_hint(path)[0]


def format_from_content(head: bytes, truncated: bool = True) -> list[str]:
    """Formats consistent with the first bytes, best first (may be empty)."""
    if not head:
        return []
    if b"\x00" in head[:4096]:
        return ["oracleGeneral"]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a multi-byte char cut by the sniff window
            return ["oracleGeneral"]
        text = head[: e.start].decode("utf-8")
    lines = text.split("\n")
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the sniff window
    lines = lines[: _SNIFF_LINES * 4]
    out = []
    for fmt, rx in _LINE_RES.items():
        body = [ln for ln in lines if not _skippable(fmt, ln)][:_SNIFF_LINES]
        if fmt == "lackey" and not body and any(ln.startswith("==") for ln in lines):
            out.append(fmt)  # only valgrind banners so far: lackey output
        elif body and all(rx.fullmatch(ln) for ln in body):
            out.append(fmt)
    data = [ln for ln in lines if ln.strip()]
    if data and "," in data[0] and not out:
        # A header row with at least one non-numeric field, then rows of the same width.
        ncol = data[0].count(",")
        if any(not re.fullmatch(r"\s*[-+.\d]*\s*", f) for f in data[0].split(",")) and all(
            ln.count(",") == ncol for ln in data[1:_SNIFF_LINES]
        ):
            out.append("csv")
    return out


def detect_format(path: str | os.PathLike[str]) -> str:
    """Format name of the trace at ``path``, from its extension and its content.

    A specific extension (.lackey, .din, .pin, .csv, a name containing "oracleGeneral") is
    trusted, so a malformed file is reported by its reader at the bad line. Otherwise (no
    extension, .txt, .bin, .log, ...) the first 64 KiB decide: a lackey log saved as .txt
    is lackey; binary content must be plausible oracleGeneral records (``oracle_problem``).
    ``.txt``/``.bin`` are the fallback when the content matches nothing. ValueError (saying
    why) if neither tells.
    """
    by_name, specific = _name_hint(path)
    if specific:
        return by_name
    head = sniff(path, _SNIFF_BYTES)
    cands = format_from_content(head, truncated=len(head) == _SNIFF_BYTES)
    if cands == ["oracleGeneral"]:
        # Binary, and any bytes decode as records: only plausible ones make it oracleGeneral.
        bad = oracle_problem(head)
        if bad is not None:
            raise ValueError(
                f"cannot detect the trace format: the content is binary, but {PLAUSIBLE}: "
                f"record {bad[0]} (offset {bad[0] * ORACLE_RECORD}): {bad[1]}"
            )
    if by_name in cands:
        return by_name
    if cands:
        return cands[0]
    if by_name is not None:
        return by_name
    what = "it is empty" if not head else "its content matches no known format"
    raise ValueError(
        f"cannot detect the trace format: {what} and its name has no known extension "
        "(give the format explicitly)"
    )
