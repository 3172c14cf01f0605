"""A finished (or interrupted) run: the time series as DataFrames plus the summary.

`Result.save(dir)` writes every file atomically (temporary file, then rename), so an interrupted
write never leaves a half file and never clobbers a good one. `Result.load(dir)` reads it back.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vmemsim.metrics.columns import HOST_NAMES, STATE_COLUMNS, TARGET_MAX_COLUMNS, VM_NAMES


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Write through `writer(tmp_path)` into a temporary file beside `path`, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.chmod(tmp_path, _FILE_MODE)  # mkstemp makes 0600; results are for sharing
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


@dataclass
class Result:
    """Time series and summary of one run.

    host: one row per simulated second, columns `metrics.columns.HOST_COLUMNS`.
    vms: one row per VM per simulated second, columns `metrics.columns.VM_COLUMNS`.
    summary: the contents of summary.json (see README, "What summary.json says").
    """

    host: pd.DataFrame
    vms: pd.DataFrame
    summary: dict[str, Any]
    files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.summary.get("scenario", "run"))

    @property
    def transitions(self) -> pd.DataFrame:
        return pd.DataFrame(self.summary.get("transitions", []),
                            columns=["time_s", "from", "to", "free_pct"])

    def vm(self, name: str) -> pd.DataFrame:
        """The time series of one VM, indexed by time."""
        return self.vms[self.vms["vm"] == name].set_index("time_s")

    def save(self, out: Path | str, *, parquet: bool = True) -> list[Path]:
        out = Path(out)
        written: list[Path] = []

        def put(name: str, writer: Callable[[Path], None]) -> None:
            atomic_write(out / name, writer)
            written.append(out / name)

        put("host.csv", lambda p: self.host.to_csv(p, index=False, float_format="%.6g"))
        put("vms.csv", lambda p: self.vms.to_csv(p, index=False, float_format="%.6g"))
        if parquet:
            put("host.parquet", lambda p: self.host.to_parquet(p, index=False))
            put("vms.parquet", lambda p: self.vms.to_parquet(p, index=False))
        # summary last: its presence with "complete" tells readers the rest is final.
        put("summary.json", lambda p: p.write_text(
            json.dumps(self.summary, indent=2, sort_keys=False) + "\n", encoding="utf-8"))
        self.files = [p.name for p in written]
        return written

    @classmethod
    def load(cls, folder: Path | str) -> Result:
        folder = Path(folder)
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        host = pd.read_csv(folder / "host.csv")
        vms = pd.read_csv(folder / "vms.csv")
        # Results written before these columns existed (issue 21) load with them unknown.
        for frame, cols in ((host, STATE_COLUMNS), (vms, TARGET_MAX_COLUMNS)):
            for c in cols:
                if c not in frame.columns:
                    frame[c] = float("nan")
        missing = [c for c in HOST_NAMES if c not in host.columns]
        missing += [c for c in VM_NAMES if c not in vms.columns]
        if missing:
            raise ValueError(f"{folder}: result files lack columns {', '.join(missing)}")
        return cls(host=host, vms=vms, summary=summary)
