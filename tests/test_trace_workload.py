"""Trace replay as a workload inside the full simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vmemsim
from helpers import small
from vmemsim.engine import Simulation
from vmemsim.guest.replay import Replayer


def _trace(tmp_path: Path, n: int = 30_000, pages: int = 3000, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    ids = (rng.zipf(1.2, n) % pages) + 1000  # sparse ids: the feed densifies them
    path = tmp_path / "t.txt"
    path.write_text("\n".join(map(str, ids.tolist())) + "\n")
    return path


def _vm(trace: Path, size: str = "16MiB", memory: str = "64MiB", **proc: object) -> dict:
    return {"name": "tr", "memory": memory, "overhead": "1MiB",
            "guest": {"kernel": "2MiB", "policy": "lru", "swap": "64MiB", "free_min_pct": 0,
                      "free_low_pct": 0, "free_high_pct": 0},
            "process": [{"workload": "trace", "trace": str(trace), "size": size,
                         "rate": "50k/s", **proc}]}


def test_trace_replays_every_reference_once(tmp_path: Path) -> None:
    path = _trace(tmp_path)
    r = vmemsim.simulate(small(duration="2s", host={"memory": "256MiB"}, vm=[_vm(path)]))
    v = r.summary["vms"][0]
    ids = np.loadtxt(path, dtype=np.int64)
    assert v["refs"] == ids.size  # 30k references at 50k/s: done within the first second
    assert v["guest_faults"] == np.unique(ids).size  # all fit: cold misses only


def test_trace_in_a_small_guest_matches_the_replayer(tmp_path: Path) -> None:
    # 5 MiB of frames for users (7 MiB guest - 2 MiB kernel): the guest's LRU misses equal the
    # trace replayer's, which equal libCacheSim's (tests/test_policies.py).
    path = _trace(tmp_path)
    vm = _vm(path, memory="7MiB")
    vm["guest"]["swap_device"] = {"latency": "1us", "iops": "10M/s"}  # finish within the run
    sim = Simulation(small(duration="3s", host={"memory": "256MiB"}, vm=[vm]), check=True)
    sim.run()
    ids = np.loadtxt(path, dtype=np.int64)
    assert int(sim.vms[0].arrays.vc[0]) == ids.size
    _, dense = np.unique(ids, return_inverse=True)
    rep = Replayer(5 * 256, "lru")
    rep.feed(dense)
    assert int(sim.vms[0].arrays.vc[1]) == rep.misses


def test_trace_loops_when_asked(tmp_path: Path) -> None:
    path = _trace(tmp_path, n=10_000)
    r = vmemsim.simulate(small(duration="2s", host={"memory": "256MiB"},
                               vm=[_vm(path, loop=True)]))
    assert r.summary["vms"][0]["refs"] > 5 * 10_000


def test_trace_larger_than_the_process_is_an_error(tmp_path: Path) -> None:
    path = _trace(tmp_path, pages=3000)
    with pytest.raises(ValueError, match="more distinct pages than the process size"):
        vmemsim.simulate(small(duration="2s", host={"memory": "256MiB"},
                               vm=[_vm(path, size="4MiB")]))


def test_missing_trace_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trace file not found"):
        Simulation(small(vm=[_vm(tmp_path / "nope.txt")]))


def test_pacing_by_timestamps(tmp_path: Path) -> None:
    # 1000 references per second of trace time for 4 s; the process could do 50k/s.
    path = tmp_path / "paced.csv"
    rows = [f"{i / 1000:.4f},{i % 300},0" for i in range(4000)]
    path.write_text("time,obj_id,op\n" + "\n".join(rows) + "\n")
    r = vmemsim.simulate(small(duration="6s", host={"memory": "256MiB"},
                               vm=[_vm(path, pace=True)]))
    refs = r.vms["refs"].to_numpy()
    assert refs.sum() == 4000
    # 1000 a second, each second's (a reference stamped on a second's edge may fall on
    # either side: measured 1001, 1000, 1000, 999), then nothing: the trace ends at 3.999 s.
    np.testing.assert_allclose(refs, [1000, 1000, 1000, 1000, 0, 0], atol=1)
    unpaced = vmemsim.simulate(small(duration="6s", host={"memory": "256MiB"},
                                     vm=[_vm(path)]))
    assert unpaced.vms["refs"].iloc[0] == 4000  # as fast as the process can


def test_pacing_needs_timestamps(tmp_path: Path) -> None:
    path = _trace(tmp_path, n=100)
    with pytest.raises(ValueError, match="no timestamps"):
        vmemsim.simulate(small(duration="2s", host={"memory": "256MiB"},
                               vm=[_vm(path, pace=True)]))
