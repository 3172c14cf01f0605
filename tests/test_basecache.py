"""The cache of baselines (vmemsim.basecache): a run that reuses them gives the same results as
one that computes them, and only what a what-if changed is recomputed."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

import vmemsim
from helpers import BASE, merge, small
from vmemsim import basecache
from vmemsim.baseline import BASE_COLUMNS, Baseline, baseline_groups, baseline_run
from vmemsim.cli import main

NAMES = ["a", "b", "c"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own (conftest turns the cache off for all others)."""
    where = tmp_path / "cache"
    monkeypatch.setenv(basecache.ENV, str(where))
    return where


def _same(r1: vmemsim.Result, r2: vmemsim.Result) -> None:
    pd.testing.assert_frame_equal(r1.vms, r2.vms)
    pd.testing.assert_frame_equal(r1.host, r2.host)
    assert r1.summary["vms"] == r2.summary["vms"]
    assert r1.summary["phases"] == r2.summary["phases"]


def test_a_second_run_takes_every_baseline_from_the_cache_with_the_same_files(
        tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tomli_w

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(merge(BASE, {"duration": "6s", "baseline": True})))
    outs = [tmp_path / f"r{k}" for k in range(3)]
    args = ["run", str(path), "--quiet", "--no-report"]
    loud = [a for a in args if a != "--quiet"]  # the summary says where baselines came from
    assert main([*loud, "--out", str(outs[0])]) == 0
    first = " ".join(capsys.readouterr().out.split())
    assert "wall time" in first and "from the cache" not in first
    assert sorted(p.suffix for p in cache.iterdir()) == [".npz"] * 3  # one entry per VM
    assert main([*loud, "--out", str(outs[1])]) == 0
    assert "Baselines of a, b, c from the cache" in " ".join(capsys.readouterr().out.split())
    shutil.rmtree(cache)
    assert main([*args, "--out", str(outs[2]), "--no-cache"]) == 0
    assert not cache.exists()  # --no-cache writes nothing either
    for name in ("host.csv", "vms.csv", "esxtop.csv", "host.parquet", "vms.parquet"):
        first = (outs[0] / name).read_bytes()
        assert all((o / name).read_bytes() == first for o in outs[1:]), name
    sums = [json.loads((o / "summary.json").read_text()) for o in outs]
    assert [s.pop("baseline_cached") for s in sums] == [[], NAMES, []]
    for s in sums:  # what else differs between identical runs: the wall clock
        s.pop("wall_s")
        s.pop("speed_x_realtime")
    assert sums[0] == sums[1] == sums[2]
    assert all(v["base_throughput"] > 0 for v in sums[0]["vms"][:2])  # a and b did run


def test_a_what_if_recomputes_only_the_vms_it_changed(cache: Path) -> None:
    sc = small(baseline=True, duration="4s")
    assert vmemsim.simulate(sc).summary["baseline_cached"] == []
    # Another host: the same baselines (an ample host that stays high swaps nothing).
    host = {"memory": "200MiB", "vmkernel": "24MiB",
            "swap_device": {"latency": "5ms", "iops": "1k/s"}}
    bigger = small(baseline=True, duration="4s", host=host, name="what-if")
    r = vmemsim.simulate(bigger)
    assert r.summary["baseline_cached"] == NAMES
    _same(r, vmemsim.simulate(bigger, cache=False))
    # What changes every VM's baseline: the seed (every stream), the duration, the tick, the
    # hypervisor's settings, the costs.
    for over in ({"seed": 8}, {"duration": "5s"}, {"tick": "50ms"},
                 {"hypervisor": {"sample_period": "4s"}}, {"costs": {"guest_fault": "3us"}}):
        kw = {"baseline": True, "duration": "4s", **over}
        assert vmemsim.simulate(small(**kw)).summary["baseline_cached"] == [], over
    # A VM's streams are named by its name, not its place: moved, it keeps its baseline.
    moved = small(baseline=True, duration="4s", vm=[BASE["vm"][1], BASE["vm"][0], BASE["vm"][2]])
    r = vmemsim.simulate(moved)
    assert sorted(r.summary["baseline_cached"]) == NAMES
    _same(r, vmemsim.simulate(moved, cache=False))


@pytest.mark.parametrize("parallel", [False, True])
def test_a_changed_vm_is_computed_beside_or_after_the_run(cache: Path, parallel: bool) -> None:
    """One VM changed: its baseline is computed (in forked processes, or after the scenario in
    this one), the others' are reused, and the results are those of computing all three."""
    sc = small(baseline=True, duration="4s")
    vmemsim.simulate(sc, parallel=parallel)
    vms = copy.deepcopy(BASE["vm"])
    vms[1]["process"][0]["rate"] = "80k/s"
    changed = small(baseline=True, duration="4s", vm=vms)
    r = vmemsim.simulate(changed, parallel=parallel)
    assert r.summary["baseline_cached"] == ["a", "c"]
    _same(r, vmemsim.simulate(changed, cache=False, parallel=parallel))
    assert r.summary["vms"][1]["base_throughput"] != \
        vmemsim.simulate(sc, cache=False).summary["vms"][1]["base_throughput"]


def test_a_vm_that_replays_a_trace_is_always_computed(tmp_path: Path, cache: Path) -> None:
    """The scenario names the trace's file, not what it holds: a file rewritten between two
    runs must not get the old file's baseline."""
    import numpy as np

    path = tmp_path / "t.txt"
    tr = {"name": "tr", "memory": "64MiB", "overhead": "1MiB",
          "guest": {"kernel": "2MiB", "swap": "64MiB"},
          "process": [{"workload": "trace", "trace": str(path), "size": "16MiB",
                       "rate": "50k/s", "loop": True}]}
    sc = small(baseline=True, duration="3s", vm=[BASE["vm"][0], tr])
    bases = []
    for seed in (5, 6):
        ids = np.random.default_rng(seed).zipf(1.2, 20_000) % 3000
        path.write_text("\n".join(map(str, ids.tolist())) + "\n")
        r = vmemsim.simulate(sc)
        assert r.summary["baseline_cached"] == (["a"] if seed == 6 else [])
        _same(r, vmemsim.simulate(sc, cache=False))
        bases.append(r.summary["vms"][1]["base_throughput"])
    assert bases[0] != bases[1]  # the premise: the two traces give different baselines
    assert len(list(cache.glob("*.npz"))) == 1  # only a's


def test_a_damaged_or_foreign_entry_is_not_used(cache: Path) -> None:
    sc = small(baseline=True, duration="4s")
    ref = vmemsim.simulate(sc, cache=False)
    vmemsim.simulate(sc)
    files = sorted(cache.glob("*.npz"))
    assert len(files) == 3
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated
    shutil.copy(files[1], files[2])  # another VM's entry under this one's name
    r = vmemsim.simulate(sc)
    assert len(r.summary["baseline_cached"]) == 1
    _same(r, ref)
    # Both were computed again and stored in their place.
    assert sorted(cache.glob("*.npz")) == files
    r = vmemsim.simulate(sc)
    assert r.summary["baseline_cached"] == NAMES
    _same(r, ref)


def test_a_file_that_is_not_an_entry_is_replaced(cache: Path) -> None:
    import numpy as np

    sc = small(baseline=True, duration="4s")
    vmemsim.simulate(sc)
    files = sorted(cache.glob("*.npz"))
    with open(files[0], "wb") as f:
        np.save(f, np.arange(3))  # a plain array under an entry's name
    files[1].write_bytes(b"")
    assert len(vmemsim.simulate(sc).summary["baseline_cached"]) == 1
    assert vmemsim.simulate(sc).summary["baseline_cached"] == NAMES
    mask = os.umask(0)
    os.umask(mask)
    assert {f.stat().st_mode & 0o777 for f in files} == {0o666 & ~mask}  # not mkstemp's 0600


def test_interacting_baseline_vms_are_neither_read_nor_stored(cache: Path) -> None:
    """A VM over its limit is swapped by its host even when memory is ample, through the
    host's one swap device: the VMs' baselines are then not each their own."""
    vms = copy.deepcopy(BASE["vm"])
    vms[0]["limit"] = "40MiB"
    sc = small(baseline=True, duration="4s", vm=vms)
    for _ in range(2):
        assert vmemsim.simulate(sc).summary["baseline_cached"] == []
    assert not cache.exists()
    with pytest.raises(ValueError, match="VMs that run apart"):
        baseline_groups(sc, 2, among=(1, 2))  # a's effect on them would be missing


def test_the_cache_turned_off_is_neither_read_nor_written(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = small(baseline=True, duration="4s")
    vmemsim.simulate(sc)
    before = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    for off in ("off", "0", ""):
        monkeypatch.setenv(basecache.ENV, off)
        assert basecache.folder() is None
        assert vmemsim.simulate(sc).summary["baseline_cached"] == []
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_an_unwritable_cache_is_skipped(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(basecache.ENV, str(blocker / "cache"))
    sc = small(baseline=True, duration="4s")
    r = vmemsim.simulate(sc)
    assert r.summary["baseline_cached"] == []
    _same(r, vmemsim.simulate(sc, cache=False))
    assert blocker.read_text() == "not a folder"


def test_a_run_stopped_early_computes_its_baseline(cache: Path) -> None:
    """The cache holds whole runs; a run interrupted at 2 s of 4 needs its baseline to 2 s."""
    sc = small(baseline=True, duration="4s")
    vmemsim.simulate(sc)
    b = Baseline(sc, parallel=False)
    assert b.cached_names == NAMES and b.missing == ()
    base = b.result(2.0)
    assert b.cached_names == []
    pd.testing.assert_frame_equal(base.vms, baseline_run(sc, 2.0).vms[BASE_COLUMNS])
    assert base.vms["time_s"].max() == 2.0


def test_prune_keeps_the_most_recently_used(tmp_path: Path) -> None:
    for k in range(10):
        p = tmp_path / f"{k}.npz"
        p.write_bytes(b"x")
        os.utime(p, (1000 + k, 1000 + k))
    (tmp_path / "notes.txt").write_text("kept: not an entry")
    basecache._prune(tmp_path, keep=10)  # not over: nothing goes
    assert len(list(tmp_path.glob("*.npz"))) == 10
    basecache._prune(tmp_path, keep=8)
    assert sorted(int(p.stem) for p in tmp_path.glob("*.npz")) == [4, 5, 6, 7, 8, 9]
    assert (tmp_path / "notes.txt").exists()
