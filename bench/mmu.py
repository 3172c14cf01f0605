"""The MMU model's cost on the hit path: this build's reference rate with `mmu = "off"`,
"nested" and "shadow" (and with guest large pages) against a base revision's, side by side.

    .venv/bin/python bench/mmu.py [--base main] [--reps 3] [--mib 256]

Each case runs bench.throughput's hit-dominated bench (one VM, one uniform process, no
sampling boundary: hits only once warm) in a child interpreter of its own; repetitions
alternate the order of the cases, and each case's rate is compared with the base's rate of the
same repetition (this machine is shared and noisy: only runs back to back share its state).
Reports the median ratio per case. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PY, ROOT, base_worktree, median  # noqa: E402

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench.common import one_vm_scenario
from bench.throughput import SimBench
mmu, large, mib, reps = sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sc = one_vm_scenario(2 * mib, mib, rate="100M/s")
if mmu != "-":
    sc["vm"][0]["mmu"] = mmu
    sc["vm"][0]["guest"] = {"large_pages": large}
sb = SimBench(sc, 2)
sb.warm_scan()
sb.rep()
rates = sorted(sb.rep().rate for _ in range(reps))
print(json.dumps({"rate": rates[len(rates) // 2]}))
"""

CASES = {"base": ("-", 0.0), "off": ("off", 0.0), "nested": ("nested", 0.0),
         "shadow": ("shadow", 0.0), "nested+large": ("nested", 1.0)}


def _rate(src: Path, case: str, mib: int, reps: int) -> float:
    mmu, large = CASES[case]
    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("NUMBA_CACHE_DIR", None)
    p = subprocess.run([PY, "-c", CHILD, str(ROOT), mmu, str(large), str(mib), str(reps)],
                       env=env, check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(p.stdout.strip().splitlines()[-1])["rate"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--base", default="main")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mib", type=int, default=256, help="the process's size (uniform)")
    args = ap.parse_args()
    with base_worktree(args.base) as (base, tmp):
        srcs = {c: ROOT / "src" for c in CASES}
        srcs["base"] = base / "src"
        ratios: dict[str, list[float]] = {c: [] for c in CASES if c != "base"}
        rates: dict[str, list[float]] = {c: [] for c in CASES}
        for rep in range(args.reps):
            order = list(CASES) if rep % 2 == 0 else list(CASES)[::-1]
            got = {c: _rate(srcs[c], c, args.mib, 3) for c in order}
            for c, r in got.items():
                rates[c].append(r)
                print(f"rep {rep + 1} {c}: {r / 1e6:.1f} M refs/s", file=sys.stderr,
                      flush=True)
            for c in ratios:
                ratios[c].append(got[c] / got["base"])
        print(json.dumps({
            "base": args.base, "mib": args.mib,
            "median_rate_M": {c: round(median(r) / 1e6, 2) for c, r in rates.items()},
            "over_base": {c: round(median(r), 3) for c, r in ratios.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
