"""The one exception type that trace readers raise for malformed input."""

from __future__ import annotations

import os


class TraceFormatError(ValueError):
    """Malformed trace input.

    ``where`` is a 1-based line number for text formats or a 0-based byte offset (into the
    decompressed stream) for binary formats; ``unit`` says which ("line" or "offset").
    ``str()`` is a single line: ``trace.lackey: line 17: expected 'addr,size' after 'L', got 'zz'``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        where: int | None,
        message: str,
        *,
        unit: str = "line",
    ) -> None:
        self.path = os.fspath(path)
        self.where = where
        self.message = message
        self.unit = unit
        super().__init__(str(self))

    @property
    def line(self) -> int | None:
        return self.where if self.unit == "line" else None

    @property
    def offset(self) -> int | None:
        return self.where if self.unit == "offset" else None

    def __str__(self) -> str:
        # One line, always: messages quote offending text via repr-like quoting, and a
        # stray newline inside a message would break the CLI's one-line error contract.
        msg = self.message.replace("\n", "\\n")
        if self.where is None:
            return f"{self.path}: {msg}"
        return f"{self.path}: {self.unit} {self.where}: {msg}"

    def __reduce__(self):  # keep picklable despite the keyword-only argument
        return (_rebuild, (self.path, self.where, self.message, self.unit))


def _rebuild(path: str, where: int | None, message: str, unit: str) -> TraceFormatError:
    return TraceFormatError(path, where, message, unit=unit)
