"""Two builds side by side: this work tree against a git revision, on the same scenario.

    .venv/bin/python bench/builds.py [--base REV] [--scenario NAME] [--reps N] [--cli]

The base revision is checked out into a temporary worktree and imported from there
(PYTHONPATH), with the same interpreter and packages as this tree. Each repetition runs the
scenario once with each build, alternating which goes first, in a child interpreter of its own
(the process's wall time counts); both builds' kernels are loaded before timing. Reports each
build's median wall time and the median of the per-repetition ratios (this machine is noisy:
only a pair run back to back shares its state). Without --cli, `simulate(parallel=False)`: the
simulation alone, baseline included, in one process; with --cli, `vmemsim run --no-report
--no-cache` as a user runs it. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, ROOT, base_worktree, median  # noqa: E402

API = """
import json, sys, time
import vmemsim
sc = vmemsim.load_scenario(sys.argv[1])
t = time.perf_counter()
r = vmemsim.simulate(sc, parallel=False, cache=False)
w = time.perf_counter() - t
print(json.dumps({"wall": w, "refs": int(r.vms["refs"].sum()),
                  "states": r.summary["host"]["time_in_state_s"]}))
"""


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src), VMEMSIM_BASELINE_CACHE="off")
    env.pop("NUMBA_CACHE_DIR", None)  # each build keys its own cache on its sources
    return env


def _run(src: Path, scenario: str, cli: bool, out: Path) -> dict:
    if cli:
        cmd = [PY, "-c", "from vmemsim.cli import entry; entry()", "run", scenario,
               "--no-report", "--no-cache", "--quiet", "--out", str(out)]
        t = time.perf_counter()
        subprocess.run(cmd, env=_env(src), check=True, capture_output=True, timeout=1800)
        summary = json.loads((out / "summary.json").read_text())
        return {"wall": time.perf_counter() - t,
                "refs": sum(v["refs"] for v in summary["vms"])}
    p = subprocess.run([PY, "-c", API, scenario], env=_env(src), check=True,
                       capture_output=True, text=True, timeout=1800)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--base", default="HEAD~1", help="git revision to compare against")
    ap.add_argument("--scenario", default="default")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cli", action="store_true", help="time `vmemsim run` instead")
    args = ap.parse_args()
    with base_worktree(args.base) as (base, tmp):
        builds = {"this": ROOT / "src", args.base: base / "src"}
        for name, src in builds.items():  # load (or compile) each build's kernels
            print(f"loading {name} ...", file=sys.stderr, flush=True)
            subprocess.run([PY, "-c", "import vmemsim; vmemsim.simulate('default', "
                            "duration='2s', parallel=False, cache=False)"],
                           env=_env(src), check=True, capture_output=True, timeout=1800)
        walls: dict[str, list[float]] = {n: [] for n in builds}
        ratios = []
        for rep in range(args.reps):
            order = list(builds) if rep % 2 == 0 else list(builds)[::-1]
            got = {}
            for name in order:
                got[name] = _run(builds[name], args.scenario, args.cli,
                                 tmp / f"out-{rep}-{name.replace('/', '_')}")
                walls[name].append(got[name]["wall"])
                print(f"rep {rep + 1} {name}: {got[name]['wall']:.2f} s, "
                      f"{got[name]['refs']:,} refs", file=sys.stderr, flush=True)
            ratios.append(got["this"]["wall"] / got[args.base]["wall"])
        print(json.dumps({
            "scenario": args.scenario, "mode": "cli" if args.cli else "api",
            "base": args.base,
            "median_wall_s": {n: round(median(w), 2) for n, w in walls.items()},
            "walls_s": {n: [round(x, 2) for x in w] for n, w in walls.items()},
            "this_over_base": round(median(ratios), 3)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
